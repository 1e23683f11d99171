"""Where an exported model's time goes in ONNX Runtime: milliseconds per frame per operator type.

    .venv/bin/python scripts/profile_onnx.py [models/dfd_recurrent.onnx] [--width 320 --height 240 --frames 10]
                                             [--by node --top 30]

Runs the model on random frames (zero flow where it takes one) with ONNX Runtime's profiler on the CPU and
prints the operator types with the most time. For the node's whole per-frame cost, use ``dfd-depth bench``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dfd_depth_ros.backends.base import state_shape
from dfd_depth_ros.model_contract import METADATA_KEY, STRIDE, input_names, parse_model_metadata, read_onnx_metadata
from dfd_depth_ros.package_paths import default_model_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=str(default_model_path()))
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--by", choices=("op", "node"), default="op",
                   help="group the time by operator type (default) or list the slowest single nodes")
    a = p.parse_args(argv)
    meta = parse_model_metadata(read_onnx_metadata(a.model).get(METADATA_KEY), a.model)
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    shape = state_shape(int(meta["state_channels"]), a.height, a.width, int(meta.get("state_stride", STRIDE)))
    rng = np.random.default_rng(0)
    feed = {"image": rng.random((1, 3, a.height, a.width), dtype=np.float32),
            "lens": np.array([[8.0, 1.0]], np.float32), "state": np.zeros(shape, np.float32)}
    if "flow" in input_names(meta):
        feed["flow"] = np.zeros((1, 2, *shape[2:]), np.float32)
    for _ in range(a.frames):
        _, _, feed["state"] = session.run(None, feed)
    trace = Path(session.end_profiling())
    per_op = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node":
            key = event["args"].get("op_name", "?")
            if a.by == "node":
                key = f"{event['name'].removesuffix('_kernel_time')} ({key})"
            per_op[key] += event["dur"]
    total = sum(per_op.values()) / a.frames / 1e3
    print(f"{Path(a.model).name}, {a.width}x{a.height}, {a.frames} frames: {total:.1f} ms/frame in operators")
    for op, us in per_op.most_common(a.top):
        ms = us / a.frames / 1e3
        print(f"  {op:<{48 if a.by == 'node' else 24}s} {ms:7.2f} ms  {100 * ms / total:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
