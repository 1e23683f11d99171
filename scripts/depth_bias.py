"""Where the classical reference errs: abs_rel and median log bias per ground-truth depth band, confident or not.

    .venv/bin/python scripts/depth_bias.py data/benchmark/sweep_pan_room_partial [more bag folders ...]

For each bag, over all its frames at the evidence's half resolution: per depth band (0-0.5-1-2-4-8-21 m), the
share of pixels, the share with margin confidence > 0.3, abs_rel / median ln(estimate / truth) of the best
hypothesis on the confident pixels ("raw") and of the filled output on the others. A negative bias is a
depth read too near.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from dfd_depth_ros.evaluation.bagio import read_sequence_bag
from dfd_depth_ros.evaluation.focus_reference import FocusReference

BANDS_M = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 21.0)


class _Kept(FocusReference):
    """FocusReference that keeps its last best-hypothesis map and confidence (half resolution)."""

    def _estimate(self, focus_diopters, scale_pxm):
        self.last = super()._estimate(focus_diopters, scale_pxm)
        return self.last


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for path in argv:
        seq, ref = read_sequence_bag(path, require_depth=True), _Kept()
        gt_all, raw_all, out_all, conf_all = [], [], [], []
        for f in seq.frames:
            depth, _ = ref.process(f.image, f.K, f.lens, f.stamp_ns, "")
            inv, conf = ref.last
            gt = cv2.resize(f.depth_m, ref._acc_size, interpolation=cv2.INTER_NEAREST)
            valid = np.isfinite(gt) & (gt > 0.1) & (gt < 20)
            gt_all.append(gt[valid])
            raw_all.append(1.0 / np.clip(inv[valid], 1 / 20, 10))
            out_all.append(cv2.resize(depth, ref._acc_size, interpolation=cv2.INTER_NEAREST)[valid])
            conf_all.append(conf[valid])
        g, raw, out, conf = map(np.concatenate, (gt_all, raw_all, out_all, conf_all))
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

            print(f"  {lo:g}-{hi:g} m: {100 * band.mean():3.0f} % of pixels, {100 * sure.sum() / band.sum():3.0f} % "
                  f"confident | confident raw {cell(sure, raw)} | others, filled {cell(unsure, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
