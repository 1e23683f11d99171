"""What eval-bag and eval-bags write: metrics.json, report.md, plots, and the several-bag summary.

    write_bag_outputs(result, out_dir, plots=True)   # metrics.json, report.md, *.png
    write_summary(entries, failures, out_dir)        # summary.md, summary.json

Plots (PNG, matplotlib imported when drawing): abs_rel per frame with the state resets and the
focus; abs_rel against ground-truth depth; abs_rel against blur diameter in px; and a strip of
RGB | ground truth | each method's depth and error map for a few frames.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.evaluate import (
    BLUR_BIN_EDGES_PX,
    DEPTH_BIN_EDGES_M,
    METHOD_SINGLE_FRAME,
    BagEvaluation,
    aggregate_metrics,
)

__all__ = ["PLOTS", "metrics_table", "report_markdown", "summary_document", "summary_markdown",
           "write_bag_outputs", "write_plots", "write_summary"]

PLOTS = {
    "error_vs_frame.png": "abs_rel per frame (dashed: temporal state resets of dfd_recurrent) and the focus distance",
    "error_vs_depth.png": "abs_rel against ground-truth depth",
    "error_vs_blur.png": "abs_rel against the blur diameter of the ground truth, px",
    "strip.png": "RGB | ground truth | each method's depth and its error |p - g| / g (reference rows left out)",
}
COLUMNS = (("abs_rel", "abs_rel"), ("sq_rel", "sq_rel"), ("rmse", "rmse [m]"), ("log_rmse", "log_rmse"),
           ("delta1", "δ<1.25"), ("delta2", "δ<1.25²"), ("delta3", "δ<1.25³"), ("flicker", "flicker"),
           ("missing", "missing"), ("ms_per_frame", "ms/frame"), ("frames", "frames"))
MAX_ERROR_SHOWN = 1.0  # abs rel error at the top of the error map's colour scale


def format_metric(value, key: str = "") -> str:
    """One metric for a markdown table: "–" when undefined, missing in %, frames as an integer."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if key == "frames":
        return str(int(value))
    if key == "missing":
        return f"{100 * value:.1f} %"
    if key == "ms_per_frame":
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def metrics_table(rows: list[tuple[str, dict]], first: str = "method") -> list[str]:
    """Markdown table lines: one row per (label, metrics dict)."""
    lines = ["| " + " | ".join([first, *(title for _, title in COLUMNS)]) + " |",
             "|" + "---|" * (len(COLUMNS) + 1)]
    for label, m in rows:
        lines.append("| " + " | ".join([label, *(format_metric(m.get(key), key) for key, _ in COLUMNS)]) + " |")
    return lines


def _range(values, scale: float = 1.0, digits: int = 3) -> tuple[str, str]:
    return f"{min(values) * scale:.{digits}g}", f"{max(values) * scale:.{digits}g}"


# ----------------------------------------------------------------------------- report.md


def report_markdown(result: BagEvaluation, plots: list[str], lens_tolerance_s: float) -> str:
    """The human report of one bag."""
    doc = result.metrics_json()
    size = f"{result.image_size[0]}x{result.image_size[1]} px" if result.image_size else "?"
    span_s = (result.frames[-1].stamp_ns - result.frames[0].stamp_ns) * 1e-9 if result.frames else 0.0
    lines = [
        f"# Evaluation of bag `{result.name}`",
        "",
        f"`{result.bag}` ({result.storage}): {len(result.frames)} of {result.image_messages} image messages "
        f"evaluated, {result.scored_frames} scored against ground truth, {size}, {span_s:.2f} s of stamps.",
        "Metric depth, no scale or shift alignment; each metric is computed per frame and averaged over "
        "frames (the bag contract). `missing`: fraction of valid ground-truth pixels with no finite "
        "prediction. Lower is better except δ.",
        "",
        "## Metrics",
        "",
        *metrics_table([(name, m) for name, m in doc["methods"].items()]
                       + [(f"*{name} (reference)*", m) for name, m in doc.get("references", {}).items()]),
        "",
    ]
    for name, m in result.methods.items():
        lines.append(f"- **{name}**: {m.description}")
    for note in result.notes:
        lines.append(f"- note: {note}")
    lines += ["", *_lens_section(result), "", *_frames_section(result, lens_tolerance_s), "",
              *_resets_section(result), ""]
    if plots:
        lines += ["## Plots", ""]
        for name in plots:
            lines += [f"{PLOTS[name]}:", "", f"![{name}]({name})", ""]
    else:
        lines += ["Plots were not drawn (--no-plots).", ""]
    return "\n".join(lines)


