"""Ablation of the evidence: variants of the classical reference's cost, scored on generated and path-traced data.

    .venv/bin/python scripts/evidence_ablation.py [--bags data/benchmark] [--out docs/evidence_ablation.md]

Every row is ``evaluation.focus_reference.FocusReference`` (the classical reference, the physics the shipped
network's graph computes) with one change, run frame by frame, fresh per sequence:

- knobs of the reference: the cost window, the decay, the hypothesis count, the fill's full confidence, the fit's
  gain prior; then the three that each gained on the dev set (cost window, decay, fill) together, over a small
  grid. The shipped model's evidence (FocusVolumeConfig's cost_window_px, decay, fill_full_conf) is the row chosen
  on the dev set there; the classical reference keeps its own knobs, so it stays the baseline it was;
- ``multiband``: the fit q ~ a h(c) + b in three bands (sigma 1, 2, 4 px), each with its own gain and calibrated
  falloff, costs summed: more sensitivity to large blur;
- ``fine band``: the band at sigma 0.5 px instead of 1 px: more sensitivity to small blur;
- ``texture-adaptive falloff``: the falloff of a 1/f texture pre-blurred by s0 in {0, 0.75, 1.5} px, the best s0
  per pixel and hypothesis (a coarse texture keeps its measure over the first pixels of blur);
- ``re-blur``: beside the fit, the residual of re-blurring, per hypothesis, the sharper of (this frame, the sharpest
  frame kept for that hypothesis) to the other's blur (Gaussian sigma = c / 4), relative to the local band energy;
  ``re-blur alone``: that residual without the fit (it tests relative, not absolute, sharpness);
- ``guided fill``: the push-pull fill's upsampling step weighted by the colour (Lab) difference to the coarse pixel;
- ``energy window 17 px``: the band energy over 17 px instead of 9 (its own calibrated falloff);
- ``two spectra``: the fit q ~ a1 h_2(c) + a2 h_beta(c) + b, a1, a2 >= 0, with the falloffs of 1/f^2 and 1/f^beta
  power spectra (a mix of spectra is fitted exactly; beta 4 is the long-tailed falloff of coarse walls);
- ``guided-filter cost``: the cost volume aggregated by a guided filter of the frame, not an 11 px box;
- ``own-energy confidence``: the confidence times the pixel's share of the strongest measure within 9 px, so that a
  pixel whose measure comes from a nearer edge beside it gives way in the fill.

The variants live in ``scripts/evidence_variants.py``.

Sets: the generated validation clips (training.train_focus_volume.VAL_SET: the training renderer, unseen scenes and
lenses), the path-traced model-selection bags (``--dev-bags``, ``make dev-benchmark``'s; choose there) and the
path-traced benchmark bags (frame-weighted over the 12 bags with 8-25 px lenses, as
docs/benchmark.md). Prints one row per variant; ``--out`` writes the markdown table. About 25 s per variant and set
on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.metrics import frame_metrics

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # variants, training/
from evidence_variants import GuidedCost, GuidedFill, MultiBand, OwnEnergy, Reblur, TextureAdaptive, TwoSpectra  # noqa: E402

WEAK_BAGS = {"afhunt_pan_tabletop_weak", "sweep_arc_room_weak"}  # lenses under 8 px: docs/benchmark.md's split


VARIANTS = {
    "classical reference (its own knobs)": FocusReference,
    "cost window 5 px (11)": lambda: FocusReference(cost_window_px=5),
    "decay 0.90 (0.95)": lambda: FocusReference(decay=0.9),
    "48 hypotheses (32)": lambda: FocusReference(num_hypotheses=48),
    "fill full confidence 0.25 (0.5)": lambda: FocusReference(fill_full_conf=0.25),
    "gain prior 0.5 frames (0.05)": lambda: FocusReference(gain_prior_frames=0.5),
    "gain prior 2 frames (0.05)": lambda: FocusReference(gain_prior_frames=2.0),
    "cost window 5, fill 0.25": lambda: FocusReference(cost_window_px=5, fill_full_conf=0.25),
    "cost window 5, decay 0.90, fill 0.25": lambda: FocusReference(cost_window_px=5, decay=0.9, fill_full_conf=0.25),
    "cost window 5, decay 0.90, fill 0.1": lambda: FocusReference(cost_window_px=5, decay=0.9, fill_full_conf=0.1),
    "cost window 5, decay 0.90, fill 0.05 (the shipped model's)": lambda: FocusReference(
        cost_window_px=5, decay=0.9, fill_full_conf=0.05),
    "cost window 5, decay 0.90, fill 0.02": lambda: FocusReference(cost_window_px=5, decay=0.9, fill_full_conf=0.02),
    "cost window 3, decay 0.90, fill 0.05": lambda: FocusReference(cost_window_px=3, decay=0.9, fill_full_conf=0.05),
    "cost window 7, decay 0.90, fill 0.05": lambda: FocusReference(cost_window_px=7, decay=0.9, fill_full_conf=0.05),
    "cost window 5, decay 0.85, fill 0.1": lambda: FocusReference(cost_window_px=5, decay=0.85, fill_full_conf=0.1),
    "multiband: sigma 1, 2, 4 px": MultiBand,
    "fine band: sigma 0.5 px (1)": lambda: MultiBand(bands=((0.5, 5),)),
    "texture-adaptive falloff": TextureAdaptive,
    "re-blur + fit": Reblur,
    "re-blur alone": lambda: Reblur(alone=True),
    "guided fill": GuidedFill,
    "energy window 17 px (9)": lambda: MultiBand(bands=((1.0, 17),)),
    "two spectra: 1/f^2 + 1/f^4 falloffs": TwoSpectra,
    "two spectra: 1/f^2 + 1/f^3 falloffs": lambda: TwoSpectra(beta=3.0),
    "guided-filter cost (r 5 px, eps 1e-3)": GuidedCost,
    "own-energy confidence (9 px)": OwnEnergy,
}


# ----------------------------------------------------------------------------- data and scoring


def val_sequences():
    """The generated validation clips as {name: [(image, K, lens, stamp_ns, depth)]}."""
    from training.data import ClipCache, build_cache, unit_lens_camera
    from training.train_focus_volume import VAL_SET

    data = ClipCache(build_cache(VAL_SET))
    h, w = data.images.shape[2:4]
    out = {}
    for i in range(len(data)):
        frames = []
        for t in range(data.images.shape[1]):
            K, unit_lens = unit_lens_camera(data.lens[i, t], h, w)
            frames.append((np.asarray(data.images[i, t]), K, unit_lens, 10**9 * (t + 1),
                           data.depth[i, t].astype(np.float32)))  # fmt: skip
        out[f"val_{i:02d}"] = frames
    return out


def bag_sequences(folder: Path):
    from dfd_depth_ros.evaluation.bagio import read_sequence_bag

    out = {}
    for meta in sorted(folder.glob("*/metadata.yaml")):
        seq = read_sequence_bag(meta.parent, require_depth=True)
        out[meta.parent.name] = [(f.image, f.K, f.lens, f.stamp_ns, f.depth_m) for f in seq.frames]
    return out


def score(factory, sequences) -> dict[str, tuple[float, int]]:
    """{sequence: (mean abs_rel over its frames, frames)}, a fresh estimator per sequence."""
    out = {}
    for name, frames in sequences.items():
        est = factory()
        rel = [frame_metrics(est.process(img, K, lens, stamp, "")[0], gt)["abs_rel"]
               for img, K, lens, stamp, gt in frames]
        out[name] = (float(np.nanmean(rel)), len(rel))
    return out


def frame_weighted(rows: dict[str, tuple[float, int]], skip=()) -> float:
    kept = [v for k, v in rows.items() if k not in skip]
    return sum(a * n for a, n in kept) / sum(n for _, n in kept)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bags", default="data/benchmark", help="folder of benchmark bags (python -m benchmark.build)")
    p.add_argument("--dev-bags", default="data/benchmark_dev",
                   help="folder of model-selection bags (python -m benchmark.build --set dev); skipped if empty")
    p.add_argument("--no-val", action="store_true", help="skip the generated validation clips")
    p.add_argument("--only", nargs="+", metavar="LABEL_START", help="only the variants whose label starts so")
    p.add_argument("--out", help="write the markdown table here")
    a = p.parse_args(argv)
    sets = {}
    if not a.no_val:
        sets["val (generated, 30 clips)"] = (val_sequences(), ())
    dev = Path(a.dev_bags)
    if any(dev.glob("*/metadata.yaml")):
        sets["dev (path-traced, 12 bags)"] = (bag_sequences(dev), ())
    bags = Path(a.bags)
    if any(bags.glob("*/metadata.yaml")):
        sets["benchmark (path-traced, 12 bags)"] = (bag_sequences(bags), WEAK_BAGS)
    else:
        print(f"no bags under {bags}: benchmark column skipped", file=sys.stderr)
    header = "| variant | " + " | ".join(sets) + " |"
    lines = [header, "|---|" + "---|" * len(sets)]
    print(header, flush=True)
    for label, factory in VARIANTS.items():
        if a.only and not any(label.startswith(o) for o in a.only):
            continue
        t0 = time.time()
        cells = [f"{frame_weighted(score(factory, seqs), skip):.3f}" for seqs, skip in sets.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], f"({time.time() - t0:.0f} s)", flush=True)
    if a.out:
        intro = ("abs_rel (frame-weighted mean over the set's frames) of the classical reference with one change each; "
                 "`.venv/bin/python scripts/evidence_ablation.py --out docs/evidence_ablation.md` "
                 "(see the script's docstring for what each variant is).\n\n")  # fmt: skip
        Path(a.out).write_text("# Evidence ablation\n\n" + intro + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
