"""Score the classical defocus reference, the sliding-window DepthFromFocus and the constant-median floor on bags.

    .venv/bin/python scripts/eval_reference.py BAG_OR_FOLDER [...] [--json out.json]

Each argument is a bag folder or a folder of bag folders (those holding a metadata.yaml). Prints one
row per bag and method: abs_rel, delta1, missing, and for the reference also ms/frame and the
abs_rel of its most / least confident halves of the pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.bagio import read_sequence_bag
from dfd_depth_ros.evaluation.depth_from_focus import DepthFromFocus
from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evaluation.references import median_floor
from dfd_depth_ros.metrics import MetricAccumulator, gt_mask


def bag_paths(args: list[str]) -> list[Path]:
    out = []
    for a in map(Path, args):
        out += [a] if (a / "metadata.yaml").exists() else sorted(p.parent for p in a.glob("*/metadata.yaml"))
    return out


def confidence_split(depth: np.ndarray, conf: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean abs_rel of the most and the least confident halves of the valid pixels of one frame."""
    valid = gt_mask(gt) & np.isfinite(depth)
    err = np.abs(depth[valid] - gt[valid]) / gt[valid]
    order = np.argsort(-conf[valid], kind="stable")
    half = order.size // 2
    return float(err[order[:half]].mean()), float(err[order[half:]].mean())


def evaluate_bag(path: Path, **reference_kwargs) -> dict[str, dict]:
    seq = read_sequence_bag(path, require_depth=True)
    ref, dff = FocusReference(**reference_kwargs), DepthFromFocus()
    acc = {"dfd_classical": MetricAccumulator(), "depth_from_focus": MetricAccumulator(),
           "constant_median": MetricAccumulator()}  # fmt: skip
    splits = []
    for f in seq.frames:
        t0 = time.perf_counter()
        depth, conf = ref.process(f.image, f.K, f.lens, f.stamp_ns, "")
        acc["dfd_classical"].add(depth, f.depth_m, (time.perf_counter() - t0) * 1e3)
        acc["depth_from_focus"].add(dff.process(f.image, f.K, f.lens, f.stamp_ns), f.depth_m)
        acc["constant_median"].add(median_floor(f.depth_m), f.depth_m)
        if np.isfinite(depth).all():
            splits.append(confidence_split(depth, conf, f.depth_m))
    out = {k: a.summary() for k, a in acc.items()}
    if splits:
        out["dfd_classical"]["abs_rel_conf_top"], out["dfd_classical"]["abs_rel_conf_bottom"] = np.mean(splits, 0)
    lens = seq.meta.get("lens", {})
    out["info"] = {"max_blur_px": lens.get("max_blur_px"), "frames": len(seq.frames)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bags", nargs="+")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--no-align", action="store_true", help="run the reference without flow alignment")
    args = p.parse_args(argv)
    paths = bag_paths(args.bags)
    if not paths:
        print("no bags found", file=sys.stderr)
        return 1
    results = {}
    print(f"{'bag':28s} {'blur':>5s} | {'method':16s} {'abs_rel':>8s} {'delta1':>7s} {'missing':>7s} "
          f"{'ms':>6s} {'top50':>7s} {'bot50':>7s}")  # fmt: skip
    for path in paths:
        res = evaluate_bag(path, align=not args.no_align)
        results[path.name] = res
        blur = res["info"]["max_blur_px"]
        for method in ("dfd_classical", "depth_from_focus", "constant_median"):
            m = res[method]
            extra = (f"{m['ms_per_frame']:6.1f} {m.get('abs_rel_conf_top', np.nan):7.3f} "
                     f"{m.get('abs_rel_conf_bottom', np.nan):7.3f}") if method == "dfd_classical" else ""  # fmt: skip
            print(f"{path.name[:28]:28s} {blur if blur is None else round(blur, 1)!s:>5s} | {method:16s} "
                  f"{m['abs_rel']:8.3f} {m['delta1']:7.3f} {m['missing']:7.3f} {extra}")  # fmt: skip
    for method in ("dfd_classical", "depth_from_focus", "constant_median"):
        vals = [r[method]["abs_rel"] for r in results.values()]
        d1 = [r[method]["delta1"] for r in results.values()]
        print(f"{'MEAN':28s} {'':5s} | {method:16s} {np.nanmean(vals):8.3f} {np.nanmean(d1):7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
