"""Reference rows of a scoreboard: what a number means, not methods (both read the ground truth).

    median_floor(gt_m)                         each frame's ground-truth median, everywhere
    blur_oracle(gt_m, lens, fx_px, rng)        true blur + noise, side of the focal plane known, through the optics

A method that does not beat ``median_floor`` has not measured depth: it does no better than knowing
the scene's typical distance. ``blur_oracle`` shows what reading every pixel's blur to
``noise_px`` precision is worth with that bag's lenses and depths: where fx*D/z is small, even a
perfect blur reader cannot tell depths apart. Methods that pool over space, time or priors can do
better than it where the cue is weak, so it is a reference, not a ceiling.
"""

from __future__ import annotations

import numpy as np

from dfd_depth_ros.metrics import GT_MAX_M, GT_MIN_M, gt_mask
from dfd_depth_ros.optics import LensState

ORACLE_NOISE_PX = 0.5


def median_floor(gt_m: np.ndarray) -> np.ndarray:
    """(H, W) ground truth -> (H, W) float32 filled with the median of its valid pixels (NaN without any)."""
    valid = gt_mask(gt_m)
    value = float(np.median(gt_m[valid])) if valid.any() else np.nan
    return np.full(gt_m.shape, value, dtype=np.float32)


def blur_oracle(gt_m: np.ndarray, lens: LensState, fx_px: float, rng: np.random.Generator,
                noise_px: float = ORACLE_NOISE_PX) -> np.ndarray:
    """(H, W) ground truth -> (H, W) float32 depth from the signed blur fx*D*(1/focus - 1/z) plus N(0, noise_px).

    The side of the focal plane is given (the signed blur); depth is clipped to the metric range
    [GT_MIN_M, GT_MAX_M]; NaN where the ground truth is invalid.
    """
    k = lens.blur_scale_pxm(fx_px)
    inv_focus = lens.focus_diopters
    valid = gt_mask(gt_m)
    out = np.full(gt_m.shape, np.nan, dtype=np.float32)
    g = gt_m[valid].astype(np.float64)
    signed = k * (inv_focus - 1.0 / g) + rng.normal(0.0, noise_px, g.shape)
    inv_z = np.clip(inv_focus - signed / k, 1.0 / GT_MAX_M, 1.0 / GT_MIN_M)
    out[valid] = (1.0 / inv_z).astype(np.float32)
    return out
