"""Layered defocus renderer: sharpness at focus, blur widths from optics, energy, occlusion halos."""

import numpy as np
import pytest
import torch

from dfd_depth_ros import optics
from dfd_depth_ros.synthetic.render import apply_sensor, disc_kernels, linear_to_srgb, render_defocus, srgb_to_linear

FX = 400.0
FOCAL_M, F_NUMBER = 0.025, 1.4  # blur scale fx * D = 7.14 px*m


def _scale():
    return torch.tensor([optics.blur_scale_pxm(FX, FOCAL_M, F_NUMBER)])


def _render(aif, depth, focus_m):
    """(H, W) or (3, H, W) numpy -> rendered numpy of the same layout, one sample."""
    aif_t = torch.as_tensor(aif, dtype=torch.float32)
    aif_t = aif_t[None, None] if aif_t.ndim == 2 else aif_t[None]
    z = torch.as_tensor(depth, dtype=torch.float32)[None, None]
    out = render_defocus(aif_t, z, _scale(), torch.tensor([focus_m]))[0]
    return out[0].numpy() if np.ndim(aif) == 2 else out.numpy()


def _disc_esf_width(lo=0.1, hi=0.9):
    """10-90 % rise of a unit-diameter uniform disc's edge spread function (fraction of c)."""
    x = np.linspace(-0.5, 0.5, 200001)
    chord = 2 * np.sqrt(np.clip(0.25 - x**2, 0, None))
    esf = np.cumsum(chord) / chord.sum()
    return np.interp(hi, esf, x) - np.interp(lo, esf, x)


def _rise_width_px(profile, lo=0.1, hi=0.9):
    """Distance between the lo and hi crossings of a rising, normalised 1-D edge profile, px."""
    p = (profile - profile.min()) / (profile.max() - profile.min())
    idx = np.arange(p.size, dtype=float)
    return np.interp(hi, p, idx) - np.interp(lo, p, idx)


def test_plane_at_focus_stays_sharp():
    rng = np.random.default_rng(0)
    aif = rng.random((3, 60, 80))
    out = _render(aif, np.full((60, 80), 1.7), focus_m=1.7)
    np.testing.assert_allclose(out, aif, atol=1e-5)


