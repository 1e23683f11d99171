"""Export a trained model: ONNX with explicit recurrent state, plus its config and card.

    python -m training.export --checkpoint runs/dfd_recurrent/last.pt --out models/dfd_recurrent.onnx
    python -m training.export --physics --decay 0.9 --cost-window 5 --fill-full-conf 0.05 \
        --out models/dfd_recurrent.onnx         # the shipped model: the focus-volume graph without a readout

The ONNX interface and its metadata are dfd_depth_ros/model_contract.py's (the one
definition the backends read too); the architecture config travels in the metadata.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dfd_depth_ros.backends.tensorrt_backend import file_sha256
from dfd_depth_ros.focus_volume_network import FocusVolumeConfig
from dfd_depth_ros.onnx_export import export_onnx, onnx_parity  # noqa: F401  (re-exported for the tests)


def build_tensorrt_engine(onnx_path: str | Path, width: int, height: int, fp16: bool = True) -> Path:
    """Build (or find in the cache) the TensorRT engine of an exported model for one input size.

    Raises dfd_depth_ros.backends.BackendUnavailable with a one-line reason where TensorRT 10 or CUDA is missing.
    """
    from dfd_depth_ros.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(fp16=fp16, engine_sizes=[(height, width)])
    backend.load(onnx_path)  # builds the declared size, or loads it from the engine cache
    (h, w), = backend.engine_sizes
    return backend.engine_path(h, w)


def write_model_card(onnx_path: Path, ckpt: dict, results_json: Path | None, commit: str, note: str = "") -> Path:
    """Markdown card next to the model: interface, normalisation, data, recipe, metrics, commit."""
    cfg = ckpt["config"]
    lines = [
        f"# Model card: {onnx_path.stem}", "",
        f"- file: `{onnx_path.name}` ({onnx_path.stat().st_size / 1e3:.0f} kB), sha256 `{file_sha256(onnx_path)[:16]}`",
        f"- commit: `{commit}`; training iterations: {ckpt.get('iteration')}",
        f"- architecture: `{json.dumps(cfg['model'])}`",
        "", "## Interface", "",
        "| name | shape | meaning |", "|---|---|---|",
        "| image (in) | (B, 3, H, W) float32 | RGB in [0, 1] as the camera delivers it (sRGB); H, W multiples of 8 |",
        "| lens (in) | (B, 2) float32 | [fx * D in px*m at the input resolution, 1 / focus distance in 1/m] |",
        "| state (in) | (B, S, H/8, W/8) float32 | recurrent state; zeros = reset |",
        "| depth (out) | (B, 1, H, W) float32 | z-depth in metres |",
        "| confidence (out) | (B, 1, H, W) float32 | in [0, 1]; trained to predict exp(-abs(ln p - ln g) / 0.1) |",
        "| state_out (out) | (B, S, H/8, W/8) float32 | feed back as `state` for the next frame |",
        "", "Normalisation happens inside the network: (image - 0.45) / 0.25; lens channels fx*D / 10 and "
        "dioptres / 3. If the image is resized before the network, fx*D scales with it."
        + (" With `sharpness`, fixed focus-measure channels (log local gradient energy and re-blur ratios "
           "at sigma 1, 2, 4 px; `FocusMeasure` in dfd_depth_ros/network.py) are computed inside the "
           "network from the image and join it at the stem." if cfg["model"].get("sharpness") else ""),
        "", "## Training data and recipe", "",
        f"- data: `{json.dumps(cfg['data'])}` (generated with `training/sequences.py`; f-numbers 2.6-3.4 and "
        "focal lengths 18-22 mm are held out of training)",
        f"- losses: `{json.dumps(cfg['loss'])}`",
        f"- optimiser: AdamW lr {cfg['lr']}, weight decay {cfg['weight_decay']}, batch {cfg['batch']}, "
        f"{cfg['iters']} iterations, warm-up then cosine decay, seed {cfg['seed']}",
        f"- reproduce: `python -m training.train --config training/configs/{cfg['name']}.yaml` then "
        f"`python -m training.export --checkpoint runs/{cfg['name']}/last.pt --out {onnx_path}`",
    ]
    if note:
        lines.append(f"- note: {note}")
    if results_json and results_json.exists():
        res = json.loads(results_json.read_text())["methods"].get(cfg["name"])
        if res:
            lines += ["", "## Held-out metrics (docs/results.md)", "",
                      "| schedule | abs_rel | rmse [m] | delta1 | flicker |", "|---|---|---|---|---|"]
            for sched, m in res.items():
                lines.append(f"| {sched} | {m['abs_rel']:.3f} | {m['rmse']:.3f} | {m['delta1']:.3f} | "
                             f"{m['flicker']:.3f} |")
    path = onnx_path.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_focus_volume_card(onnx_path: Path, ckpt: dict, parity_m: float, commit: str, benchmark: Path | None,
                            val_json: Path | None, note: str = "") -> Path:  # fmt: skip
    """Markdown card of a FocusVolumeNet export: interface, design, recipe, figures from the benchmark and val."""
    cfg, train = ckpt["model_config"], ckpt.get("train_config", {})
    if not cfg.get("learned", True):
        return _physics_card(onnx_path, cfg, parity_m, commit, benchmark, val_json, note)
    n_params = sum(v.numel() for v in ckpt["model"].values())
    lines = [
        f"# Model card: {onnx_path.stem}", "",
        f"- file: `{onnx_path.name}` ({onnx_path.stat().st_size / 1e3:.0f} kB), sha256 "
        f"`{file_sha256(onnx_path)[:16]}`; {n_params} learned parameters (the readout; the evidence has none)",
        f"- commit: `{commit}`; training iterations: {ckpt.get('iter')}",
        f"- architecture: `{json.dumps(cfg)}` (dfd_depth_ros/focus_volume_network.py)",
        f"- ONNX Runtime vs torch over 8 recurrent steps (random frames and flows): max |depth diff| {parity_m:.1e} m",
        *_interface_lines(cfg, "trained to predict exp(-abs(ln p - ln g) / 0.1)"),
        "", "## Design", "",
        f"{cfg['num_hypotheses']} inverse-depth hypotheses between {cfg['grid_near_m']} and {cfg['grid_far_m']} m; "
        "each frame's lens gives each its blur c_k = fx D |w_k - 1/focus| and the calibrated focus-measure falloff "
        "h(c_k). The state accumulates the per-pixel fit q ~ a h(c_k) + b of the noise-floored band-pass focus "
        f"measure q (decay {cfg['decay']} per frame), aligned by the flow input. The cost volume, best hypothesis, "
        "margin confidence and push-pull fill are the classical reference's (evaluation/focus_reference.py) "
        "computed in the graph; a learned encoder-decoder (the only parameters) reads them with the focus spread"
        + {"rgb": " and the frame", "gray": " and the frame in gray", "none": " (not the frame)"}[
            cfg.get("readout_image", "rgb")]
        + " and predicts a residual inverse depth and the confidence"
        + ("; the residual is scaled by how far the focus has moved (fixed_focus_gate)." if cfg.get(
            "fixed_focus_gate") else "."),
        *([] if cfg.get("lens_input", True) else [
            "", "**Monocular baseline (lens_input false):** the readout sees the frame alone; every channel the lens "
            "model made is zeroed in the graph and its residual starts from the middle of the grid, so the lens "
            "input is read and ignored. It is the ablation of the lens model, not a depth-from-defocus model."]),
        "", "## Training", "",
        f"- recipe: `{json.dumps(train)}`",
        f"- data: `{json.dumps(ckpt.get('data', {}))}` (training.data's generator, never the benchmark's renderer; "
        "f-numbers 2.6-3.4 and focal lengths 18-22 mm are held out)",
        f"- reproduce: `python -m training.train_focus_volume --name {train.get('name', 'fv')} --iters "
        f"{train.get('iters')}" + (f" --readout-image {train['readout_image']}" if train.get("readout_image", "rgb")
                                    != "rgb" else "")
        + ("" if train.get("lens_input", True) else " --monocular")
        + _knob_flags(cfg)
        + f"` then `python -m training.export --checkpoint runs/{train.get('name', 'fv')}/last.pt --out {onnx_path}"
        + (" --fixed-focus-gate" if cfg.get("fixed_focus_gate") else "") + "`",
    ]
    if cfg.get("fixed_focus_gate") and not train.get("fixed_focus_gate"):
        lines.append("- the fixed-focus gate was switched on at export (`--fixed-focus-gate`); the readout was "
                     "trained without it")
    if note:
        lines.append(f"- note: {note}")
    return _finish_card(onnx_path, lines, benchmark, val_json)


REFERENCE = FocusVolumeConfig()  # the default config's evidence knobs are the classical reference's


def _knob_flags(cfg: dict) -> str:
    """The training command's flags for the evidence knobs of ``cfg`` that are not the reference's ("" if none)."""
    flags = (("--decay", "decay"), ("--cost-window", "cost_window_px"), ("--fill-full-conf", "fill_full_conf"))
    return "".join(f" {flag} {cfg[key]:g}" for flag, key in flags if cfg.get(key, getattr(REFERENCE, key))
                   != getattr(REFERENCE, key))


def _interface_lines(cfg: dict, confidence: str) -> list[str]:
    return ["", "## Interface", "",
            "| name | shape | meaning |", "|---|---|---|",
            "| image (in) | (B, 3, H, W) float32 | RGB in [0, 1] as the camera delivers it (sRGB); H, W multiples "
            "of 8 |",
            "| lens (in) | (B, 2) float32 | [fx * D in px*m at the input resolution, 1 / focus distance in 1/m] |",
            f"| state (in) | (B, {3 * cfg['num_hypotheses'] + 6}, H/2, W/2) float32 | decayed per-pixel fit "
            "statistics of the focus measure per hypothesis; zeros = reset |",
            "| flow (in) | (B, 2, H/2, W/2) float32 | flow into the previous frame at 1/2 resolution (DepthStream "
            "computes it with flow.FlowTracker); zeros = no motion |",
            "| depth (out) | (B, 1, H, W) float32 | z-depth in metres |",
            f"| confidence (out) | (B, 1, H, W) float32 | in [0, 1]; {confidence} |",
            "| state_out (out) | like state | feed back as `state` for the next frame |"]


def _physics_card(onnx_path: Path, cfg: dict, parity_m: float, commit: str, benchmark: Path | None,
                  val_json: Path | None, note: str) -> Path:  # fmt: skip
    """The card of a focus-volume graph without a learned readout (``--physics``)."""
    lines = [
        f"# Model card: {onnx_path.stem}", "",
        f"- file: `{onnx_path.name}` ({onnx_path.stat().st_size / 1e3:.0f} kB), sha256 "
        f"`{file_sha256(onnx_path)[:16]}`; no learned parameters: the physics graph alone, no readout",
        f"- commit: `{commit}`",
        f"- architecture: `{json.dumps(cfg)}` (dfd_depth_ros/focus_volume_network.py)",
        f"- ONNX Runtime vs torch over 8 recurrent steps (random frames and flows): max |depth diff| {parity_m:.1e} m",
        *_interface_lines(cfg, "the margin confidence of the best hypothesis (how far the runner-up's cost is)"),
        "", "## Design", "",
        f"{cfg['num_hypotheses']} inverse-depth hypotheses between {cfg['grid_near_m']} and {cfg['grid_far_m']} m; "
        "each frame's lens gives each its blur c_k = fx D |w_k - 1/focus| and the calibrated focus-measure falloff "
        "h(c_k). The state accumulates the per-pixel fit q ~ a h(c_k) + b of the noise-floored band-pass focus "
        f"measure q (decay {cfg['decay']:g} per frame), aligned by the flow input. The cost volume (averaged over "
        f"{cfg['cost_window_px']} px at 1/2 resolution), the best hypothesis, its margin confidence and the "
        f"push-pull fill (a pixel keeps its own depth from confidence {cfg['fill_full_conf']:g}) are the classical "
        "reference's (evaluation/focus_reference.py) computed in the graph, with these three knobs chosen on the "
        "path-traced model-selection (dev) set (`scripts/evidence_ablation.py`); the reference keeps its own "
        f"({REFERENCE.cost_window_px} px, {REFERENCE.decay:g}, {REFERENCE.fill_full_conf:g}). No learned readout: "
        "every readout trained on the generated data so far scored worse "
        "than this graph on the dev set (README, \"What limits it\").",
        "", "## Reproduce", "",
        f"- `python -m training.export --physics{_knob_flags(cfg)} --out {onnx_path}`",
    ]
    if note:
        lines.append(f"- note: {note}")
    return _finish_card(onnx_path, lines, benchmark, val_json)


def _finish_card(onnx_path: Path, lines: list[str], benchmark: Path | None, val_json: Path | None) -> Path:
    """Append the benchmark and val tables to a card's lines and write it beside the model."""
    if benchmark is not None and benchmark.is_dir():
        docs = [json.loads(p.read_text()) for p in sorted(benchmark.glob("*/metrics.json"))]
        if docs:
            names = [n for n in ("dfd_recurrent", "dfd_single_frame", "classical_dfd") if n in docs[0]["methods"]]
            lines += ["", f"## Benchmark (path-traced bags, `make benchmark`; abs_rel, {len(docs)} bags)", "",
                      "| bag | " + " | ".join(names) + " | median_floor |", "|---|" + "---|" * (len(names) + 1)]
            def cell(v):
                return "–" if v is None else f"{v:.3f}"

            def mean(values):
                values = [v for v in values if v is not None]
                return f"**{sum(values) / len(values):.3f}**" if values else "–"

            floors = [d.get("references", {}).get("median_floor", {}).get("abs_rel") for d in docs]
            for d, floor in zip(docs, floors, strict=True):
                cells = [cell(d["methods"][n]["abs_rel"]) for n in names]
                lines.append(f"| {d['bag']} | " + " | ".join(cells) + f" | {cell(floor)} |")
            means = [mean(d["methods"][n]["abs_rel"] for d in docs) for n in names]
            lines.append("| **mean over bags** | " + " | ".join(means) + f" | {mean(floors)} |")
    if val_json is not None and val_json.is_file():
        lines += ["", "## Generated validation set (unseen scenes and lenses; `python -m training.eval_focus_volume "
                  "--checkpoint ... --set val`)", "", val_json.with_suffix(".md").read_text().strip()
                  if val_json.with_suffix(".md").is_file() else ""]
    path = onnx_path.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path


