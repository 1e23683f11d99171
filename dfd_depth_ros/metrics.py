"""Depth metrics exactly as ../shared/specs/bag-contract.md defines them.

Valid pixels: finite ground truth with 0.1 m <= z <= 20 m and a finite prediction. A valid-GT
pixel without a finite prediction counts as missing (reported as ``missing``, a fraction).
Each metric is computed per frame and averaged over frames; ``flicker`` is the mean over
consecutive frames of the mean |e_t - e_(t-1)| over pixels valid in both, e = ln p - ln g.
Metric depth: no scale or shift alignment.
"""

from __future__ import annotations

import numpy as np

GT_MIN_M = 0.1
GT_MAX_M = 20.0
FRAME_KEYS = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta1", "delta2", "delta3", "abs_rel_filled")


def gt_mask(gt_m: np.ndarray) -> np.ndarray:
    """(H, W) bool: finite ground truth inside [0.1, 20] m."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt_m) & (gt_m >= GT_MIN_M) & (gt_m <= GT_MAX_M)


def frame_metrics(pred_m: np.ndarray, gt_m: np.ndarray) -> dict[str, float]:
    """Metrics of one (H, W) frame; NaN values when no pixel is valid. Adds valid_px and missing_px.

    abs_rel_filled: abs_rel over every pixel with ground truth, the missing ones filled with the median
    of the frame's predictions (holes cannot flatter it; equal to abs_rel when nothing is missing; 1
    for a frame without any prediction, as if it answered 0 m).
    """
    has_gt = gt_mask(gt_m)
    with np.errstate(invalid="ignore"):
        has_pred = np.isfinite(pred_m) & (pred_m > 0)
    valid = has_gt & has_pred
    out = {"valid_px": int(valid.sum()), "missing_px": int((has_gt & ~has_pred).sum()), "gt_px": int(has_gt.sum())}
    if not valid.any():
        # No estimate at all: the hole-filled abs_rel counts it as an answer of 0 m (error 1), not as no frame.
        return out | {k: float("nan") for k in FRAME_KEYS} | {"abs_rel_filled": 1.0 if out["gt_px"] else float("nan")}
    p = pred_m[valid].astype(np.float64)
    g = gt_m[valid].astype(np.float64)
    ratio = np.maximum(p / g, g / p)
    out |= {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "log_rmse": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }
    if out["missing_px"]:
        filled = np.where(has_pred, pred_m, np.float32(np.median(p)))[has_gt].astype(np.float64)
        g_all = gt_m[has_gt].astype(np.float64)
        out["abs_rel_filled"] = float(np.mean(np.abs(filled - g_all) / g_all))
    else:
        out["abs_rel_filled"] = out["abs_rel"]
    return out


def log_error(pred_m: np.ndarray, gt_m: np.ndarray) -> np.ndarray:
    """(H, W) e = ln p - ln g where both are valid, NaN elsewhere."""
    valid = gt_mask(gt_m) & np.isfinite(pred_m) & (np.nan_to_num(pred_m, nan=-1.0) > 0)
    e = np.full(gt_m.shape, np.nan)
    e[valid] = np.log(pred_m[valid]) - np.log(gt_m[valid])
    return e


class MetricAccumulator:
    """Feed frames in order with ``add``; ``summary`` gives the contract's per-method dict.

    ``reset_sequence()`` marks a sequence boundary, so flicker is not measured across it.
    """

    def __init__(self):
        self.per_frame: list[dict[str, float]] = []
        self._flicker: list[float] = []
        self._prev_e: np.ndarray | None = None
        self.ms_per_frame: list[float] = []

    def add(self, pred_m: np.ndarray, gt_m: np.ndarray, ms: float | None = None) -> dict[str, float]:
        m = frame_metrics(pred_m, gt_m)
        e = log_error(pred_m, gt_m)
        if self._prev_e is not None and self._prev_e.shape == e.shape:
            both = np.isfinite(e) & np.isfinite(self._prev_e)
            if both.any():
                m["flicker"] = float(np.mean(np.abs(e[both] - self._prev_e[both])))
                self._flicker.append(m["flicker"])
        self._prev_e = e
        if ms is not None:
            self.ms_per_frame.append(float(ms))
        self.per_frame.append(m)
        return m

    def reset_sequence(self) -> None:
        self._prev_e = None

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in FRAME_KEYS:
            vals = [f[k] for f in self.per_frame if np.isfinite(f[k])]
            out[k] = float(np.mean(vals)) if vals else float("nan")
        out["flicker"] = float(np.mean(self._flicker)) if self._flicker else float("nan")
        out["ms_per_frame"] = float(np.mean(self.ms_per_frame)) if self.ms_per_frame else float("nan")
        out["frames"] = len(self.per_frame)
        gt_px = sum(f["gt_px"] for f in self.per_frame)
        out["missing"] = float(sum(f["missing_px"] for f in self.per_frame) / gt_px) if gt_px else float("nan")
        return out
