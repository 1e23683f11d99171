"""TensorRT backend (NVIDIA GPU): engines built from the exported .onnx; the state stays on the GPU.

Written against the TensorRT 10 Python API (name-based I/O: ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) and tested with a stub of it
(test/test_tensorrt_backend.py); no machine of this project has run it on real TensorRT.

- Sizes are declared, never discovered: ``engine_sizes`` lists the network input sizes, and
  load() builds (or loads from the cache) one engine per size, each with an optimization
  profile min = opt = max = that shape (the fastest engine). Nothing is built once frames
  flow: a frame of an undeclared size is refused with ValueError naming the declared ones,
  and with no size declared load() raises BackendUnavailable (so "auto" moves on).
- Engine cache: ``<cache>/<model stem>_<engine_cache_key>.engine``, key = ONNX sha256 +
  TensorRT version + GPU compute capability + precision + input shape. A cached engine that
  no longer deserializes (another TensorRT build, a truncated file) is rebuilt. The builder's
  timing cache, ``<cache>/timing_trt<version>_sm<cc>.cache``, is shared by all models and
  sizes and makes rebuilds fast.
- TensorRT 10 only: 11 drops weakly typed networks and ``BuilderFlag.FP16``, which the FP16
  build relies on (the exported ONNX is float32); TensorRT 11+ is refused with
  BackendUnavailable ("not supported yet") rather than built another way untested.
- Device buffers are torch CUDA tensors on ``cuda:<device_index>``; all work runs on a
  stream the backend owns, inside ``torch.cuda.device(device_index)`` (callers may be any
  executor thread, whose current device is not ours).
- The recurrent state ping-pongs between two device buffers: ``state`` reads one,
  ``state_out`` writes the other, and they swap after each frame. Only depth and confidence
  leave the GPU.
- Every failure of TensorRT or CUDA in load() (import, no GPU, parse, build, deserialize, a
  version outside 10.x) is BackendUnavailable; a file that is not a dfd_depth_ros ONNX model
  is ModelLoadError.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfd_depth_ros.backends.base import Backend, BackendUnavailable, require_file, state_shape
from dfd_depth_ros.errors import first_line
from dfd_depth_ros.model_contract import (
    FLOW_INPUT,
    METADATA_KEY,
    OUTPUT_NAMES,
    STRIDE,
    ModelLoadError,
    input_names,
    parse_model_metadata,
    read_onnx_metadata,
)

log = logging.getLogger(__name__)

MIN_TENSORRT_MAJOR = 10
MAX_TENSORRT_MAJOR = 10  # 11 removed BuilderFlag.FP16 (weakly typed networks): not supported yet


def parse_engine_sizes(sizes: str | Sequence) -> tuple[tuple[int, int], ...]:
    """Declared engine sizes -> ((H, W), ...) network input px, each rounded up to a multiple of STRIDE.

    Accepts "640x480,1280x720" (W x H, comma-separated), a list of such strings, or (H, W)
    pairs. A size is the image size the backend will see; DepthStream pads to a multiple of
    8 (1280x722 runs as 1280x728), and rounding here keeps the two the same. ValueError on
    anything else.
    """
    items = [s for s in sizes.split(",") if s.strip()] if isinstance(sizes, str) else list(sizes)
    out = []
    for item in items:
        try:
            if isinstance(item, str):
                w, h = (int(v) for v in item.strip().lower().split("x"))
            else:
                h, w = (int(v) for v in item)
        except (ValueError, TypeError):
            raise ValueError(f"engine size {item!r}: write it as 'WxH' (e.g. '640x480') or an (H, W) pair") from None
        if h <= 0 or w <= 0:
            raise ValueError(f"engine size {item!r} must be positive")
        size = (-(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE)
        if size not in out:
            out.append(size)
    return tuple(out)


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c == "." else "-" for c in text)


def engine_cache_key(onnx_sha256: str, tensorrt_version: str, compute_capability: tuple[int, int],
                     precision: str, height: int, width: int) -> str:
    """File-name-safe key of one engine: every input that changes what TensorRT builds.

    e.g. "3f2a...(16)_trt10.3.0_sm89_fp16_240x320" for a 320x240 (W x H) input.
    """
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    major, minor = compute_capability
    return f"{onnx_sha256[:16]}_trt{_safe(tensorrt_version)}_sm{major}{minor}_{precision}_{int(height)}x{int(width)}"


def tensorrt_major(version: str) -> int:
    """Major version of a TensorRT version string; BackendUnavailable outside 10.x."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise BackendUnavailable(f"cannot read the TensorRT version {version!r}") from None
    if major < MIN_TENSORRT_MAJOR:
        raise BackendUnavailable(f"TensorRT {version} is too old: the backend needs {MIN_TENSORRT_MAJOR}.x")
    if major > MAX_TENSORRT_MAJOR:
        raise BackendUnavailable(f"TensorRT {version} is not supported yet (11 removed the FP16 builder flag "
                                 f"this backend uses); use TensorRT {MAX_TENSORRT_MAJOR}.x, or backend torch")
    return major