def physics_checkpoint(decay: float, cost_window_px: int, fill_full_conf: float) -> dict:
    """A checkpoint of the focus-volume graph without a learned readout (nothing to train: the evidence's knobs)."""
    cfg = FocusVolumeConfig(learned=False, decay=decay, cost_window_px=cost_window_px, fill_full_conf=fill_full_conf)
    return {"model": {}, "model_config": cfg.to_dict(), "iter": 0, "train_config": {}, "data": {}}


def focus_volume_for_export(ckpt: dict, out: str | Path, fixed_focus_gate: bool):
    """The FocusVolumeNet of a checkpoint ``ckpt``, configured as shipped: it takes the runtime's flow, is named after
    the output file and, with ``fixed_focus_gate``, gates its learned residual (an inference-time choice: the
    readout's weights are the same either way)."""
    from dfd_depth_ros.architectures import build_model

    cfg = dict(ckpt["model_config"], flow_input=True, name=Path(out).stem)
    if fixed_focus_gate:
        cfg["fixed_focus_gate"] = True
    net = build_model(cfg)
    net.load_state_dict(ckpt["model"], strict=True)
    return net.eval()


def main(argv=None) -> int:
    import subprocess

    from training.train import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="training checkpoint (runs/<name>/last.pt)")
    ap.add_argument("--physics", action="store_true",
                    help="instead of a checkpoint: the focus-volume graph without a learned readout, with the "
                         "evidence knobs below")
    ap.add_argument("--decay", type=float, default=REFERENCE.decay,
                    help="with --physics: the evidence's decay per frame")
    ap.add_argument("--cost-window", type=int, default=REFERENCE.cost_window_px,
                    help="with --physics: the cost window, 1/2-res px")
    ap.add_argument("--fill-full-conf", type=float, default=REFERENCE.fill_full_conf,
                    help="with --physics: the fill's full confidence")
    ap.add_argument("--out", required=True, help="output .onnx path (a weights-only .pt and a .md card go beside it)")
    ap.add_argument("--parity-steps", type=int, default=8, help="recurrent steps of the ONNX Runtime parity check")
    ap.add_argument("--results", default="docs/results.json", help="held-out metrics to quote in the model card")
    ap.add_argument("--tensorrt", metavar="WxH[,WxH]",
                    help="also build TensorRT FP16 engines for these input sizes (e.g. 640x480,1280x720)")
    ap.add_argument("--note", default="", help="a line for the model card (e.g. how the run was scheduled)")
    ap.add_argument("--benchmark", default="", help="eval-bags output folder to quote in the card (focus-volume)")
    ap.add_argument("--val", default="", help="eval_focus_volume --out JSON to quote in the card (focus-volume)")
    ap.add_argument("--fixed-focus-gate", action="store_true", help="export a focus-volume model with its learned "
                    "residual gated by the focus spread (FocusVolumeConfig.fixed_focus_gate)")
    args = ap.parse_args(argv)
    if args.physics == bool(args.checkpoint):
        ap.error("give either --checkpoint or --physics")
    ckpt = physics_checkpoint(args.decay, args.cost_window, args.fill_full_conf) if args.physics else torch.load(
        args.checkpoint, map_location="cpu", weights_only=False)
    focus_volume = ckpt["model_config"].get("architecture") == "dfd_focus_volume"
    if focus_volume:
        net, iteration = focus_volume_for_export(ckpt, args.out, args.fixed_focus_gate), ckpt.get("iter")
        # random frames read as far as the 20 m clamp, where float32 rounds at about 1e-5 of the depth
        tolerance_m = 1e-5 * net.cfg.max_depth_m
    else:
        net, ckpt = load_model(args.checkpoint)
        iteration, tolerance_m = ckpt.get("iteration"), 1e-4
    path = export_onnx(net, args.out, extra_meta={"iteration": iteration})
    diff = onnx_parity(net, path, steps=args.parity_steps)
    torch.save({"model": net.state_dict(), "model_config": net.cfg.to_dict()}, path.with_suffix(".pt"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if focus_volume:
        card = write_focus_volume_card(path, {**ckpt, "model_config": net.cfg.to_dict()}, diff, commit or "unknown",
                                       Path(args.benchmark) if args.benchmark else None,
                                       Path(args.val) if args.val else None, args.note)  # fmt: skip
    else:
        card = write_model_card(path, ckpt, Path(args.results), commit or "unknown", args.note)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), {path.with_suffix('.pt')} and {card}; "
          f"ONNX Runtime vs torch over {args.parity_steps} steps: max |depth diff| = {diff:.2e} m")
    if args.tensorrt:
        from dfd_depth_ros.backends import BackendUnavailable
        from dfd_depth_ros.backends.tensorrt_backend import parse_engine_sizes

        try:
            for h, w in parse_engine_sizes(args.tensorrt):
                print(f"TensorRT engine: {build_tensorrt_engine(path, w, h)}")
        except BackendUnavailable as exc:
            print(f"TensorRT engine not built: {exc}")
            return 2
    return 0 if diff <= tolerance_m else 1


if __name__ == "__main__":
    raise SystemExit(main())
