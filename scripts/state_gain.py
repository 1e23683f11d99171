"""What the temporal state adds on the benchmark: dfd_recurrent against dfd_single_frame on focus-varying bags.

    .venv/bin/python scripts/state_gain.py out/benchmark

Reads an eval-bags folder run with --baselines (``make benchmark``) and prints, frame-weighted over the bags whose
focus moves (schedule other than ``fixed``) with 8-25 px lenses (names without "weak"), abs_rel and flicker of both
rows and the relative cut in abs_rel (the issue's target: at least 30 %, with lower flicker), then per bag.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    rows = json.loads((Path(argv[0]) / "summary.json").read_text())["bags"]
    moving = [r for r in rows if r["sequence"].get("schedule") != "fixed" and "weak" not in r["bag"]]
    frames = sum(r["frames"] for r in moving)

    def mean(method: str, key: str) -> float:
        return sum(r["methods"][method][key] * r["frames"] for r in moving) / frames

    rec, single = mean("dfd_recurrent", "abs_rel"), mean("dfd_single_frame", "abs_rel")
    print(f"{len(moving)} focus-varying bags with 8-25 px lenses, {frames} frames")
    print(f"abs_rel  dfd_recurrent {rec:.3f}  dfd_single_frame {single:.3f}  cut {100 * (1 - rec / single):.0f} %")
    print(f"flicker  dfd_recurrent {mean('dfd_recurrent', 'flicker'):.3f}  dfd_single_frame "
          f"{mean('dfd_single_frame', 'flicker'):.3f}")
    for r in moving:
        a, b = r["methods"]["dfd_recurrent"]["abs_rel"], r["methods"]["dfd_single_frame"]["abs_rel"]
        print(f"  {r['bag']:32s} {a:.3f} {b:.3f} cut {100 * (1 - a / b):4.0f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