def _lens_section(result: BagEvaluation) -> list[str]:
    f = result.frames
    focus = [x.focus_m for x in f]
    rows = [("focus distance [m]", *_range(focus)), ("f-number", *_range([x.f_number for x in f])),
            ("focal length [mm]", *_range([x.focal_length_m for x in f], 1e3)),
            ("fx [px]", *_range([x.fx_px for x in f], digits=4))]
    lines = ["## Lens and blur", "", "| | min | max |", "|---|---|---|"]
    lines += [f"| {a} | {lo} | {hi} |" for a, lo, hi in rows]
    distinct = len({round(1.0 / x, 4) for x in focus})
    b, g = result.blur_px, result.gt_depth
    lines += ["", f"{distinct} distinct focus settings over {len(f)} frames."]
    if b.total:
        lines.append(
            f"Blur diameter of the ground truth, c_px = fx * D * |1/focus - 1/z| over the valid ground-truth "
            f"pixels of the scored frames: min {b.min:.2f}, 5 % {b.quantile(0.05):.2f}, median "
            f"{b.quantile(0.5):.2f}, 95 % {b.quantile(0.95):.2f}, max {b.max:.2f} px. Ground-truth depth: "
            f"min {g.min:.2f}, median {g.quantile(0.5):.2f}, max {g.max:.2f} m.")
    else:
        lines.append("No valid ground-truth pixel (0.1-20 m): no blur range.")
    return lines


