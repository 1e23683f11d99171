"""The exported model's contract, in one place: what training/export.py writes and every backend reads.

ONNX interface (dynamic batch, height and width; height and width multiples of STRIDE):
    inputs   image      (B, 3, H, W)            float32 RGB in [0, 1]
             lens       (B, 2)                  float32 [fx * D (px*m), 1 / focus (1/m)]
             state      (B, S, H/8, W/8)        float32, zeros = reset
             flow       (B, 2, H/s, W/s)        float32, only in models whose metadata says "flow_input": true:
                                                [dx, dy] px at the state's resolution, current(x) ~ previous(x + flow),
                                                the model aligns its state with it (zeros: no motion)
    outputs  depth      (B, 1, H, W)            float32 metres
             confidence (B, 1, H, W)            float32 in [0, 1]
             state_out  (B, S, H/8, W/8)        float32, feed back as ``state``
The ONNX metadata key ``dfd_model_config`` holds JSON {"model_config": ModelConfig dict,
"state_channels": S, "stride": 8, ...} (and "state_stride": s when the state is (B, S, H/s, W/s)
rather than at 1/8, e.g. 2 for focus_volume_network.FocusVolumeNet; "flow_input": true when the model takes
the flow input), so a runtime can build the zero state and check
the model without a side file. No torch or onnx import here: ``read_onnx_metadata`` walks the protobuf wire
format itself (the TensorRT backend has neither onnx nor onnxruntime to ask).
"""

from __future__ import annotations

import json
from pathlib import Path

STRIDE = 8  # input height and width must be multiples of this; = network.STRIDE (a test checks it)
INPUT_NAMES = ("image", "lens", "state")
FLOW_INPUT = "flow"  # the optional fourth input (see the module docstring)
OUTPUT_NAMES = ("depth", "confidence", "state_out")
METADATA_KEY = "dfd_model_config"

_MODEL_METADATA_FIELD = 14  # ModelProto.metadata_props (repeated StringStringEntryProto {key = 1, value = 2})


class ModelLoadError(RuntimeError):
    """A model file is missing, unreadable or not a dfd_depth_ros model (one-line message)."""


def model_metadata_json(model_config: dict, state_channels: int, stride: int = STRIDE, **extra) -> str:
    """The JSON value of METADATA_KEY that export writes (extra: e.g. iteration=3000)."""
    return json.dumps({"model_config": dict(model_config), "state_channels": int(state_channels),
                       "stride": int(stride), **extra})


def input_names(meta: dict) -> tuple[str, ...]:
    """The inputs a model with this metadata has: INPUT_NAMES, plus FLOW_INPUT when it says "flow_input": true."""
    return INPUT_NAMES + ((FLOW_INPUT,) if meta.get("flow_input") else ())


def parse_model_metadata(raw: str | None, path: str | Path) -> dict:
    """The JSON of the ONNX metadata key ``dfd_model_config`` -> dict; ModelLoadError if absent or bad.

    Checks: a JSON object with a "model_config" object, a positive integer "state_channels" when
    present, and "stride" (when present) equal to this runtime's STRIDE.
    """
    if raw is None:
        raise ModelLoadError(f"{path} has no '{METADATA_KEY}' metadata: not exported by training/export.py")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: bad '{METADATA_KEY}' metadata ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config"), dict):
        raise ModelLoadError(f"{path}: '{METADATA_KEY}' metadata has no 'model_config' object")
    channels = meta.get("state_channels", 1)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ModelLoadError(f"{path}: '{METADATA_KEY}' state_channels must be a positive integer, got {channels!r}")
    state_stride = meta.get("state_stride", STRIDE)
    if not isinstance(state_stride, int) or isinstance(state_stride, bool) or state_stride < 1:
        raise ModelLoadError(f"{path}: '{METADATA_KEY}' state_stride must be a positive integer, got {state_stride!r}")
    if not isinstance(meta.get("flow_input", False), bool):
        raise ModelLoadError(f"{path}: '{METADATA_KEY}' flow_input must be true or false, got {meta['flow_input']!r}")
    if meta.get("stride", STRIDE) != STRIDE:
        raise ModelLoadError(f"{path}: model stride {meta['stride']} is not this runtime's {STRIDE}")
    return meta


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Protobuf base-128 varint at buf[pos] -> (value, next position)."""
    value = shift = 0
    while shift < 64:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes, start: int, end: int):
    """Yield (field number, wire type, value) of one protobuf message; value is bytes for length-delimited."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("field runs past the end of the message")
        yield number, wire, value


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an .onnx file as {key: value}; ModelLoadError when it is not an ONNX protobuf."""
    path = Path(path)
    try:
        buf = path.read_bytes()
        props = {}
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number == _MODEL_METADATA_FIELD and wire == 2:
                entry = {n: v for n, w, v in _fields(value, 0, len(value)) if w == 2}
                props[entry.get(1, b"").decode("utf-8")] = entry.get(2, b"").decode("utf-8")
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not an ONNX model ({exc})") from None
    return props
