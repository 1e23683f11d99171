"""Network building blocks: the fixed focus measure reads blur, and old checkpoints still load."""

import torch

from dfd_depth_ros.network import DfDNet, FocusMeasure, ModelConfig
from dfd_depth_ros.synthetic.render import disc_kernels


def _defocused_texture(diameter_px: float, contrast: float = 1.0) -> torch.Tensor:
    """A random texture blurred by the renderer's disc PSF of the given diameter: (1, 3, 96, 96) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    tex = 0.5 + contrast * (torch.rand(1, 1, 96, 96, generator=g) - 0.5)
    k = disc_kernels(torch.tensor([diameter_px]), 25)[0]
    out = torch.nn.functional.conv2d(torch.nn.functional.pad(tex, (12, 12, 12, 12), mode="reflect"), k[None, None])
    return out.expand(1, 3, 96, 96)


def test_reblur_ratios_grow_with_defocus_and_ignore_contrast():
    fm = FocusMeasure()
    centre = (slice(None), slice(None), slice(24, -24), slice(24, -24))
    ratios = [fm(_defocused_texture(d))[centre].mean((0, 2, 3))[1:] for d in (0.0, 2.0, 4.0, 8.0)]
    for sharper, blurrier in zip(ratios, ratios[1:]):
        assert torch.all(blurrier > sharper), (sharper, blurrier)
    # Half the contrast: the ratio channels barely move, the energy channel drops by 0.1 ln 4.
    low = fm(_defocused_texture(4.0, contrast=0.5))[centre].mean((0, 2, 3))
    full = fm(_defocused_texture(4.0))[centre].mean((0, 2, 3))
    assert torch.allclose(low[1:], full[1:], atol=0.02)
    assert low[0] < full[0] - 0.1


def test_checkpoints_without_the_sharpness_key_load_as_before():
    """Models shipped before the focus measure existed have no 'sharpness' key: they build without it."""
    old = ModelConfig.from_dict({"name": "dfd_recurrent", "head": "defocus", "recurrent": True,
                                 "widths": [16, 24, 32], "hidden": 32})
    assert old.sharpness is False
    new = DfDNet(ModelConfig(sharpness=True))
    assert new.stem[0][0].in_channels == DfDNet(old).stem[0][0].in_channels + FocusMeasure().channels
    # The focus measure has no trained weights: state dicts differ only in the stem's input width.
    assert set(new.state_dict()) == set(DfDNet(old).state_dict())
