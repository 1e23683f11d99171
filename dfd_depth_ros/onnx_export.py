"""A network (DfDNet, VolumeNet, FocusVolumeNet) as ONNX with explicit recurrent state; a check that ONNX Runtime
computes what torch does.

    export_onnx(net, "model.onnx")          # named inputs/outputs, dynamic B/H/W, the contract's metadata
    onnx_parity(net, "model.onnx")          # max |depth_torch - depth_onnxruntime| over a recurrent rollout

The interface and its metadata are model_contract.py's (the one definition the backends read too).
Needs torch and onnx (and onnxruntime for the parity check); training/export.py is the command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dfd_depth_ros.model_contract import FLOW_INPUT, INPUT_NAMES, METADATA_KEY, OUTPUT_NAMES, model_metadata_json
from dfd_depth_ros.network import STRIDE, DfDNet


def export_onnx(net: DfDNet | torch.nn.Module, path: str | Path, height: int = 240, width: int = 320,
                extra_meta: dict | None = None, opset: int = 18) -> Path:
    """Write ``net`` as ONNX with named inputs/outputs and dynamic B, H, W; returns the path."""
    import onnx

    net = net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (torch.rand(1, 3, height, width), torch.tensor([[5.0, 0.5]]), net.initial_state(1, height, width))
    state_stride = int(getattr(net, "STATE_STRIDE", STRIDE))  # a model whose state is not at 1/8 says so
    state_axes = {0: "batch", 2: f"height_{state_stride}", 3: f"width_{state_stride}"}
    takes_flow = bool(getattr(net.cfg, "flow_input", False))
    names = list(INPUT_NAMES)
    if takes_flow:  # a non-zero example flow, so the warp is traced as a real data path
        args = (*args, 0.5 * torch.ones(1, 2, *args[2].shape[2:]))
        names.append(FLOW_INPUT)
    dyn = {
        "image": {0: "batch", 2: "height", 3: "width"},
        "lens": {0: "batch"},
        "state": state_axes,
        "depth": {0: "batch", 2: "height", 3: "width"},
        "confidence": {0: "batch", 2: "height", 3: "width"},
        "state_out": state_axes,
        **({FLOW_INPUT: state_axes} if takes_flow else {}),
    }
    extra_meta = dict(extra_meta or {}, **({"state_stride": state_stride} if state_stride != STRIDE else {}),
                      **({"flow_input": True} if takes_flow else {}))
    with torch.no_grad():
        torch.onnx.export(net, args, str(path), input_names=names, output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)
    model = onnx.load(str(path))
    state_channels = int(args[2].shape[1])  # what initial_state really makes, not a formula beside it
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = model_metadata_json(net.cfg.to_dict(), state_channels, STRIDE, **extra_meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_parity(net: DfDNet | torch.nn.Module, onnx_path: str | Path, steps: int = 8, height: int = 96,
                width: int = 128, seed: int = 0) -> float:
    """Max |depth_torch - depth_onnxruntime| in metres over a ``steps``-frame recurrent rollout."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    state_t = net.initial_state(1, height, width)
    state_o = state_t.numpy()
    takes_flow = bool(getattr(net.cfg, "flow_input", False))
    worst = 0.0
    for i in range(steps):
        image = torch.rand(1, 3, height, width, generator=g)
        lens = torch.tensor([[4.0 + i, 1.0 / (0.5 + 0.4 * i)]])
        extra = [torch.randn(1, 2, *state_t.shape[2:], generator=g)] if takes_flow else []
        with torch.no_grad():
            depth_t, _, state_t = net(image, lens, state_t, *extra)
        feed = {"image": image.numpy(), "lens": lens.numpy(), "state": state_o}
        if takes_flow:
            feed[FLOW_INPUT] = extra[0].numpy()
        depth_o, _, state_o = sess.run(None, feed)
        worst = max(worst, float(np.abs(depth_t.numpy() - depth_o).max()))
    return worst
