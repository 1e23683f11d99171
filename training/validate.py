"""Compare checkpoints on the validation split (for choosing recipes; the test set stays untouched).

    python -m training.validate runs/a/last.pt runs/b/last.pt [--out docs/loss_ablation.md]

Validation clips: seeds disjoint from training and test, 16 frames at 320x240, every schedule,
lenses drawn like training. Prints abs_rel, delta1 and flicker per schedule for each checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dfd_depth_ros.metrics import MetricAccumulator
from dfd_depth_ros.synthetic import SCHEDULES
from training.data import ClipCache, ClipSetConfig, build_cache
from training.train import load_model

VAL_SET = ClipSetConfig(split="val", clips=4 * len(SCHEDULES), frames=16, width_px=320, height_px=240,
                        shard_clips=10)


def validate(checkpoint: str | Path, data: ClipCache) -> tuple[dict[str, dict[str, float]], int | None]:
    """({schedule or 'overall': contract summary}, training iteration or None) of one checkpoint."""
    net, ckpt = load_model(checkpoint)
    aif = bool(ckpt.get("config", {}).get("all_in_focus", False))
    per = {s: MetricAccumulator() for s in SCHEDULES}
    overall = MetricAccumulator()
    for i in range(len(data)):
        b = data.batch([i], all_in_focus=aif)
        sched = SCHEDULES[int(data.schedule[i])]
        for acc in (per[sched], overall):
            acc.reset_sequence()
        _, t, _, h, w = b["image"].shape
        state = net.initial_state(1, h, w)
        with torch.no_grad():
            for k in range(t):
                depth, _, state = net(b["image"][:, k], b["lens"][:, k], state)
                pred, gt = depth[0, 0].numpy(), b["depth"][0, k, 0].numpy()
                per[sched].add(pred, gt)
                overall.add(pred, gt)
    return {"overall": overall.summary(), **{s: a.summary() for s, a in per.items()}}, ckpt.get("iteration")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="training checkpoints (runs/<name>/last.pt)")
    ap.add_argument("--cache", default="data/cache", help="folder for the rendered validation cache")
    ap.add_argument("--out", help="also write the table as markdown to this file")
    ap.add_argument("--title", default="Validation results", help="heading of the markdown file")
    args = ap.parse_args(argv)
    data = ClipCache(build_cache(VAL_SET, args.cache))
    cols = ("overall", *SCHEDULES)
    lines = ["| run | iterations | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for path in tqdm(args.checkpoints, desc="checkpoints", unit="run"):
        r, it = validate(path, data)
        cells = [f"{r[c]['abs_rel']:.3f} / {r[c]['delta1']:.3f} / {r[c]['flicker']:.3f}"
                 if np.isfinite(r[c]["abs_rel"]) else "-" for c in cols]
        name = Path(path).parent.name if Path(path).name == "last.pt" else Path(path).stem  # runs/<name>/last.pt
        lines.append(f"| {name} | {it if it is not None else '-'} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("cells: abs_rel / delta1 / flicker\n" + table)
    if args.out:
        cmd = "python -m training.validate " + " ".join(str(p) for p in args.checkpoints) + f" --out {args.out}"
        if args.title != ap.get_default("title"):
            cmd += f' --title "{args.title}"'
        Path(args.out).write_text(
            f"# {args.title}\n\nReproduce: `{cmd}`\n\nValidation set `{VAL_SET.key()}`: {VAL_SET.clips} "
            f"sequences of {VAL_SET.frames} frames at {VAL_SET.width_px}x{VAL_SET.height_px}, seeds disjoint "
            "from training and test, lenses drawn like training. Metric depth, no alignment. "
            "Cells: abs_rel / delta1 / flicker.\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
