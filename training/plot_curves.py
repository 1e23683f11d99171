"""Training curves from the TensorBoard logs of several runs, as one picture.

    python -m training.plot_curves runs/dfd_recurrent runs/dfd_single_frame runs/monocular \
        --out docs/img/training_curves.png

One panel per scalar (default: the inverse-depth L1 and the total loss), one line per run,
smoothed with a moving average over ``--smooth`` logged points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def read_scalars(run: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one scalar from run/tb; empty arrays when the run never logged it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return np.array([]), np.array([])
    events = acc.Scalars(tag)
    steps = np.array([e.step for e in events])
    values = np.array([e.value for e in events])
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    keep = np.r_[steps[1:] != steps[:-1], True]  # a resumed run logs some steps twice: keep the latest
    return steps[keep], values[keep]


def smooth(values: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or len(values) < n:
        return values
    kernel = np.ones(n) / n
    return np.convolve(np.pad(values, (n - 1, 0), mode="edge"), kernel, mode="valid")


def plot(runs: list[Path], tags: list[str], out: Path, smooth_n: int = 20) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(5.5 * len(tags), 4), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        for run in runs:
            steps, values = read_scalars(run, tag)
            if len(steps):
                ax.plot(steps, smooth(values, smooth_n), label=run.name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(tag)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Training curves (moving average over {smooth_n} logged points)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (runs/<name>) with a tb/ log")
    ap.add_argument("--tags", nargs="+", default=["loss/inv_l1", "loss/total"], help="scalars to plot")
    ap.add_argument("--smooth", type=int, default=20, help="moving-average window in logged points")
    ap.add_argument("--out", type=Path, default=Path("docs/img/training_curves.png"), help="output PNG")
    args = ap.parse_args(argv)
    print(plot(args.runs, args.tags, args.out, args.smooth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
