"""Where the classical reference errs: abs_rel and median log bias per ground-truth depth band, confident or not.

    .venv/bin/python scripts/depth_bias.py data/benchmark/sweep_pan_room_partial [more bag folders ...] [--picture DIR]

For each bag, over all its frames at the evidence's half resolution: per depth band (0-0.5-1-2-4-8-21 m), the
share of pixels, the share with margin confidence > 0.3, abs_rel / median ln(estimate / truth) of the best
hypothesis on the confident pixels ("raw") and of the filled output on the others. A negative bias is a
depth read too near.

Per band it also says where the confident pixels read more than 1.5x too near take their depth from: the share
of them with a ground-truth surface at the estimated depth (within 25 %) no more than ``REACH_PX`` half-resolution
pixels away (the focus measure's support: band and energy window, plus the cost window), against the same share
for the estimate of a random other pixel of the same frame (chance). A share far above chance means the
error is foreground bleed: a nearer surface's texture inside the measure's window, not this surface's own curve.

``--picture DIR`` writes DIR/<bag>_bias.png of the last frame: the frame | ground truth | the best hypothesis | where
it errs (grey: not confident; green: confident, within 25 %; red: confident, >1.5x too near with a surface at that
depth within reach (bleed); orange: confident, >1.5x too near without one; blue: confident, >1.5x too far).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from dfd_depth_ros.evaluation.bagio import read_sequence_bag
from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.viz import colorize_depth

BANDS_M = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 21.0)
REACH_PX = 9  # half-resolution px: band (~4 px) + energy window (4) at full resolution, and the 11 px cost window


class _Kept(FocusReference):
    """FocusReference that keeps its last best-hypothesis map and confidence (half resolution)."""

    def _estimate(self, focus_diopters, scale_pxm):
        self.last = super()._estimate(focus_diopters, scale_pxm)
        return self.last


def _surface_within(gt: np.ndarray, est: np.ndarray, reach_px: int = REACH_PX) -> np.ndarray:
    """(h, w) bool: some ground-truth pixel within ``reach_px`` (square) has a depth within 25 % of ``est``."""
    log_gt = np.log(np.where(np.isfinite(gt) & (gt > 0), gt, 1e6)).astype(np.float32)
    log_est = np.log(np.where(np.isfinite(est) & (est > 0), est, 1e-6)).astype(np.float32)
    found = np.zeros(gt.shape, bool)
    h, w = gt.shape
    pad = np.pad(log_gt, reach_px, mode="edge")
    for dy in range(-reach_px, reach_px + 1):
        for dx in range(-reach_px, reach_px + 1):
            shifted = pad[reach_px + dy : reach_px + dy + h, reach_px + dx : reach_px + dx + w]
            found |= np.abs(shifted - log_est) < np.log(1.25)
    return found


def _picture(path: Path, image: np.ndarray, gt: np.ndarray, est: np.ndarray, conf: np.ndarray) -> None:
    """The last frame's error classes beside the frame, the ground truth and the best hypothesis (see the docstring)."""
    size = (gt.shape[1], gt.shape[0])
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, 2)
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    sure = (conf > 0.3) & np.isfinite(gt)
    classes = np.full(gt.shape + (3,), 96, np.uint8)
    ratio = est / np.where(np.isfinite(gt) & (gt > 0), gt, np.nan)
    too_near = sure & (ratio < 1 / 1.5)
    bleed = _surface_within(gt, est)
    classes[sure & (np.abs(np.log(ratio)) < np.log(1.25))] = (40, 180, 60)
    classes[too_near & bleed] = (220, 40, 40)
    classes[too_near & ~bleed] = (240, 150, 30)
    classes[sure & (ratio > 1.5)] = (50, 90, 230)
    row = np.concatenate([rgb, colorize_depth(gt), colorize_depth(est), classes], 1)
    cv2.imwrite(str(path), cv2.resize(row, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)[..., ::-1])


def main(argv: list[str]) -> int:
    picture_dir = None
    if "--picture" in argv:
        i = argv.index("--picture")
        picture_dir, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2 :]
        picture_dir.mkdir(parents=True, exist_ok=True)
    if not argv:
        print(__doc__)
        return 2
    for path in argv:
        seq, ref = read_sequence_bag(path, require_depth=True), _Kept()
        gt_all, raw_all, out_all, conf_all, near_all, chance_all = [], [], [], [], [], []
        rng = np.random.default_rng(0)
        for f in seq.frames:
            depth, _ = ref.process(f.image, f.K, f.lens, f.stamp_ns, "")
            inv, conf = ref.last
            gt = cv2.resize(f.depth_m, ref._acc_size, interpolation=cv2.INTER_NEAREST)
            valid = np.isfinite(gt) & (gt > 0.1) & (gt < 20)
            gt_all.append(gt[valid])
            est = 1.0 / np.clip(inv, 1 / 20, 10)
            raw_all.append(est[valid])
            out_all.append(cv2.resize(depth, ref._acc_size, interpolation=cv2.INTER_NEAREST)[valid])
            conf_all.append(conf[valid])
            near_all.append(_surface_within(gt, est)[valid])
            shuffled = np.full(gt.shape, np.nan, np.float32)
            shuffled[valid] = rng.permutation(est[valid])
            chance_all.append(_surface_within(gt, shuffled)[valid])
        if picture_dir is not None:
            _picture(picture_dir / f"{seq.name}_bias.png", f.image, gt, est, conf)
        parts = (gt_all, raw_all, out_all, conf_all, near_all, chance_all)
        g, raw, out, conf, near, chance = map(np.concatenate, parts)
        print(seq.name)
        for lo, hi in zip(BANDS_M[:-1], BANDS_M[1:], strict=True):
            band = (g >= lo) & (g < hi)
            if band.mean() < 0.02:
                continue
            sure, unsure = band & (conf > 0.3), band & (conf <= 0.3)

            def cell(mask, est, g=g):
                if not mask.any():
                    return "      -      "
                rel = np.mean(np.abs(est[mask] - g[mask]) / g[mask])
                return f"{rel:.2f} / {np.median(np.log(est[mask] / g[mask])):+.2f}"

            too_near = sure & (raw < g / 1.5)
            bleed = (f"{100 * too_near.sum() / max(sure.sum(), 1):3.0f} % of them >1.5x too near, "
                     f"{100 * near[too_near].mean():3.0f} % of those with a surface at that depth within {REACH_PX} px "
                     f"(chance {100 * chance[too_near].mean():3.0f} %)") if too_near.any() else "none >1.5x too near"
            print(f"  {lo:g}-{hi:g} m: {100 * band.mean():3.0f} % of pixels, {100 * sure.sum() / band.sum():3.0f} % "
                  f"confident | confident raw {cell(sure, raw)} | others, filled {cell(unsure, out)}\n"
                  f"      confident: {bleed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
