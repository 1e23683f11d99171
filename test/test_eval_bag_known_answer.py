"""`dfd-depth eval-bag` against answers computed by hand: models whose output is known exactly, a generated
bag whose ground truth is known exactly, and metrics.json compared with the bag contract's formulas
(shared/specs/bag-contract.md) written out here independently of dfd_depth_ros.metrics.

Ground truth: a slanted plane that moves away frame by frame, with NaN holes, +inf, and pixels outside
the scored range [0.1, 20] m (too near, too far). Models (test/toy_models.py):
  plane model    depth = F_M everywhere, confidence 1;
  decoder model  depth = the image's red channel / 50 m, so a bag whose red channel is round(50 z) is
                 predicted to 0.01 m, pixel for pixel: any shift between image and ground truth shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from toy_models import affine_channel_model

from dfd_depth_ros.evaluation import bagio
from dfd_depth_ros.frames import Frame, Sequence, intrinsics_matrix
from dfd_depth_ros.optics import LensState

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

H, W = 29, 37  # not multiples of 8: DepthStream pads and crops
FRAMES = 5
PERIOD_NS = 33_333_333
F_M = np.float32(2.0)  # the plane model's depth, metres
RED_PER_M = 50.0  # decoder bag: red = round(50 z), so 0.5-5.1 m is representable in uint8


def ground_truth(t: int) -> np.ndarray:
    """(H, W) float32 z-depth of frame t: plane 0.5 + 0.08 x + 0.03 y + 0.3 t m, with holes and out-of-range pixels."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    z = (0.5 + 0.08 * x + 0.03 * y + 0.3 * t).astype(np.float32)
    rng = np.random.default_rng(100 + t)
    holes = rng.random((H, W)) < 0.1 + 0.05 * t  # a different count per frame: frame mean != pixel mean
    z[holes] = np.nan
    z[0, : 3 + t] = np.inf
    z[1, :4] = 0.05  # too near to score
    z[2, :5] = 25.0  # too far to score
    return z


def sequence(red_encodes_depth: bool) -> Sequence:
    frames = []
    K = intrinsics_matrix(60.0, 60.0, W / 2, H / 2)
    for t in range(FRAMES):
        z = ground_truth(t)
        rng = np.random.default_rng(t)
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        if red_encodes_depth:
            finite = np.where(np.isfinite(z), z, 0.0)
            image[:, :, 0] = np.clip(np.rint(finite * RED_PER_M), 0, 255).astype(np.uint8)
        lens = LensState(0.6 + 0.4 * t, 2.0, 8e-3)
        frames.append(Frame(image, K, lens, 1_000_000_000 + t * PERIOD_NS, depth_m=z))
    return Sequence(frames, name="known_answer")


