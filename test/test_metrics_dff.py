"""Contract metrics on hand-computed cases, and the classical depth-from-focus baseline on rendered stacks."""

import numpy as np
import pytest
import torch

from dfd_depth_ros.evaluation.depth_from_focus import DepthFromFocus
from dfd_depth_ros.metrics import MetricAccumulator, frame_metrics
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.synthetic.render import linear_to_srgb, render_defocus


def test_frame_metrics_hand_computed():
    gt = np.array([[1.0, 2.0], [4.0, np.nan]])
    pred = np.array([[1.1, 2.0], [np.nan, 3.0]])
    m = frame_metrics(pred, gt)
    assert m["valid_px"] == 2 and m["missing_px"] == 1 and m["gt_px"] == 3
    assert m["abs_rel"] == pytest.approx((0.1 / 1.0 + 0) / 2)
    assert m["rmse"] == pytest.approx(np.sqrt(0.01 / 2))
    assert m["log_rmse"] == pytest.approx(np.sqrt(np.log(1.1) ** 2 / 2))
    assert m["delta1"] == 1.0


def test_ground_truth_outside_range_is_ignored_and_flicker_measures_jumps():
    gt = np.full((4, 4), 2.0)
    gt[0, 0] = 25.0  # beyond 20 m: not a valid pixel
    acc = MetricAccumulator()
    acc.add(gt * 1.1, gt, ms=5.0)
    acc.add(gt * 1.1, gt, ms=7.0)  # same error: no flicker
    acc.add(gt * 0.9, gt, ms=6.0)  # error jumps from ln 1.1 to ln 0.9
    s = acc.summary()
    assert s["frames"] == 3 and s["ms_per_frame"] == pytest.approx(6.0) and s["missing"] == 0.0
    assert s["flicker"] == pytest.approx((0.0 + abs(np.log(0.9) - np.log(1.1))) / 2)
    assert s["abs_rel"] == pytest.approx((0.1 + 0.1 + 0.1) / 3)


def _rendered_stack(z_m, focus_list_m, size=64):
    rng = np.random.default_rng(0)
    aif = torch.from_numpy(rng.random((1, 3, size, size), dtype=np.float32)).repeat(len(focus_list_m), 1, 1, 1)
    depth = torch.full((len(focus_list_m), 1, size, size), z_m)
    scale = torch.full((len(focus_list_m),), 6.0)
    out = render_defocus(aif, depth, scale, torch.tensor(focus_list_m, dtype=torch.float32))
    return (linear_to_srgb(out).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def test_depth_from_focus_finds_a_plane_in_a_focal_stack():
    focus = list(1.0 / np.linspace(0.2, 2.5, 9))  # 0.4 m .. 5 m, uniform in dioptres
    images = _rendered_stack(1.3, focus)
    dff = DepthFromFocus(window=9)
    for img, f in zip(images, focus):
        depth = dff.process(img, np.eye(3), LensState(f, 2.0, 0.01))
    centre = depth[8:-8, 8:-8]
    assert np.nanmedian(np.abs(centre - 1.3) / 1.3) < 0.08


def test_depth_from_focus_gives_no_estimate_without_a_focus_change():
    images = _rendered_stack(1.3, [2.0] * 4)
    dff = DepthFromFocus()
    for img in images:
        depth = dff.process(img, np.eye(3), LensState(2.0, 2.0, 0.01))
    assert np.isnan(depth).all()
