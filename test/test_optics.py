"""Thin-lens optics: hand-computed values and the properties every user of the model relies on."""

import math

import numpy as np
import pytest
import torch

from dfd_depth_ros import optics
from dfd_depth_ros.optics import LensState

# A 50 mm f/2 lens at fx = 1000 px: D = 25 mm, blur scale fx*D = 25 px*m.
LENS = LensState(focus_distance_m=2.0, f_number=2.0, focal_length_m=0.050)
FX = 1000.0


def test_hand_computed_blur():
    assert LENS.aperture_diameter_m == pytest.approx(0.025)
    assert LENS.blur_scale_pxm(FX) == pytest.approx(25.0)
    # z = 1 m: 25 * |0.5 - 1| = 12.5 px;  z = 4 m: 25 * |0.5 - 0.25| = 6.25 px;  z = inf: 12.5 px.
    assert LENS.blur_diameter_px(1.0, FX) == pytest.approx(12.5)
    assert LENS.blur_diameter_px(4.0, FX) == pytest.approx(6.25)
    assert LENS.blur_diameter_px(math.inf, FX) == pytest.approx(12.5)
    assert optics.signed_blur_px(1.0, 2.0, FX, 0.05, 2.0) == pytest.approx(-12.5)
    assert optics.signed_blur_px(4.0, 2.0, FX, 0.05, 2.0) == pytest.approx(6.25)


def test_zero_at_focus_and_monotone_each_side():
    z = np.linspace(0.2, 50.0, 5000)
    c = LENS.blur_diameter_px(z, FX)
    assert LENS.blur_diameter_px(2.0, FX) == 0.0
    front, back = c[z < 2.0], c[z > 2.0]
    assert np.all(np.diff(front) < 0), "blur must shrink towards the focal plane from the front"
    assert np.all(np.diff(back) > 0), "blur must grow behind the focal plane"


def test_linear_in_diopters():
    inv_z = np.linspace(0.05, 5.0, 100)
    signed = optics.signed_blur_px(1.0 / inv_z, 2.0, FX, 0.05, 2.0)
    slope = np.diff(signed) / np.diff(inv_z)
    np.testing.assert_allclose(slope, -25.0, rtol=1e-9)


def test_numpy_and_torch_agree():
    z = np.array([0.3, 0.9, 2.0, 7.5, 20.0])
    c_np = optics.blur_diameter_px(z, 2.0, FX, 0.05, 2.0)
    c_t = optics.blur_diameter_px(torch.tensor(z), 2.0, FX, 0.05, 2.0)
    assert isinstance(c_t, torch.Tensor)
    np.testing.assert_allclose(c_t.numpy(), c_np, rtol=1e-12)


def test_inverse_gives_both_depths():
    near, far = optics.depths_for_blur_m(6.25, 2.0, FX, 0.05, 2.0)
    assert near == pytest.approx(1.0 / (0.5 + 0.25))
    assert far == pytest.approx(4.0)
    for z in (near, far):
        assert LENS.blur_diameter_px(z, FX) == pytest.approx(6.25)
    # More blur than a point at infinity gets: only a near solution exists.
    near, far = optics.depths_for_blur_m(20.0, 2.0, FX, 0.05, 2.0)
    assert far == math.inf and near == pytest.approx(1.0 / 1.3)
    # Vectorised round trip through numpy and torch.
    z = np.array([0.5, 1.0, 3.0, 9.0])
    c = LENS.blur_diameter_px(z, FX)
    near, far = optics.depths_for_blur_m(c, 2.0, FX, 0.05, 2.0)
    np.testing.assert_allclose(np.where(z < 2.0, near, far), z, rtol=1e-12)
    near_t, far_t = optics.depths_for_blur_m(torch.tensor(c), 2.0, FX, 0.05, 2.0)
    np.testing.assert_allclose(np.where(z < 2.0, near_t.numpy(), far_t.numpy()), z, rtol=1e-12)


def test_depth_of_field_and_hyperfocal():
    coc_px = 2.0
    h = optics.hyperfocal_distance_m(FX, 0.05, 2.0, coc_px)
    assert h == pytest.approx(12.5)  # 25 px*m / 2 px
    near, far = optics.depth_of_field_m(2.0, FX, 0.05, 2.0, coc_px)
    assert LENS.blur_diameter_px(near, FX) == pytest.approx(coc_px)
    assert LENS.blur_diameter_px(far, FX) == pytest.approx(coc_px)
    assert near < 2.0 < far
    near, far = optics.depth_of_field_m(h, FX, 0.05, 2.0, coc_px)
    assert far == math.inf and near == pytest.approx(h / 2)  # focused at H: sharp from H/2 to infinity
    # Stopping down widens the depth of field.
    near8, far8 = optics.depth_of_field_m(2.0, FX, 0.05, 8.0, coc_px)
    assert near8 < near or far8 > far


def test_diopter_conversions_and_validation():
    lens = LensState.from_diopters(0.5, 1.4, 0.035)
    assert lens.focus_distance_m == pytest.approx(2.0) and lens.focus_diopters == pytest.approx(0.5)
    assert lens.as_tuple() == (2.0, 1.4, 0.035)
    for bad in (dict(focus_distance_m=0.0), dict(f_number=-1.0), dict(focal_length_m=float("nan"))):
        kwargs = dict(focus_distance_m=1.0, f_number=2.0, focal_length_m=0.05) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            LensState(**kwargs)
    with pytest.raises(ValueError):
        LensState.from_diopters(0.0, 2.0, 0.05)
