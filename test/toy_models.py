"""Tiny hand-built ONNX models with the project's model interface, whose output is known exactly.

The interface (dfd_depth_ros/backends/base.py): inputs ``image`` (1, 3, H, W) float32 RGB in
[0, 1], ``lens`` (1, 2), ``state`` (1, S, H/8, W/8); outputs ``depth`` (1, 1, H, W) metres,
``confidence`` (1, 1, H, W), ``state_out`` (the state, unchanged here); the JSON metadata key
``dfd_model_config``. Built with onnx.helper (no torch export), so each model is exactly

    depth      = depth_offset_m + depth_scale_m * image[:, depth_channel]
    confidence = conf_offset    + conf_scale    * image[:, conf_channel]

A scale of 0 gives a constant ("plane model": depth f metres everywhere).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfd_depth_ros.model_contract import METADATA_KEY, model_metadata_json

STATE_CHANNELS = 1


def affine_channel_model(path: Path, *, depth_offset_m: float, depth_scale_m: float = 0.0, depth_channel: int = 0,
                         conf_offset: float = 1.0, conf_scale: float = 0.0, conf_channel: int = 1,
                         name: str = "toy") -> Path:
    """Write the model described in the module docstring to ``path`` (.onnx); returns ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name_: str, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name_)

    inits = [const("axis1", [1], np.int64),
             const("d_start", [depth_channel], np.int64), const("d_end", [depth_channel + 1], np.int64),
             const("c_start", [conf_channel], np.int64), const("c_end", [conf_channel + 1], np.int64),
             const("d_scale", depth_scale_m), const("d_offset", depth_offset_m),
             const("c_scale", conf_scale), const("c_offset", conf_offset)]
    nodes = [
        helper.make_node("Slice", ["image", "d_start", "d_end", "axis1"], ["d_chan"]),
        helper.make_node("Mul", ["d_chan", "d_scale"], ["d_scaled"]),
        helper.make_node("Add", ["d_scaled", "d_offset"], ["depth"]),
        helper.make_node("Slice", ["image", "c_start", "c_end", "axis1"], ["c_chan"]),
        helper.make_node("Mul", ["c_chan", "c_scale"], ["c_scaled"]),
        helper.make_node("Add", ["c_scaled", "c_offset"], ["confidence"]),
        helper.make_node("Identity", ["state"], ["state_out"]),
    ]
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, name,
        inputs=[helper.make_tensor_value_info("image", f32, [1, 3, "H", "W"]),
                helper.make_tensor_value_info("lens", f32, [1, 2]),
                helper.make_tensor_value_info("state", f32, [1, STATE_CHANNELS, "h", "w"])],
        outputs=[helper.make_tensor_value_info("depth", f32, [1, 1, "H", "W"]),
                 helper.make_tensor_value_info("confidence", f32, [1, 1, "H", "W"]),
                 helper.make_tensor_value_info("state_out", f32, [1, STATE_CHANNELS, "h", "w"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: model_metadata_json({"name": name}, STATE_CHANNELS)})
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