def expected_metrics(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    """The contract's numbers by hand: per frame over valid pixels (finite GT in [0.1, 20] m, finite pred > 0),
    then the mean over frames; missing = valid-GT pixels without a prediction / valid-GT pixels."""
    per_frame: dict[str, list[float]] = {k: [] for k in ("abs_rel", "sq_rel", "rmse", "log_rmse",
                                                         "delta1", "delta2", "delta3")}
    flicker, missing, gt_px, prev_e = [], 0, 0, None
    for p, g in zip(preds, gts):
        p, g = p.astype(np.float64), g.astype(np.float64)
        with np.errstate(invalid="ignore"):
            has_gt = np.isfinite(g) & (g >= 0.1) & (g <= 20.0)
            has_pred = np.isfinite(p) & (p > 0)
        valid = has_gt & has_pred
        missing += int((has_gt & ~has_pred).sum())
        gt_px += int(has_gt.sum())
        pv, gv = p[valid], g[valid]
        ratio = np.maximum(pv / gv, gv / pv)
        per_frame["abs_rel"].append(np.mean(np.abs(pv - gv) / gv))
        per_frame["sq_rel"].append(np.mean((pv - gv) ** 2 / gv))
        per_frame["rmse"].append(np.sqrt(np.mean((pv - gv) ** 2)))
        per_frame["log_rmse"].append(np.sqrt(np.mean((np.log(pv) - np.log(gv)) ** 2)))
        for k, threshold in (("delta1", 1.25), ("delta2", 1.25**2), ("delta3", 1.25**3)):
            per_frame[k].append(np.mean(ratio < threshold))
        e = np.full(g.shape, np.nan)
        e[valid] = np.log(pv) - np.log(gv)
        if prev_e is not None:
            both = np.isfinite(e) & np.isfinite(prev_e)
            flicker.append(np.mean(np.abs(e[both] - prev_e[both])))
        prev_e = e
    out = {k: float(np.mean(v)) for k, v in per_frame.items()}
    return out | {"flicker": float(np.mean(flicker)), "frames": len(preds), "missing": missing / gt_px}


def eval_bag(bag: Path, model: Path, out: Path) -> dict:
    """Run `dfd-depth eval-bag` through cli.main; metrics.json of its dfd_recurrent method."""
    from dfd_depth_ros import cli

    code = cli.main(["eval-bag", str(bag), "--out", str(out), "--model", str(model), "--backend", "onnxruntime",
                     "--no-plots"])
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["frames"] == FRAMES and doc["bag"] == bag.name
    return doc["methods"]["dfd_recurrent"]


def assert_metrics_equal(got: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), (key, got[key], value)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("known_bags")
    return {"texture": bagio.write_sequence_bag(sequence(False), folder / "plane_texture"),
            "red_depth": bagio.write_sequence_bag(sequence(True), folder / "plane_red_depth")}


def test_plane_model_scores_exactly_the_hand_computed_metrics(bags, tmp_path):
    model = affine_channel_model(tmp_path / "plane.onnx", depth_offset_m=float(F_M), name="plane")
    got = eval_bag(bags["texture"], model, tmp_path / "eval")
    gts = [ground_truth(t) for t in range(FRAMES)]
    expected = expected_metrics([np.full((H, W), F_M) for _ in gts], gts)
    assert_metrics_equal(got, expected)
    assert got["missing"] == 0.0 and got["frames"] == FRAMES
    assert 0.2 < got["delta1"] < 0.8  # the plane crosses f / 1.25 and f * 1.25: delta1 is not trivially 0 or 1


def test_model_reading_depth_from_the_image_is_scored_pixel_for_pixel(bags, tmp_path):
    """Prediction (y, x) of frame t must be scored against ground truth (y, x) of frame t: no shift, no lag."""
    model = affine_channel_model(tmp_path / "decoder.onnx", depth_offset_m=0.0, depth_scale_m=255.0 / RED_PER_M,
                                 name="decoder")
    got = eval_bag(bags["red_depth"], model, tmp_path / "eval")
    seq = sequence(True)
    # The model's arithmetic in float32: red / 255 (DepthStream's normalisation), times 255 / 50.
    preds = [(f.image[:, :, 0].astype(np.float32) * np.float32(1.0 / 255.0)) * np.float32(255.0 / RED_PER_M)
             for f in seq]
    preds = [np.where(p < 0.1, np.nan, p) for p in preds]  # DepthStream's min_depth_m: 0 -> no prediction
    gts = [f.depth_m for f in seq]
    expected = expected_metrics(preds, gts)
    assert_metrics_equal(got, expected)
    assert got["abs_rel"] < 0.01 and got["delta1"] == 1.0 and got["missing"] == 0.0
    # A one-pixel shift or a one-frame lag would be far off: the plane rises 0.08 m per column, 0.3 m per frame.
    shifted = expected_metrics([np.roll(p, 1, axis=1) for p in preds], gts)
    lagged = expected_metrics(preds[:1] + preds[:-1], gts)
    assert shifted["abs_rel"] > 5 * got["abs_rel"] and lagged["abs_rel"] > 5 * got["abs_rel"]


def test_depth_beyond_the_range_is_missing_everywhere(bags, tmp_path):
    model = affine_channel_model(tmp_path / "far.onnx", depth_offset_m=30.0, name="far")  # > max_depth_m 20
    got = eval_bag(bags["texture"], model, tmp_path / "eval")
    assert got["missing"] == 1.0 and got["frames"] == FRAMES
    assert got["abs_rel"] is None and got["delta1"] is None  # no valid pixel: undefined, written as null