def _frames_section(result: BagEvaluation, lens_tolerance_s: float) -> list[str]:
    r = result.read
    rows = [
        ("image messages in the bag", result.image_messages),
        ("frames evaluated (in stamp order)", len(result.frames)),
        ("scored against ground truth", result.scored_frames),
        ("evaluated without a ground-truth message (run, not scored)", len(result.frames) - result.scored_frames),
        (f"skipped: no lens state at the image stamp (interpolated, or nearest within {lens_tolerance_s} s)",
         r.skipped_no_lens),
        ("skipped: no camera_info with a calibrated K of the image size", r.skipped_no_camera_info),
        ("skipped: stamp not after the previous frame's (out of order, duplicate)", r.skipped_out_of_order),
        ("camera_info taken from the nearest stamp (none at the image stamp)", r.camera_info_inexact),
        ("lens samples read (unusable: missing joint, value <= 0)", f"{r.lens_samples} ({r.lens_samples_ignored})"),
    ]
    if result.excluded_frames:
        rows.append(("left out on request (not among the stamps to evaluate)", result.excluded_frames))
    lines = ["## Frames", "", "| | frames |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return lines


def _resets_section(result: BagEvaluation) -> list[str]:
    lines = ["## Temporal state resets", "",
             "DepthStream resets its recurrent state on the first frame (start), when the stamp goes back "
             "(time_backwards), after a gap of more than 5 frame periods (gap), and when the resolution, "
             "frame_id or intrinsics change.", ""]
    for name, m in result.methods.items():
        if name == METHOD_SINGLE_FRAME:
            lines.append(f"- {name}: state zeroed before every frame (by design)")
        elif not m.reset_frames:
            lines.append(f"- {name}: no temporal state")
        else:
            counts = ", ".join(f"{reason} {n}" for reason, n in sorted(m.resets.items()))
            at = ", ".join(f"#{i} {reason}" for i, reason in m.reset_frames[:20])
            more = f" (+{len(m.reset_frames) - 20} more)" if len(m.reset_frames) > 20 else ""
            lines.append(f"- {name}: {len(m.reset_frames)} ({counts}); at frames {at}{more}")
    return lines


# ----------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_error_vs_frame(result: BagEvaluation, path: Path) -> Path:
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=[2, 1], constrained_layout=True)
    idx = np.array([f.index for f in result.frames])
    for name, m in result.methods.items():
        y = np.array([np.nan if fm is None else fm["abs_rel"] for fm in m.frame_metrics], dtype=float)
        ax.plot(idx, y, ".-", label=name)
    first = next(iter(result.methods.values()))
    for i, reason in first.reset_frames:
        if reason != "start":
            ax.axvline(i, color="k", ls="--", lw=0.8)
            ax.text(i, ax.get_ylim()[1], f" {reason}", fontsize=7, va="top")
    ax.set_ylabel("abs_rel")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax2.plot(idx, [f.focus_m for f in result.frames], "k.-", label="focus distance")
    ax2.set_ylabel("focus [m]")
    ax2.set_xlabel("frame (evaluated, in stamp order)")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{result.name}: error per frame")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _plot_binned(result: BagEvaluation, path: Path, attr: str, edges: np.ndarray, xlabel: str, log_x: bool,
                 title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    finite_edges = np.where(np.isfinite(edges), edges, edges[-2] * 1.5)
    centres = np.sqrt(finite_edges[:-1] * finite_edges[1:]) if log_x else 0.5 * (finite_edges[:-1] + finite_edges[1:])
    counts = None
    for name, m in result.methods.items():
        binned = getattr(m, attr)
        mean = binned.mean()
        ax.plot(centres, mean, "o-", label=name)
        counts = binned.count if counts is None else np.maximum(counts, binned.count)
    if log_x:
        from matplotlib import ticker

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("abs_rel (mean over pixels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    if counts is not None and counts.any():
        twin = ax.twinx()
        twin.bar(centres, counts, width=np.diff(finite_edges) * 0.9, color="grey", alpha=0.15, align="center")
        twin.set_ylabel("valid pixels", color="grey")
        used = np.nonzero(counts)[0]
        ax.set_xlim(finite_edges[used[0]], finite_edges[used[-1] + 1])
    fig.suptitle(f"{result.name}: {title}")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_strip(result: BagEvaluation, path: Path) -> Path:
    from dfd_depth_ros.viz import colorize, colorize_depth

    plt = _pyplot()
    g = result.gt_depth
    lo, hi = (max(g.min * 0.9, 0.1), min(g.max * 1.1, 20.0)) if g.total else (0.3, 10.0)
    names = [n for n, m in result.methods.items() if not m.reference]
    titles = ["RGB", "ground truth", *[t for n in names for t in (n, f"{n} error")]]
    rows = max(len(result.strip), 1)
    h, w = result.strip[0].image.shape[:2] if result.strip else (48, 64)
    scale = 1.6 / max(w / 64, 1.0) if w < 160 else 1.0
    fig, axes = plt.subplots(rows, len(titles), figsize=(len(titles) * 1.9 * scale * w / max(h, w) + 0.5,
                                                          rows * 1.9 * scale * h / max(h, w) + 0.6),
                             squeeze=False, constrained_layout=True)
    for r, s in enumerate(result.strip):
        panels = [s.image, colorize_depth(s.gt_m, lo, hi)]
        for n in names:
            pred = s.depth_m[n]
            with np.errstate(invalid="ignore", divide="ignore"):
                err = np.abs(pred - s.gt_m) / s.gt_m
            panels += [colorize_depth(pred, lo, hi), colorize(err, 0.0, MAX_ERROR_SHOWN, cmap=_inferno())]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(f"#{s.index}\nfocus {s.focus_m:.2f} m", fontsize=7)
    fig.suptitle(f"{result.name}: depth {lo:.2f}-{hi:.2f} m (log, red = near); error 0-{MAX_ERROR_SHOWN:g} "
                 "(abs rel, bright = large); grey = invalid", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_frame_strip(result: BagEvaluation, path: Path, width_in: float = 14.0) -> Path:
    """One frame (the middle of the strip frames): RGB | ground truth | each method's depth | its error.

    The reference rows are left out (they are not estimates). Small on purpose: one per bag in the docs.
    """
    from dfd_depth_ros.viz import colorize, colorize_depth

    plt = _pyplot()
    s = result.strip[len(result.strip) // 2]
    g = result.gt_depth
    lo, hi = (max(g.min * 0.9, 0.1), min(g.max * 1.1, 20.0)) if g.total else (0.3, 10.0)
    names = [n for n, m in result.methods.items() if not m.reference]
    panels, titles = [s.image, colorize_depth(s.gt_m, lo, hi)], ["RGB", "ground truth"]
    for n in names:
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(s.depth_m[n] - s.gt_m) / s.gt_m
        panels += [colorize_depth(s.depth_m[n], lo, hi), colorize(err, 0.0, MAX_ERROR_SHOWN, cmap=_inferno())]
        titles += [n, f"{n} error"]
    h, w = s.image.shape[:2]
    panel_in = width_in / len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width_in, panel_in * h / w + 0.5), squeeze=False,
                             constrained_layout=True)
    for ax, img, title in zip(axes[0], panels, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=7)
    fig.suptitle(f"{result.name}, frame {s.index}, focus {s.focus_m:.2f} m: depth {lo:.2f}-{hi:.2f} m (log, "
                 f"red = near), error 0-{MAX_ERROR_SHOWN:g} abs rel", fontsize=8)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def _inferno() -> int:
    import cv2

    return cv2.COLORMAP_INFERNO


def write_plots(result: BagEvaluation, out: Path) -> list[str]:
    """Draw the four plots into ``out``; returns their file names."""
    plot_error_vs_frame(result, out / "error_vs_frame.png")
    _plot_binned(result, out / "error_vs_depth.png", "by_depth", DEPTH_BIN_EDGES_M, "ground-truth depth [m]", True,
                 "error against ground-truth depth")
    _plot_binned(result, out / "error_vs_blur.png", "by_blur", BLUR_BIN_EDGES_PX, "blur diameter c [px]", False,
                 "error against blur size")
    plot_strip(result, out / "strip.png")
    return list(PLOTS)


# ----------------------------------------------------------------------------- writing


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def write_bag_outputs(result: BagEvaluation, out: Path, plots: bool = True, lens_tolerance_s: float = 0.05) -> list[
        Path]:
    """metrics.json, report.md and (with ``plots``) the PNGs of one bag into the existing folder ``out``."""
    out = Path(out)
    written = [write_json(out / "metrics.json", result.metrics_json())]
    names = write_plots(result, out) if plots else []
    (out / "report.md").write_text(report_markdown(result, names, lens_tolerance_s))
    return [*written, out / "report.md", *(out / n for n in names)]


def summary_document(entries: list[tuple[str, dict]], failures: list[tuple[str, str]]) -> dict:
    """summary.json: per bag (its folder and metrics.json), overall frame-weighted, failures."""
    docs = [doc for _, doc in entries]
    return {
        "bags": [{"folder": folder, **doc} for folder, doc in entries],
        "overall": {"bags": len(docs), "frames": int(sum(d["frames"] for d in docs)),
                    "methods": aggregate_metrics(docs)},
        "failed": [{"bag": bag, "error": error} for bag, error in failures],
    }


def summary_markdown(summary: dict) -> str:
    rows = []
    methods = list(summary["overall"]["methods"])
    for name in methods:
        rows.append((f"**overall** | {name}", summary["overall"]["methods"][name]))
    for bag in summary["bags"]:
        for name, m in bag["methods"].items():
            rows.append((f"[{bag['bag']}]({bag['folder']}/report.md) | {name}", m))
    table = metrics_table(rows, first="bag | method")
    table[1] = "|---" + table[1]
    lines = ["# Evaluation summary", "",
             f"{summary['overall']['bags']} bags, {summary['overall']['frames']} scored frames. Overall rows are "
             "frame-weighted means of the per-bag values (each bag's metrics are per-frame means); "
             "`frames` is the total.", "", *table, ""]
    if summary["failed"]:
        lines += ["## Bags that could not be evaluated", ""]
        lines += [f"- `{f['bag']}`: {f['error']}" for f in summary["failed"]]
        lines.append("")
    return "\n".join(lines)


def write_summary(entries: list[tuple[str, dict]], failures: list[tuple[str, str]], out: Path) -> dict:
    """summary.json and summary.md into ``out``; returns the summary document."""
    summary = summary_document(entries, failures)
    write_json(Path(out) / "summary.json", summary)
    (Path(out) / "summary.md").write_text(summary_markdown(summary))
    return summary

