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


def main(argv=None) -> int:
    from .train import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="training checkpoint (runs/<name>/last.pt)")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--parity-steps", type=int, default=8, help="recurrent steps of the ONNX Runtime parity check")
    args = ap.parse_args(argv)
    net, ckpt = load_model(args.checkpoint)
    path = export_onnx(net, args.out, extra_meta={"iteration": ckpt.get("iteration")})
    diff = onnx_parity(net, path, steps=args.parity_steps)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); ONNX Runtime vs torch over {args.parity_steps} steps: "
          f"max |depth diff| = {diff:.2e} m")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