def _import_tensorrt():
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError/RuntimeError when libnvinfer or CUDA libraries are missing
        raise BackendUnavailable(f"TensorRT does not import ({first_line(exc)}): use backend torch or "
                                 "onnxruntime, or install TensorRT 10 with its Python bindings") from None
    tensorrt_major(getattr(trt, "__version__", "unknown"))
    return trt


def _import_cuda_torch(device_index: int):
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("the TensorRT backend needs torch with CUDA for its device buffers") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"the TensorRT backend needs a CUDA GPU; torch {torch.__version__} sees none")
    if not 0 <= device_index < torch.cuda.device_count():
        raise BackendUnavailable(f"no CUDA device {device_index}: torch sees {torch.cuda.device_count()}")
    return torch


def buffer_device(torch, device_index: int):
    """The torch device of the I/O buffers (a function so that the stub test can place them on the CPU)."""
    return torch.device("cuda", device_index)


@dataclass
class _Slot:
    """One engine for one input size, its execution context and its device buffers by tensor name."""

    engine: object
    context: object
    buffers: dict


class TensorRTBackend(Backend):
    """TensorRT on one CUDA GPU. ``fp16``: allow FP16 kernels (I/O stays float32).

    ``engine_sizes``: the network input sizes to build in load() (see parse_engine_sizes).
    ``cache_dir``: engine and timing cache folder (default package_paths.engine_cache_dir()).
    ``workspace_mb``: builder workspace limit, MiB.
    """

    name = "tensorrt"

    def __init__(self, fp16: bool = True, cache_dir: str | Path | None = None, device_index: int = 0,
                 workspace_mb: int = 1024, engine_sizes: str | Sequence = ()) -> None:
        super().__init__()
        self.precision = "fp16" if fp16 else "fp32"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device_index = int(device_index)
        self.workspace_mb = workspace_mb
        self.engine_sizes = parse_engine_sizes(engine_sizes)
        self.device = f"cuda:{self.device_index}"
        self._slots: dict[tuple[int, int], _Slot] = {}
        self._slot: _Slot | None = None

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: str | Path) -> None:
        path = require_file(model_path)
        if path.suffix != ".onnx":
            raise BackendUnavailable(f"the TensorRT backend builds from an .onnx model, not {path.name}")
        meta = parse_model_metadata(read_onnx_metadata(path).get(METADATA_KEY), path)
        if not self.engine_sizes:
            raise BackendUnavailable("the TensorRT backend builds its engines at start-up and needs the input "
                                     "sizes: set engine_sizes (e.g. '640x480')")
        trt = _import_tensorrt()
        torch = _import_cuda_torch(self.device_index)
        self._trt, self._torch = trt, torch
        self.model_path, self._meta, self._slots, self._slot, self._size = path, meta, {}, None, None
        self.state_stride = int(meta.get("state_stride", STRIDE))
        self.takes_flow = bool(meta.get("flow_input", False))
        if meta["model_config"].get("architecture") == "dfd_focus_volume" and self.precision == "fp16":
            # Its evidence sums squared focus measures of order 1e-6 and subtracts near-equal sums: FP16 underflows.
            log.warning("%s: the focus-volume evidence needs FP32; building an FP32 engine", path.name)
            self.precision = "fp32"
        self._inputs = input_names(meta)
        try:
            with torch.cuda.device(self.device_index):
                self._stream = torch.cuda.Stream(device=self.device)
                self._logger = trt.Logger(trt.Logger.WARNING)
                self._runtime = trt.Runtime(self._logger)
                self._onnx_sha256 = file_sha256(path)
                self._cc = tuple(torch.cuda.get_device_capability(self.device_index))
                for height, width in self.engine_sizes:
                    self._slots[(height, width)] = self._make_slot(self._engine_for(height, width))
        except (BackendUnavailable, ModelLoadError):
            self.model_path, self._slots = None, {}
            raise
        except Exception as exc:  # TensorRT and CUDA raise RuntimeError, TypeError, their own types, ...
            self.model_path, self._slots = None, {}
            raise BackendUnavailable(f"TensorRT failed on {path.name}: {first_line(exc)}") from None
        self.model_config = dict(meta["model_config"])

    def _parse(self):
        """Parse the ONNX into a fresh network -> (builder, network); checks it against the model contract."""
        trt, path = self._trt, self.model_path
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(first_line(f"TensorRT cannot parse {path}: {errors or 'unknown error'}"))
        inputs = tuple(network.get_input(i).name for i in range(network.num_inputs))
        outputs = tuple(network.get_output(i).name for i in range(network.num_outputs))
        if inputs != self._inputs or outputs != OUTPUT_NAMES:
            raise ModelLoadError(f"{path} has inputs {inputs} and outputs {outputs}; "
                                 f"this dfd_depth_ros model should have {self._inputs} -> {OUTPUT_NAMES}")
        channels = int(network.get_input(2).shape[1])
        if channels != int(self._meta.get("state_channels", channels)):
            raise ModelLoadError(f"{path}: the state input has {channels} channels, its metadata says "
                                 f"{self._meta['state_channels']}")
        return builder, network, channels

    # -- engines -------------------------------------------------------------------------------
    def _cache(self) -> Path:
        from dfd_depth_ros.package_paths import engine_cache_dir

        return self.cache_dir or engine_cache_dir()

    def engine_path(self, height: int, width: int) -> Path:
        """Cache file of the engine for a height x width input on this GPU (after load())."""
        key = engine_cache_key(self._onnx_sha256, self._trt.__version__, self._cc, self.precision, height, width)
        return self._cache() / f"{self.model_path.stem}_{key}.engine"

    def timing_cache_path(self) -> Path:
        """The builder's timing cache for this TensorRT version and GPU, next to the engines (after load())."""
        return self._cache() / f"timing_trt{_safe(self._trt.__version__)}_sm{self._cc[0]}{self._cc[1]}.cache"

    def _build(self, height: int, width: int) -> bytes:
        """A serialized engine for a fixed (1, 3, height, width) input; updates the timing cache file."""
        trt = self._trt
        builder, network, channels = self._parse()
        shapes = {"image": (1, 3, height, width), "lens": (1, 2),
                  "state": state_shape(channels, height, width, self.state_stride)}
        if self.takes_flow:
            shapes[FLOW_INPUT] = self.flow_shape(height, width)
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            profile.set_shape(name, shape, shape, shape)
        config = builder.create_builder_config()
        config.add_optimization_profile(profile)
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        timing_path = self.timing_cache_path()
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, False)  # ignore_mismatch=False: a cache from another GPU is refused
        log.info("building the TensorRT engine of %s for %dx%d (%s); once per size, then cached",
                 self.model_path.name, width, height, self.precision)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailable(f"TensorRT failed to build an engine from {self.model_path.name} "
                                     f"for {width}x{height}")
        _write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)

    def _engine_for(self, height: int, width: int):
        """Deserialize the cached engine for this size, building (and caching) it when needed."""
        path = self.engine_path(height, width)
        if path.is_file():
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is not None:
                return engine
            log.warning("cached TensorRT engine %s does not deserialize; rebuilding it", path)
        blob = self._build(height, width)
        _write_atomic(path, blob)
        engine = self._runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise BackendUnavailable(f"TensorRT cannot deserialize the engine it just built for {width}x{height}")
        return engine

    def _make_slot(self, engine) -> _Slot:
        """Execution context and device buffers of one engine; input shapes from its single profile."""
        trt, torch = self._trt, self._torch
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        missing = set(self._inputs + OUTPUT_NAMES) - set(names)
        if missing:
            raise BackendUnavailable(f"the engine from {self.model_path.name} lacks tensors {sorted(missing)}")
        for name in self._inputs:
            shape = tuple(engine.get_tensor_profile_shape(name, 0)[1])  # opt = min = max
            if not context.set_input_shape(name, shape):
                raise BackendUnavailable(f"TensorRT refused input shape {shape} for {name!r}")
        device = buffer_device(torch, self.device_index)
        buffers = {}
        for name in names:  # output shapes are known once every input shape is set
            dtype = _torch_dtype(trt, torch, engine.get_tensor_dtype(name))
            buffers[name] = torch.zeros(tuple(context.get_tensor_shape(name)), dtype=dtype, device=device)
        for name in ("image", "lens", "depth", "confidence") + ((FLOW_INPUT,) if self.takes_flow else ()):
            if not context.set_tensor_address(name, buffers[name].data_ptr()):
                raise BackendUnavailable(f"TensorRT refused the device address of {name!r}")
        return _Slot(engine, context, buffers)

    # -- running -------------------------------------------------------------------------------
    def _zero_state(self, height: int, width: int) -> None:
        slot = self._slots.get((height, width))
        if slot is None:
            declared = ", ".join(f"{w}x{h}" for h, w in self._slots)
            raise ValueError(f"no TensorRT engine for {width}x{height} px (built for {declared}): add "
                             f"'{width}x{height}' to engine_sizes")
        torch = self._torch
        with torch.cuda.device(self.device_index), torch.cuda.stream(self._stream):
            slot.buffers["state"].zero_()
        self._slot = slot

    def _run(self, image: np.ndarray, lens: np.ndarray, *flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch, buf, ctx = self._torch, self._slot.buffers, self._slot.context
        with torch.cuda.device(self.device_index), torch.cuda.stream(self._stream):
            buf["image"].copy_(torch.from_numpy(image))  # on our stream: ordered before the engine
            buf["lens"].copy_(torch.from_numpy(lens))
            if flow:
                buf[FLOW_INPUT].copy_(torch.from_numpy(flow[0]))
            for name in ("state", "state_out"):
                if not ctx.set_tensor_address(name, buf[name].data_ptr()):
                    raise RuntimeError(f"TensorRT refused the device address of {name!r}")
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            buf["state"], buf["state_out"] = buf["state_out"], buf["state"]  # ping-pong: the output is next input
            # a copy to pageable host memory waits for the stream; copy=True: the caller owns the arrays
            depth = buf["depth"][0, 0].to("cpu", torch.float32, copy=True)
            confidence = buf["confidence"][0, 0].to("cpu", torch.float32, copy=True)
        return depth.numpy(), confidence.numpy()

    def describe(self) -> dict:
        """Backend.describe() plus the precision and the engine sizes ("WxH")."""
        return {**super().describe(), "precision": self.precision,
                "engine_sizes": [f"{w}x{h}" for h, w in self.engine_sizes]}


def _torch_dtype(trt, torch, dtype):
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise BackendUnavailable(f"unsupported TensorRT I/O type {dtype}")
    return table[dtype]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