@pytest.mark.parametrize("z_m,focus_m", [(0.5, 2.0), (0.8, 1.5), (3.0, 0.6), (9.0, 0.35), (1.2, 4.0)])
def test_step_edge_width_matches_optics(z_m, focus_m):
    h, w = 24, 120
    aif = np.zeros((h, w))
    aif[:, w // 2 :] = 1.0
    out = _render(aif, np.full((h, w), z_m), focus_m)
    c_px = optics.blur_diameter_px(z_m, focus_m, FX, FOCAL_M, F_NUMBER)
    assert 3.0 < c_px < 26.0
    measured = _rise_width_px(out[h // 2])
    predicted = c_px * _disc_esf_width()
    assert measured == pytest.approx(predicted, abs=1.0), f"c={c_px:.2f}px"


def test_energy_is_conserved():
    rng = np.random.default_rng(1)
    aif = rng.random((3, 64, 96))
    yy, xx = np.mgrid[0:64, 0:96]
    planes = {"fronto-parallel": np.full((64, 96), 0.7), "slanted": 0.4 + 0.08 * xx + 0.01 * yy}
    for name, depth in planes.items():
        for focus_m in (0.4, 1.0, 5.0):
            out = _render(aif, depth, focus_m)
            assert out.mean() == pytest.approx(aif.mean(), rel=0.01), (name, focus_m)


@pytest.mark.parametrize("fg_in_focus", [True, False])
def test_occlusion_boundary_has_no_halo(fg_in_focus):
    """A near square (0.2) over a far wall (0.8): output stays inside [0.2, 0.8] (tolerance 0.01)."""
    h, w = 80, 80
    fg = np.zeros((h, w), bool)
    fg[20:60, 20:60] = True
    aif = np.where(fg, 0.2, 0.8)
    depth = np.where(fg, 0.5, 5.0)
    focus_m = 0.5 if fg_in_focus else 5.0
    out = _render(aif, depth, focus_m)
    assert out.min() >= 0.2 - 0.01 and out.max() <= 0.8 + 0.01
    c_bg = optics.blur_diameter_px(5.0, focus_m, FX, FOCAL_M, F_NUMBER)
    c_fg = optics.blur_diameter_px(0.5, focus_m, FX, FOCAL_M, F_NUMBER)
    if fg_in_focus:
        # The sharp foreground keeps its edge: no background bleeds onto it.
        np.testing.assert_allclose(out[20:60, 20:60], 0.2, atol=0.01)
        assert c_bg > 5
    else:
        # The blurred foreground spreads over the sharp wall by about its blur radius, not further.
        r = int(np.ceil(c_fg / 2)) + 1
        assert c_fg > 5
        np.testing.assert_allclose(out[40, : 20 - r], 0.8, atol=0.01)
        assert out[40, 19] < 0.8 - 0.1


def test_disc_kernels_are_normalised_discs():
    k = disc_kernels(torch.tensor([0.0, 0.6, 5.0, 11.0]), 15)
    np.testing.assert_allclose(k.sum(dim=(1, 2)).numpy(), 1.0, rtol=1e-6)
    assert k[0, 7, 7] == 1.0 and k[1, 7, 7] == 1.0  # below 1 px: a delta
    support = (k[3] > 0).sum().item()
    assert support == pytest.approx(np.pi * (11 / 2) ** 2, rel=0.15)


def test_sensor_noise_follows_shot_noise_and_gamma_round_trips():
    x = torch.full((1, 1, 200, 200), 0.25)
    g = torch.Generator().manual_seed(0)
    noisy = apply_sensor(x, full_well_e=1000.0, read_noise_e=0.0, gamma=False, generator=g)
    assert noisy.std().item() == pytest.approx(np.sqrt(250.0) / 1000.0, rel=0.05)
    assert apply_sensor(x, full_well_e=0.0, gamma=False).equal(x)
    v = torch.linspace(0, 1, 101)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(v)).numpy(), v.numpy(), atol=1e-5)


def test_psf_between_a_disc_and_a_gaussian_keeps_energy_and_the_second_moment():
    """Domain randomisation's PSF shape: each mix sums to 1, and every mix has the disc's second moment (so a
    blur diameter still means the same spread), while a Gaussian has no sharp edge (its rim is not flat)."""
    from dfd_depth_ros.synthetic.render import psf_kernels

    diam = torch.tensor([12.0, 12.0, 12.0])
    k = psf_kernels(diam, 41, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(3), atol=1e-5)
    coords = torch.arange(41, dtype=torch.float32) - 20
    r2 = coords[None, :] ** 2 + coords[:, None] ** 2
    second = (k * r2).sum(dim=(1, 2))  # E[x^2 + y^2]: r^2 / 2 for a disc of radius r, 2 sigma^2 for a Gaussian
    assert torch.allclose(second, second[0].expand(3), rtol=0.08)
    assert torch.equal(psf_kernels(diam[:1], 41), disc_kernels(diam[:1], 41))  # the default is the disc
    centre, rim = k[:, 20, 20], k[:, 20, 25]  # a disc is flat inside, a Gaussian falls off
    assert abs(float(rim[0] / centre[0]) - 1) < 1e-6 and float(rim[2] / centre[2]) < 0.6


def test_gaussian_psf_renders_the_same_spread_as_the_disc():
    """A step edge out of focus rises over the same order of width with either PSF shape: the shape changes, the
    blur the optics give does not."""
    img = np.zeros((64, 96), np.float32)
    img[:, 48:] = 1.0
    depth = np.full(img.shape, 2.0, np.float32)
    z = torch.as_tensor(depth)[None, None]
    outs = [render_defocus(torch.as_tensor(img)[None, None], z, _scale(), torch.tensor([0.5]), gauss_mix=m)[0, 0, 32]
            for m in (0.0, 1.0)]
    widths = [_rise_width_px(o.numpy()) for o in outs]
    c_px = float(optics.blur_diameter_px(2.0, 0.5, FX, FOCAL_M, F_NUMBER))
    assert 0.5 * c_px < widths[0] < 1.2 * c_px and 0.5 * c_px < widths[1] < 1.5 * c_px, (widths, c_px)


def test_vignette_darkens_corners_not_the_centre_and_tone_power_bends_the_curve():
    from dfd_depth_ros.synthetic.render import vignette

    img = torch.full((1, 1, 31, 41), 0.5)
    v = vignette(img, 0.4)[0, 0]
    assert abs(float(v[15, 20]) - 0.5) < 1e-3 and abs(float(v[0, 0]) - 0.5 * 0.6) < 1e-3
    x = torch.tensor([[[[0.18]]]])
    plain = apply_sensor(x, 0.0, 0.0)
    assert float(apply_sensor(x, 0.0, 0.0, tone_power=1.25)) < float(plain) < float(
        apply_sensor(x, 0.0, 0.0, tone_power=0.8))
