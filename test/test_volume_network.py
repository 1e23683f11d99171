"""The cost-volume model (dfd_depth_ros/volume_network.py): its physics, its state and its export.

The evidence tests replace BlurNet by a fixed blur likelihood, so they check what the graph itself does
with a likelihood: the lens model, the interpolation over blur bins, the accumulation and the readout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from dfd_depth_ros import optics
from dfd_depth_ros.volume_network import (
    BLUR_BINS_PX,
    VolumeConfig,
    VolumeNet,
    blur_bin_weights,
    hypothesis_blur_px,
    warp,
)

# Grid w_i = 0.05 + 0.1 i dioptres (i = 0..40): with the focus at 1.0 D the grid is symmetric about it,
# so a depth and its mirror image on the other side of the focal plane are both grid points.
GRID = VolumeConfig(num_hypotheses=41, grid_near_m=1 / 4.05, grid_far_m=1 / 0.05)
SCALE_PXM = 10.0
W_TRUE, W_MIRROR = 1.45, 0.55  # at focus 1.0 D both blur by 4.5 px (a bin of BLUR_BINS_PX)
I_TRUE, I_MIRROR = 14, 5


class FixedLikelihood(nn.Module):
    """Stands in for BlurNet: every pixel's blur likelihood is one-hot at the true blur of W_TRUE."""

    def __init__(self, lens_of_frame: list[torch.Tensor]):
        super().__init__()
        self.lens_of_frame, self.frame = lens_of_frame, 0

    def forward(self, image):
        lens = self.lens_of_frame[self.frame]
        self.frame += 1
        c = hypothesis_blur_px(torch.tensor([W_TRUE]), lens)  # (1, 1)
        onehot = blur_bin_weights(c, torch.tensor(BLUR_BINS_PX))[0, 0]  # (J,)
        h, w = image.shape[-2] // 2, image.shape[-1] // 2
        return torch.log(onehot + 1e-4).reshape(1, -1, 1, 1).expand(1, -1, h, w)


def _rollout(focus_diopters: list[float]):
    net = VolumeNet(GRID).eval()
    lenses = [torch.tensor([[SCALE_PXM, f]]) for f in focus_diopters]
    net.blur = FixedLikelihood(lenses)
    state = net.initial_state(1, 16, 16)
    with torch.no_grad():
        for lens in lenses:
            out = net.forward_all(torch.rand(1, 3, 16, 16), lens, state)
            state = out["state"]
    return net, out


def test_hypothesis_blur_is_the_thin_lens_blur():
    w_k = torch.linspace(1 / 12, 4.0, 32)
    fx, focal_m, f_number, focus_m = 400.0, 0.012, 1.8, 0.8
    lens = torch.tensor([[optics.blur_scale_pxm(fx, focal_m, f_number), 1 / focus_m]])
    expected = optics.blur_diameter_px(1.0 / w_k.double().numpy(), focus_m, fx, focal_m, f_number)
    np.testing.assert_allclose(hypothesis_blur_px(w_k, lens)[0].numpy(), expected, rtol=1e-5)


def test_bin_weights_interpolate_linearly_and_clamp():
    bins = torch.tensor(BLUR_BINS_PX)
    wts = blur_bin_weights(torch.tensor([3.75, 40.0, 0.0]), bins)
    torch.testing.assert_close(wts.sum(1), torch.ones(3))
    assert wts[0, 3] == pytest.approx(0.5) and wts[0, 4] == pytest.approx(0.5)
    assert wts[1, -1] == 1.0 and wts[2, 0] == 1.0


def test_grid_is_symmetric_about_the_focus():
    net = VolumeNet(GRID)
    assert float(net.w_k[I_TRUE]) == pytest.approx(W_TRUE, abs=1e-5)
    assert float(net.w_k[I_MIRROR]) == pytest.approx(W_MIRROR, abs=1e-5)


def test_one_focus_leaves_the_two_depths_of_a_blur_tied():
    _, out = _rollout([1.0, 1.0, 1.0])
    s = out["state"][0, :-1, 0, 0]
    assert float(s[I_TRUE]) == pytest.approx(float(s[I_MIRROR]), abs=1e-3)
    assert float(s.max()) == pytest.approx(float(s[I_TRUE]), abs=1e-3)
    others = [i for i in range(GRID.num_hypotheses) if abs(i - I_TRUE) > 1 and abs(i - I_MIRROR) > 1]
    assert float(s[others].max()) < float(s[I_TRUE]) - 5.0


