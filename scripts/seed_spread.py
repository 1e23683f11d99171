"""Per-bag abs_rel of several models' eval-bags runs beside the baselines: how far apart training runs land.

    .venv/bin/python scripts/seed_spread.py out/benchmark out/bench_s1 out/bench_v2 out/bench_s2

The first folder is the reference run (``make benchmark``: it has classical_dfd and the median floor); each further
folder is ``dfd-depth eval-bags data/benchmark --out FOLDER --model MODEL.onnx``. Prints, per bag, every run's
dfd_recurrent abs_rel, then classical_dfd and the floor of the reference run, and the frame-weighted means over all
bags and over the bags with 8-25 px lenses (the docs/benchmark.md headline, without the names holding "weak"),
and how many bags each run wins against classical_dfd and the floor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def per_bag(folder: Path) -> dict[str, dict]:
    rows = json.loads((folder / "summary.json").read_text())["bags"]
    return {r["bag"]: r for r in rows}


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__)
        return 2
    ref = per_bag(Path(argv[0]))
    runs = {Path(a).name: per_bag(Path(a)) for a in argv}
    bags = sorted(ref)
    frames = {b: ref[b]["frames"] for b in bags}
    floor = {b: ref[b]["references"]["median_floor"]["abs_rel"] for b in bags}
    classical = {b: ref[b]["methods"]["classical_dfd"]["abs_rel"] for b in bags}
    rec = {name: {b: rows[b]["methods"]["dfd_recurrent"]["abs_rel"] for b in bags} for name, rows in runs.items()}
    print(f"{'bag':30s} " + " ".join(f"{n[:14]:>14s}" for n in rec) + f" {'classical':>10s} {'floor':>7s}")
    for b in bags:
        print(f"{b:30s} " + " ".join(f"{rec[n][b]:14.3f}" for n in rec) + f" {classical[b]:10.3f} {floor[b]:7.3f}")

    def weighted(values: dict[str, float], strong_only: bool) -> float:
        keep = [b for b in bags if not (strong_only and "weak" in b)]
        return sum(values[b] * frames[b] for b in keep) / sum(frames[b] for b in keep)

    for strong in (True, False):
        label = "8-25 px lenses, frame-weighted" if strong else "all bags, frame-weighted"
        print(f"{label:30s} " + " ".join(f"{weighted(rec[n], strong):14.3f}" for n in rec)
              + f" {weighted(classical, strong):10.3f} {weighted(floor, strong):7.3f}")  # fmt: skip
    for what, ref_values in (("bags below classical_dfd", classical), ("bags below the floor", floor)):
        wins = [sum(round(rec[n][b], 3) < round(ref_values[b], 3) for b in bags) for n in rec]
        print(f"{what:30s} " + " ".join(f"{w:11d}/{len(bags)}" for w in wins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
