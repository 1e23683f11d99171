"""TensorRT backend (NVIDIA GPU): builds an engine from the exported .onnx and keeps the state on the GPU.

Written against the TensorRT 10 Python API (name-based I/O: ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). Device buffers are torch CUDA tensors, and all
work runs on torch's current CUDA stream, so copies and inference stay ordered.

- One engine per input size: an optimization profile with min = opt = max = that shape (the
  fastest engine; a stream changes size rarely, and each size is built once and cached).
- Engine cache: ``engine_cache_dir()/<key>.engine``, key = ONNX sha256 + TensorRT version +
  GPU compute capability + precision + input shape (``engine_cache_key``). A cached engine
  that no longer deserializes is rebuilt.
- The recurrent state ping-pongs between two device buffers: ``state`` reads one,
  ``state_out`` writes the other, and they swap after each frame. Nothing leaves the GPU but
  depth and confidence.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from dfd_depth_ros.backends.base import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    Backend,
    BackendUnavailable,
    ModelLoadError,
    require_file,
)
from dfd_depth_ros.errors import first_line

log = logging.getLogger(__name__)

MIN_TENSORRT_MAJOR = 10


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def engine_cache_key(onnx_sha256: str, tensorrt_version: str, compute_capability: tuple[int, int],
                     precision: str, height: int, width: int) -> str:
    """File-name-safe key of one engine: every input that changes what TensorRT builds.

    e.g. "3f2a...(16)_trt10.3.0_sm89_fp16_240x320" for a 320x240 (W x H) input.
    """
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    version = "".join(c if c.isalnum() or c == "." else "-" for c in tensorrt_version)
    major, minor = compute_capability
    return f"{onnx_sha256[:16]}_trt{version}_sm{major}{minor}_{precision}_{int(height)}x{int(width)}"


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed ({first_line(exc)}); use --backend torch or "
                                 "onnxruntime, or install TensorRT >= 10 with its Python bindings") from None
    major = int(str(trt.__version__).split(".")[0])
    if major < MIN_TENSORRT_MAJOR:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old: the backend needs >= {MIN_TENSORRT_MAJOR}")
    return trt


def _import_cuda_torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("the TensorRT backend needs torch with CUDA for its device buffers") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"the TensorRT backend needs a CUDA GPU; torch {torch.__version__} sees none")
    return torch


def _torch_dtype(trt, torch, dtype):
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise ModelLoadError(f"unsupported TensorRT I/O type {dtype}")
    return table[dtype]


class TensorRTBackend(Backend):
    """TensorRT on one CUDA GPU. ``fp16``: allow FP16 kernels (I/O stays float32).

    ``cache_dir``: engine cache folder (default resources.engine_cache_dir()).
    ``workspace_mb``: builder workspace limit.
    """

    name = "tensorrt"

    def __init__(self, fp16: bool = True, cache_dir: str | Path | None = None, device_index: int = 0,
                 workspace_mb: int = 1024) -> None:
        super().__init__()
        self.precision = "fp16" if fp16 else "fp32"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device_index = device_index
        self.workspace_mb = workspace_mb
        self.device = f"cuda:{device_index}"
        self._engine = self._context = None
        self._engine_size: tuple[int, int] | None = None
        self._buffers: dict = {}

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: str | Path) -> None:
        trt = _import_tensorrt()
        torch = _import_cuda_torch()
        torch.cuda.set_device(self.device_index)
        path = require_file(model_path)
        if path.suffix != ".onnx":
            raise ModelLoadError(f"the TensorRT backend builds from an .onnx model, got {path}")
        self._trt, self._torch = trt, torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._parse(path)  # fail now, not at the first frame, on a corrupt file
        self._onnx_sha256 = file_sha256(path)
        self.model_path = path
        self._engine = self._context = self._engine_size = self._size = None

    def _parse(self, path: Path):
        """Parse the ONNX into a fresh network -> (builder, network); ModelLoadError if it does not parse."""
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelLoadError(first_line(f"TensorRT cannot parse {path}: {errors or 'unknown error'}"))
        inputs = tuple(network.get_input(i).name for i in range(network.num_inputs))
        if inputs != INPUT_NAMES:
            raise ModelLoadError(f"{path} has inputs {inputs}; a dfd_depth_ros model has {INPUT_NAMES}")
        return builder, network

    # -- engines -------------------------------------------------------------------------------
    def engine_path(self, height: int, width: int) -> Path:
        """Cache file of the engine for a height x width input on this GPU."""
        from dfd_depth_ros.package_paths import engine_cache_dir

        cc = self._torch.cuda.get_device_capability(self.device_index)
        key = engine_cache_key(self._onnx_sha256, self._trt.__version__, cc, self.precision, height, width)
        return (self.cache_dir or engine_cache_dir()) / f"{self.model_path.stem}_{key}.engine"

    def _build(self, height: int, width: int) -> bytes:
        """Build a serialized engine for a fixed (1, 3, height, width) input."""
        trt = self._trt
        builder, network = self._parse(self.model_path)
        channels = network.get_input(2).shape[1]
        shapes = {"image": (1, 3, height, width), "lens": (1, 2),
                  "state": (1, channels, -(-height // 8), -(-width // 8))}
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            profile.set_shape(name, shape, shape, shape)
        config = builder.create_builder_config()
        config.add_optimization_profile(profile)
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        log.info("building TensorRT engine for %dx%d (%s); this takes a while once", width, height, self.precision)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelLoadError(f"TensorRT failed to build an engine from {self.model_path} for {width}x{height}")
        return bytes(serialized)

    def _engine_for(self, height: int, width: int):
        """Deserialize the cached engine for this size, building (and caching) it when needed."""
        path = self.engine_path(height, width)
        if path.is_file():
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is not None:
                return engine
            log.warning("cached engine %s does not deserialize; rebuilding", path)
        blob = self._build(height, width)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        return self._runtime.deserialize_cuda_engine(blob)

    def _activate(self, height: int, width: int) -> None:
        """Make the engine, context and device buffers for a height x width input current."""
        trt, torch = self._trt, self._torch
        engine = self._engine_for(height, width)
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                context.set_input_shape(name, tuple(engine.get_tensor_profile_shape(name, 0)[1]))  # opt = fixed
        buffers = {}
        for name in names:  # output shapes are known once every input shape is set
            dtype = _torch_dtype(trt, torch, engine.get_tensor_dtype(name))
            buffers[name] = torch.zeros(tuple(context.get_tensor_shape(name)), dtype=dtype, device=self.device)
        missing = set(INPUT_NAMES + OUTPUT_NAMES) - set(buffers)
        if missing:
            raise ModelLoadError(f"engine from {self.model_path} lacks tensors {sorted(missing)}")
        for name in ("image", "lens", "depth", "confidence"):
            context.set_tensor_address(name, buffers[name].data_ptr())
        self._engine, self._context, self._buffers = engine, context, buffers
        self._engine_size = (height, width)

    # -- running -------------------------------------------------------------------------------
    def _zero_state(self, height: int, width: int) -> None:
        if self._engine_size != (height, width):
            self._activate(height, width)
        self._buffers["state"].zero_()

    def _run(self, image: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch, buf, ctx = self._torch, self._buffers, self._context
        buf["image"].copy_(torch.from_numpy(image))
        buf["lens"].copy_(torch.from_numpy(lens))
        ctx.set_tensor_address("state", buf["state"].data_ptr())
        ctx.set_tensor_address("state_out", buf["state_out"].data_ptr())
        if not ctx.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        buf["state"], buf["state_out"] = buf["state_out"], buf["state"]  # ping-pong: the output is next input
        depth = buf["depth"][0, 0].float().cpu().numpy()  # .cpu() waits for the stream
        return depth, buf["confidence"][0, 0].float().cpu().numpy()