def test_two_focus_distances_resolve_front_from_back():
    # At focus 0.55 D the true depth blurs by 9 px and its mirror is in focus: only the true one fits both.
    _, out = _rollout([1.0, 0.55, 1.0, 0.55])
    s = out["state"][0, :-1, 0, 0]
    assert int(s.argmax()) == I_TRUE
    assert float(s[I_TRUE] - s[I_MIRROR]) > 10.0
    # The readout (refinement still untrained, residual 0) reads the depth of the peak.
    assert float(out["depth_m"].mean()) == pytest.approx(1 / W_TRUE, rel=0.02)


@pytest.mark.parametrize("pair", [False, True])
def test_zero_state_is_a_reset(pair):
    torch.manual_seed(0)
    net = VolumeNet(VolumeConfig(num_hypotheses=16, pair_evidence=pair)).eval()
    frames = [torch.rand(1, 3, 32, 40) for _ in range(4)]
    lenses = [torch.tensor([[6.0, 0.3 + 0.4 * i]]) for i in range(4)]
    with torch.no_grad():
        state = net.initial_state(1, 32, 40)
        for x, lens in zip(frames[:3], lenses[:3], strict=True):
            _, _, state = net(x, lens, state)
        d_cont, _, _ = net(frames[3], lenses[3], state)
        d_reset, _, s_reset = net(frames[3], lenses[3], torch.zeros_like(state))
        d_fresh, _, s_fresh = net(frames[3], lenses[3], net.initial_state(1, 32, 40))
    torch.testing.assert_close(d_reset, d_fresh)
    torch.testing.assert_close(s_reset, s_fresh)
    assert float((d_cont - d_reset).abs().max()) > 1e-3  # the memory did matter


def test_warp_with_zero_flow_is_identity_and_integer_flow_shifts():
    x = torch.rand(1, 3, 8, 10)
    torch.testing.assert_close(warp(x, torch.zeros(1, 2, 8, 10)), x)
    flow = torch.zeros(1, 2, 8, 10)
    flow[:, 0] = 1.0  # sample one pixel to the right
    torch.testing.assert_close(warp(x, flow)[..., :-1], x[..., 1:])


def test_output_shapes_and_range():
    net = VolumeNet().eval()
    with torch.no_grad():
        depth, conf, state = net(torch.rand(2, 3, 48, 64), torch.tensor([[5.0, 0.5], [2.0, 1.0]]),
                                 net.initial_state(2, 48, 64))  # fmt: skip
    assert depth.shape == conf.shape == (2, 1, 48, 64)
    assert state.shape == (2, net.cfg.num_hypotheses + 1, 24, 32)
    assert torch.isfinite(depth).all() and (depth >= net.cfg.min_depth_m).all() and (depth <= net.cfg.max_depth_m).all()
    assert ((conf >= 0) & (conf <= 1)).all()


@pytest.mark.parametrize("pair", [False, True])
def test_onnx_export_dynamic_size_matches_torch(tmp_path, pair):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from dfd_depth_ros.model_contract import parse_model_metadata, read_onnx_metadata
    from dfd_depth_ros.onnx_export import export_onnx, onnx_parity

    torch.manual_seed(0)
    net = VolumeNet(VolumeConfig(num_hypotheses=24, pair_evidence=pair))
    nn.init.normal_(net.refine.out.weight, std=0.05)  # a non-zero refinement, so its path is compared too
    path = export_onnx(net, tmp_path / "volume.onnx", height=64, width=80)
    meta = parse_model_metadata(read_onnx_metadata(path)["dfd_model_config"], path)
    assert meta["model_config"]["architecture"] == "dfd_volume"
    assert meta["state_channels"] == (25 + 24 + 2 if pair else 25) and meta["state_stride"] == 2
    assert onnx_parity(net, path, steps=8, height=96, width=128) <= 1e-4  # another size than exported


def test_onnxruntime_backend_runs_the_exported_volume_model(tmp_path):
    pytest.importorskip("onnxruntime")
    from dfd_depth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from dfd_depth_ros.onnx_export import export_onnx

    torch.manual_seed(1)
    net = VolumeNet(VolumeConfig(num_hypotheses=16)).eval()
    backend = OnnxRuntimeBackend(threads=1)
    backend.load(export_onnx(net, tmp_path / "volume.onnx", height=48, width=64))
    state = net.initial_state(1, 40, 56)
    for i in range(3):  # the backend builds its (1, 17, 20, 28) zero state from the metadata's state_stride
        image, lens = torch.rand(1, 3, 40, 56), torch.tensor([[5.0, 0.4 + 0.5 * i]])
        with torch.no_grad():
            depth_t, _, state = net(image, lens, state)
        depth_o, _ = backend.infer(image.numpy(), lens.numpy())
        np.testing.assert_allclose(depth_o, depth_t[0, 0].numpy(), atol=1e-4)
