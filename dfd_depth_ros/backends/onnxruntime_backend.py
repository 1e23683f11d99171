"""ONNX Runtime backend (CPU): runs the exported .onnx; the state is a numpy array fed back each frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfd_depth_ros.backends.base import Backend, BackendUnavailable, require_file, state_shape
from dfd_depth_ros.errors import first_line
from dfd_depth_ros.model_contract import (
    METADATA_KEY,
    OUTPUT_NAMES,
    STRIDE,
    ModelLoadError,
    input_names,
    parse_model_metadata,
)


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on CPU. ``threads``: intra-op threads (None: ONNX Runtime's default, one per core)."""

    name = "onnxruntime"

    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._session = None
        self._state: np.ndarray | None = None
        self._state_channels = 0

    def load(self, model_path: str | Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from None
        path = require_file(model_path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: the node shares its cores with the camera driver, DDS and its
        # own callbacks, and spinning workers starved them (a soak on 2 cores lost most frames in some runs).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.threads:
            opts.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types, all plain Exception subclasses
            raise ModelLoadError(f"cannot load {path} with onnxruntime: {first_line(exc)}") from None
        meta = parse_model_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
        self._check_interface(session, path, input_names(meta))
        self._session, self.model_path = session, path
        self.model_config = dict(meta.get("model_config", {}))
        self._state_channels = int(meta["state_channels"]) if "state_channels" in meta else self._channels(session)
        self.state_stride = int(meta.get("state_stride", STRIDE))
        self.takes_flow = bool(meta.get("flow_input", False))
        self._state, self._size = None, None

    @staticmethod
    def _check_interface(session, path: Path, wanted: tuple[str, ...]) -> None:
        inputs = tuple(i.name for i in session.get_inputs())
        outputs = tuple(o.name for o in session.get_outputs())
        if inputs != wanted or outputs != OUTPUT_NAMES:
            raise ModelLoadError(f"{path} has inputs {inputs} and outputs {outputs}; "
                                 f"this dfd_depth_ros model should have {wanted} -> {OUTPUT_NAMES}")

    @staticmethod
    def _channels(session) -> int:
        return int(session.get_inputs()[2].shape[1])

    def _zero_state(self, height: int, width: int) -> None:
        self._state = np.zeros(state_shape(self._state_channels, height, width, self.state_stride), dtype=np.float32)

    def _run(self, image: np.ndarray, lens: np.ndarray, *flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feed = {"image": image, "lens": lens, "state": self._state}
        if flow:
            feed["flow"] = flow[0]
        depth, confidence, self._state = self._session.run(None, feed)
        return depth[0, 0], confidence[0, 0]
