"""Evaluate every method on the fixed held-out set and write docs/results.md with plots.

    python -m training.evaluate --runs runs --out docs

Held-out set: seeds disjoint from training, f-numbers from the band that training never
sees (2.6-3.4), every focus schedule; metric depth, no alignment, metrics of the bag contract.
Methods: dfd_recurrent (the shipped model or runs/dfd_recurrent, state carried), dfd_single_frame
(its own checkpoint where one exists, else dfd_recurrent's weights with the state zeroed before every
frame), monocular (only where runs/monocular or models/monocular.pt exists: a focus-volume model trained with
``--monocular`` sees the camera's frames and no lens; an earlier DfDNet one saw all-in-focus frames), classical_dfd (the
classical reference) and depth_from_focus (the simple classical baseline). A focus-volume model runs as
DepthStream runs it, with the flow of flow.FlowTracker.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dfd_depth_ros.evaluation.depth_from_focus import DepthFromFocus
from dfd_depth_ros.metrics import MetricAccumulator, gt_mask
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.synthetic import SCHEDULES
from training.data import ClipCache, ClipSetConfig, build_cache

# Strong-cue lenses (8-25 px of largest blur at 320 px), f-numbers from the held-out band.
TEST_SET = ClipSetConfig(split="test", clips=4 * len(SCHEDULES), frames=30, width_px=320, height_px=240,
                         shard_clips=10, min_blur_px=8.0)
# The weak-lens regime (a phone-class 7 mm f/1.8 lens: fx*D about 0.7-1.7 px*m at 320 px), reported as its own row.
WEAK_SET = ClipSetConfig(split="test_weak", clips=len(SCHEDULES), frames=30, width_px=320, height_px=240,
                         shard_clips=10, focal_length_m=0.007, f_number=1.8, min_blur_px=0.1)
WEAK = "weak_lens"
GROUPS = ("overall", *SCHEDULES, WEAK)
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"  # the shipped weights-only checkpoints (<name>.pt)
METHODS = ("dfd_recurrent", "dfd_single_frame", "monocular", "classical_dfd", "depth_from_focus")
RESET = "dfd_recurrent_reset"  # extra row: dfd_recurrent's weights, state zeroed after every frame
# Not a method: ground-truth blur plus Gaussian noise of this many px, with the side of the focal
# plane known, turned into depth by the optics, pixel by pixel. It shows what reading the blur to
# that precision is worth with the test set's lenses and depths (methods that pool over space,
# time or priors can do better where the cue is weak).
ORACLE = "blur_oracle"
ORACLE_NOISE_PX = 0.5
DEPTH_BINS_M = np.geomspace(0.3, 10.0, 11)
# Defocus sensitivity |dc / d ln z| = fx D / z: how many px the blur changes for a 100 % depth change.
# Below ~2 px, a 10 % depth error moves the blur by < 0.2 px, which no method can see.
SENSITIVITY_BINS_PX = np.geomspace(0.25, 64.0, 9)
MEASURABLE_PX = 2.0  # the "measurable pixels" tables keep pixels with fx*D/z at least this


def _binned_rel_error(rel: np.ndarray, values: np.ndarray, bins: np.ndarray, into: list[list[float]]) -> None:
    """Append the mean of rel per bin of values (bins with pixels only) to into[bin]."""
    idx = np.digitize(values, bins) - 1
    for k in range(len(into)):
        if np.any(idx == k):
            into[k].append(float(rel[idx == k].mean()))


def _net_method(checkpoint: Path, all_in_focus: bool, reset_every_frame: bool = False):
    """A per-clip runner for a trained model: (images, aif, lens, K) -> list of (H, W) depth maps and ms/frame."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if ckpt["model_config"].get("architecture") == "dfd_focus_volume":
        return _focus_volume_method(ckpt, reset_every_frame)
    from training.train import load_model

    net, _ = load_model(checkpoint)

    def run(clip: dict) -> tuple[list[np.ndarray], float]:
        frames = clip["aif" if all_in_focus else "image"]
        t, _, h, w = frames.shape
        state = net.initial_state(1, h, w)
        out, t0 = [], time.perf_counter()
        with torch.no_grad():
            for i in range(t):
                depth, _, state = net(frames[i : i + 1], clip["lens"][i : i + 1], state)
                if reset_every_frame:
                    state = torch.zeros_like(state)
                out.append(depth[0, 0].numpy())
        return out, 1e3 * (time.perf_counter() - t0) / t

    return run


