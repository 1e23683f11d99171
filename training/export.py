"""Export a trained model: ONNX with explicit recurrent state, plus its config and card.

    python -m training.export --checkpoint runs/dfd_recurrent/last.pt --out models/dfd_recurrent.onnx

ONNX interface (dynamic batch, height and width; height and width multiples of 8):
    inputs   image      (B, 3, H, W)            float32 RGB in [0, 1]
             lens       (B, 2)                  float32 [fx * D (px*m), 1 / focus (1/m)]
             state      (B, S, H/8, W/8)        float32, zeros = reset
    outputs  depth      (B, 1, H, W)            float32 metres
             confidence (B, 1, H, W)            float32 in [0, 1]
             state_out  (B, S, H/8, W/8)        float32, feed back as ``state``
The model config travels inside the ONNX metadata (key ``dfd_model_config``, JSON), so a
runtime can build the zero state and check the model without any side file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from dfd_depth_ros.network import STRIDE, DfDNet

INPUT_NAMES = ["image", "lens", "state"]
OUTPUT_NAMES = ["depth", "confidence", "state_out"]
METADATA_KEY = "dfd_model_config"


def export_onnx(net: DfDNet, path: str | Path, height: int = 240, width: int = 320, extra_meta: dict | None = None,
                opset: int = 18) -> Path:
    """Write ``net`` as ONNX with named inputs/outputs and dynamic B, H, W; returns the path."""
    import onnx

    net = net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (torch.rand(1, 3, height, width), torch.tensor([[5.0, 0.5]]), net.initial_state(1, height, width))
    dyn = {
        "image": {0: "batch", 2: "height", 3: "width"},
        "lens": {0: "batch"},
        "state": {0: "batch", 2: "height_8", 3: "width_8"},
        "depth": {0: "batch", 2: "height", 3: "width"},
        "confidence": {0: "batch", 2: "height", 3: "width"},
        "state_out": {0: "batch", 2: "height_8", 3: "width_8"},
    }
    with torch.no_grad():
        torch.onnx.export(net, args, str(path), input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)
    model = onnx.load(str(path))
    meta = {"model_config": net.cfg.to_dict(), "state_channels": net.cfg.hidden + 2, "stride": STRIDE,
            **(extra_meta or {})}
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_parity(net: DfDNet, onnx_path: str | Path, steps: int = 8, height: int = 96, width: int = 128,
                seed: int = 0) -> float:
    """Max |depth_torch - depth_onnxruntime| in metres over a ``steps``-frame recurrent rollout."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    state_t = net.initial_state(1, height, width)
    state_o = state_t.numpy()
    worst = 0.0
    for i in range(steps):
        image = torch.rand(1, 3, height, width, generator=g)
        lens = torch.tensor([[4.0 + i, 1.0 / (0.5 + 0.4 * i)]])
        with torch.no_grad():
            depth_t, _, state_t = net(image, lens, state_t)
        depth_o, _, state_o = sess.run(None, {"image": image.numpy(), "lens": lens.numpy(), "state": state_o})
        worst = max(worst, float(np.abs(depth_t.numpy() - depth_o).max()))
    return worst


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_tensorrt_engine(onnx_path: str | Path, width: int, height: int, fp16: bool = True) -> Path:
    """Build (or find in the cache) the TensorRT engine of an exported model for one input size.

    Raises dfd_depth_ros.backends.BackendUnavailable with a one-line reason where tensorrt or CUDA is missing.
    """
    from dfd_depth_ros.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(fp16=fp16)
    backend.load(onnx_path)
    backend._engine_for(height, width)
    return backend.engine_path(height, width)


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


def main(argv=None) -> int:
    import subprocess

    from training.train import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="training checkpoint (runs/<name>/last.pt)")
    ap.add_argument("--out", required=True, help="output .onnx path (a weights-only .pt and a .md card go beside it)")
    ap.add_argument("--parity-steps", type=int, default=8, help="recurrent steps of the ONNX Runtime parity check")
    ap.add_argument("--results", default="docs/results.json", help="held-out metrics to quote in the model card")
    ap.add_argument("--tensorrt", metavar="WxH", help="also build the TensorRT FP16 engine for this input size")
    ap.add_argument("--note", default="", help="a line for the model card (e.g. how the run was scheduled)")
    args = ap.parse_args(argv)
    net, ckpt = load_model(args.checkpoint)
    path = export_onnx(net, args.out, extra_meta={"iteration": ckpt.get("iteration")})
    diff = onnx_parity(net, path, steps=args.parity_steps)
    torch.save({"model": net.state_dict(), "model_config": net.cfg.to_dict()}, path.with_suffix(".pt"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    card = write_model_card(path, ckpt, Path(args.results), commit or "unknown", args.note)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), {path.with_suffix('.pt')} and {card}; "
          f"ONNX Runtime vs torch over {args.parity_steps} steps: max |depth diff| = {diff:.2e} m")
    if args.tensorrt:
        from dfd_depth_ros.backends import BackendUnavailable

        w, h = (int(v) for v in args.tensorrt.lower().split("x"))
        try:
            print(f"TensorRT engine: {build_tensorrt_engine(path, w, h)}")
        except BackendUnavailable as exc:
            print(f"TensorRT engine not built: {exc}")
            return 2
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