def _focus_volume_method(ckpt: dict, single_frame: bool):
    """A per-clip runner for a loaded focus-volume checkpoint: flow-aligned, as DepthStream runs it."""
    from training.eval_focus_volume import Runner, load_net

    net = load_net(ckpt)

    def run(clip: dict) -> tuple[list[np.ndarray], float]:
        images = (clip["image"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
        runner, out, t0 = Runner(net, single_frame=single_frame), [], time.perf_counter()
        for i in range(len(images)):
            out.append(runner.step(images[i], clip["lens"][i].numpy()))
        return out, 1e3 * (time.perf_counter() - t0) / len(images)

    return run


def _classical_run(clip: dict) -> tuple[list[np.ndarray], float]:
    from dfd_depth_ros.evaluation.focus_reference import FocusReference
    from training.data import unit_lens_camera

    ref = FocusReference()
    images = (clip["image"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    h, w = images.shape[1:3]
    out, t0 = [], time.perf_counter()
    for i in range(len(images)):
        K, unit_lens = unit_lens_camera(clip["lens"][i].numpy(), h, w)
        out.append(ref.process(images[i], K, unit_lens, 10**9 * (i + 1))[0])
    return out, 1e3 * (time.perf_counter() - t0) / len(images)


def _dff_run(clip: dict) -> tuple[list[np.ndarray], float]:
    dff = DepthFromFocus()
    images = (clip["image"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    out, t0 = [], time.perf_counter()
    for i in range(len(images)):
        lens = LensState(float(1.0 / clip["lens"][i, 1]), 2.0, 0.01)  # only the focus distance is used
        out.append(dff.process(images[i], np.eye(3), lens))
    return out, 1e3 * (time.perf_counter() - t0) / len(images)


def _oracle_run(clip: dict) -> tuple[list[np.ndarray], float]:
    """ORACLE on one clip (needs clip['depth'], ground truth); noise seeded by the clip's first pixels."""
    rng = np.random.default_rng(int(clip["image"][0, 0, :4, :4].sum() * 1e4))
    out = []
    for i in range(len(clip["depth"])):
        k, inv_f = float(clip["lens"][i, 0]), float(clip["lens"][i, 1])
        gt = clip["depth"][i]
        with np.errstate(divide="ignore", invalid="ignore"):
            signed = k * (inv_f - 1.0 / gt) + rng.normal(0.0, ORACLE_NOISE_PX, gt.shape)
            w = np.clip(inv_f - signed / k, 1.0 / 20.0, 1.0 / 0.1)
            out.append((1.0 / w).astype(np.float32))
    return out, 0.0


def sensitivity_share(data: ClipCache) -> list[float]:
    """Share of valid ground-truth pixels in each SENSITIVITY_BINS_PX bin (and outside: below, above last)."""
    counts = np.zeros(len(SENSITIVITY_BINS_PX) + 1)
    for i in range(len(data)):
        gt = data.depth[i].astype(np.float32)
        valid = gt_mask(gt)
        sens = data.lens[i, :, 0][:, None, None] / np.where(valid, gt, 1.0)
        counts += np.bincount(np.digitize(sens[valid], SENSITIVITY_BINS_PX), minlength=len(counts))
    return (counts / max(counts.sum(), 1.0)).tolist()


def _checkpoint(runs: Path, name: str) -> Path | None:
    """runs/<name>/last.pt if it was trained here, else the shipped MODELS_DIR/<name>.pt, else None."""
    for path in (runs / name / "last.pt", MODELS_DIR / f"{name}.pt"):
        if path.exists():
            return path
    return None


def _weak_row(run, weak: ClipCache) -> dict:
    """A method's summary over the weak-lens clips."""
    acc = MetricAccumulator()
    for i in range(len(weak)):
        b = weak.batch([i])
        clip = {"image": b["image"][0], "aif": torch.from_numpy(weak.aif[i]).permute(0, 3, 1, 2).float() / 255,
                "lens": b["lens"][0], "depth": b["depth"][0, :, 0].numpy()}
        preds, ms = run(clip)
        acc.reset_sequence()
        for t, pred in enumerate(preds):
            acc.add(pred, b["depth"][0, t, 0].numpy(), ms)
    return acc.summary()


def evaluate(runs: Path, cache_root: Path) -> dict:
    """Run all available methods on the held-out set; returns {method: {schedule: summary, ...}, ...} + curves."""
    data = ClipCache(build_cache(TEST_SET, cache_root))
    weak = ClipCache(build_cache(WEAK_SET, cache_root))
    methods = {"classical_dfd": _classical_run, "depth_from_focus": _dff_run, ORACLE: _oracle_run}
    for name in ("dfd_recurrent", "dfd_single_frame", "monocular"):
        ckpt = _checkpoint(runs, name)
        if ckpt is not None:
            methods[name] = _net_method(ckpt, all_in_focus=name == "monocular")
    recurrent = _checkpoint(runs, "dfd_recurrent")
    if recurrent is not None and "dfd_single_frame" not in methods:  # the same weights, state zeroed every frame
        methods["dfd_single_frame"] = _net_method(recurrent, all_in_focus=False, reset_every_frame=True)
    elif recurrent is not None:  # its own single-frame model exists: also the recurrent weights without memory
        methods[RESET] = _net_method(recurrent, all_in_focus=False, reset_every_frame=True)
    results: dict = {"methods": {}, "measurable": {}, "by_depth": {}, "by_frame": {}, "by_sensitivity": {},
                     "test_set": TEST_SET.key(), "weak_set": WEAK_SET.key(),
                     "sensitivity_share": sensitivity_share(data)}
    for name, run in methods.items():
        per_sched = {s: MetricAccumulator() for s in SCHEDULES}
        overall = MetricAccumulator()
        measurable = {s: MetricAccumulator() for s in ("overall", *SCHEDULES)}
        depth_err = [[] for _ in range(len(DEPTH_BINS_M) - 1)]
        sens_err = [[] for _ in range(len(SENSITIVITY_BINS_PX) - 1)]
        frame_err: list[list[float]] = [[] for _ in range(TEST_SET.frames)]
        for i in tqdm(range(len(data)), desc=name, unit="clip"):
            b = data.batch([i])
            clip = {"image": b["image"][0], "aif": torch.from_numpy(data.aif[i]).permute(0, 3, 1, 2).float() / 255,
                    "lens": b["lens"][0], "depth": b["depth"][0, :, 0].numpy()}
            preds, ms = run(clip)
            sched = SCHEDULES[int(data.schedule[i])]
            for acc in (per_sched[sched], overall, measurable["overall"], measurable[sched]):
                acc.reset_sequence()
            for t, pred in enumerate(preds):
                gt = b["depth"][0, t, 0].numpy()
                per_sched[sched].add(pred, gt, ms)
                m = overall.add(pred, gt, ms)
                with np.errstate(divide="ignore", invalid="ignore"):
                    gt_cue = np.where(float(b["lens"][0, t, 0]) / gt >= MEASURABLE_PX, gt, np.nan)
                measurable["overall"].add(pred, gt_cue, ms)
                measurable[sched].add(pred, gt_cue, ms)
                frame_err[t].append(m["abs_rel"])
                valid = gt_mask(gt) & np.isfinite(pred)
                rel = np.abs(pred[valid] - gt[valid]) / gt[valid]
                _binned_rel_error(rel, gt[valid], DEPTH_BINS_M, depth_err)
                _binned_rel_error(rel, float(b["lens"][0, t, 0]) / gt[valid], SENSITIVITY_BINS_PX, sens_err)
        results["methods"][name] = {"overall": overall.summary(), **{s: a.summary() for s, a in per_sched.items()},
                                    WEAK: _weak_row(run, weak)}
        results["measurable"][name] = {s: a.summary() for s, a in measurable.items()}
        results["by_depth"][name] = [float(np.mean(v)) if v else float("nan") for v in depth_err]
        results["by_sensitivity"][name] = [float(np.mean(v)) if v else float("nan") for v in sens_err]
        results["by_frame"][name] = [float(np.nanmean(v)) for v in frame_err]
    return results


def _line_plot(path: Path, x: np.ndarray, series: dict[str, list[float]], xlabel: str, title: str,
               style: str, log_x: bool = False) -> Path:
    """One abs_rel-against-x figure with a line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, vals in series.items():
        ax.plot(x, vals, style, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("abs_rel")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _plots(results: dict, out: Path) -> list[Path]:
    centres = np.sqrt(DEPTH_BINS_M[:-1] * DEPTH_BINS_M[1:])
    return [
        _line_plot(out / "error_vs_depth.png", centres, results["by_depth"], "ground-truth depth [m]",
                   "Error against depth (held-out set, all schedules)", "o-", log_x=True),
        _line_plot(out / "error_vs_frame.png", np.arange(TEST_SET.frames), results["by_frame"],
                   "frame index in the sequence (state starts empty at 0)",
                   "Error against frame index: how fast the state converges", ".-"),
        _line_plot(out / "error_vs_sensitivity.png", np.sqrt(SENSITIVITY_BINS_PX[:-1] * SENSITIVITY_BINS_PX[1:]),
                   results["by_sensitivity"], "defocus sensitivity fx*D/z [px of blur per unit ln depth]",
                   "Error against the strength of the defocus cue", "o-", log_x=True),
    ]


def write_report(results: dict, out: Path, command: str) -> Path:
    """docs/results.md: one ablation table per schedule plus overall, and the two plots."""
    out.mkdir(parents=True, exist_ok=True)
    img = out / "img"
    img.mkdir(exist_ok=True)
    plots = _plots(results, img)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# Results on the held-out generated set", "",
             f"Reproduce: `{command}` (test set `{results['test_set']}`: {TEST_SET.clips} sequences of "
             f"{TEST_SET.frames} frames at {TEST_SET.width_px}x{TEST_SET.height_px}, seeds disjoint from training, "
             f"f-numbers in the held-out band 2.6-3.4, lenses with {TEST_SET.min_blur_px:g}-"
             f"{TEST_SET.max_blur_px:g} px of largest blur). The `{WEAK}` table is a set of its own "
             f"(`{results.get('weak_set', '')}`: "
             f"{WEAK_SET.clips} sequences, one per schedule, a {WEAK_SET.focal_length_m * 1e3:g} mm f/"
             f"{WEAK_SET.f_number:g} lens, fx*D about 0.7-1.7 px*m). Checkpoints: runs/<method>/last.pt, else the "
             "shipped models/<method>.pt. Metric depth, no alignment; metrics as in the bag contract. This set comes "
             "from the training renderer; the independent benchmark is [benchmark.md](benchmark.md).",
             "", f"`{ORACLE}` is not a method but a physics reference: each pixel's true blur plus Gaussian noise "
             f"of {ORACLE_NOISE_PX:g} px, with the side of the focal plane given, turned into depth by the optics "
             "(one pixel, one frame, no pooling over space or time, no prior). Where it fails, the lens "
             "leaves too little defocus to read at that precision.", "",
             "`dfd_single_frame` is `dfd_recurrent` with its state zeroed before every frame (the same weights, "
             f"no memory) unless a dfd_single_frame checkpoint exists; then `{RESET}` is that row.",
             ""]
    header = ["| method | abs_rel | rmse [m] | delta1 | flicker | ms/frame |", "|---|---|---|---|---|---|"]

    def tables(scores: dict, level: str) -> list[str]:
        """One table per schedule of scores {method: {schedule: summary}}: methods, then the oracle row."""
        out = []
        rows = [(name, name) for name in (*METHODS, RESET)] + [(ORACLE, f"*{ORACLE} (reference, not a method)*")]
        for sched in GROUPS:
            if not any(sched in scores.get(key, {}) for key, _ in rows):
                continue
            out += [f"{level} {sched}", "", *header]
            for key, label in rows:
                if key in scores and sched in scores[key]:
                    m = scores[key][sched]
                    out.append(f"| {label} | {m['abs_rel']:.3f} | {m['rmse']:.3f} | {m['delta1']:.3f} | "
                               f"{m['flicker']:.3f} | {m['ms_per_frame']:.1f} |")
            out.append("")
        return out

    lines += tables(results["methods"], "##")
    if results.get("measurable"):
        lines += [f"## measurable pixels only (fx*D/z >= {MEASURABLE_PX:g} px)", "",
                  "The same frames, scored only where a 10 % depth error changes the blur by at least "
                  f"{0.1 * MEASURABLE_PX:.1f} px.", ""]
        lines += tables(results["measurable"], "###")
    missing = [m for m in METHODS if m not in results["methods"]]
    if missing:
        lines += [f"Not evaluated (no checkpoint in runs/ or models/): {', '.join(missing)}.", ""]
    lines += [f"![error vs depth](img/{plots[0].name})", "", f"![error vs frame](img/{plots[1].name})", "",
              "Error against the defocus sensitivity fx*D/z, the blur change in px for a 100 % depth change "
              "(ln z changing by 1). Where it is below ~2 px, a 10 % depth error changes the blur by under "
              "0.2 px: physics leaves defocus methods nothing to measure there.", "",
              f"![error vs sensitivity](img/{plots[2].name})", ""]
    share = results.get("sensitivity_share")
    if share:
        edges = [f"< {SENSITIVITY_BINS_PX[0]:g}"] + [
            f"{a:g}-{b:g}" for a, b in zip(SENSITIVITY_BINS_PX[:-1], SENSITIVITY_BINS_PX[1:])
        ] + [f">= {SENSITIVITY_BINS_PX[-1]:g}"]
        lines += ["Share of the test set's valid pixels per sensitivity bin [px]:", "",
                  "| " + " | ".join(edges) + " |", "|" + "---|" * len(edges),
                  "| " + " | ".join(f"{100 * v:.1f} %" for v in share) + " |", ""]
    path = out / "results.md"
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs", help="folder with <method>/last.pt checkpoints")
    ap.add_argument("--cache", default="data/cache", help="folder for the rendered test-set cache")
    ap.add_argument("--out", default="docs", help="folder for results.md, results.json and img/")
    args = ap.parse_args(argv)
    results = evaluate(Path(args.runs), Path(args.cache))
    path = write_report(results, Path(args.out), "python -m training.evaluate --runs runs --out docs")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
