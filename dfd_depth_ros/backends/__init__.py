"""Inference backends behind one interface (base.Backend); each imports its library lazily.

    backend = open_backend("auto", "models/dfd_recurrent.onnx")
    depth_m, confidence = backend.infer(image, lens)

Names: "onnxruntime" (CPU), "torch" (CPU or CUDA), "tensorrt" (CUDA, TensorRT >= 10), and
"auto": TensorRT when it imports and a CUDA GPU is there, else torch on CUDA when available,
else ONNX Runtime on CPU. "auto" loads each candidate in turn (so every fallback happens in
load(), never at the first frame) and moves on only when one is unavailable
(BackendUnavailable), logging one warning line with the reason; a bad model file
(ModelLoadError) is reported as is.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

from dfd_depth_ros.backends.base import Backend, BackendUnavailable
from dfd_depth_ros.errors import first_line
from dfd_depth_ros.model_contract import ModelLoadError

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailable",
    "ModelLoadError",
    "auto_candidates",
    "create_backend",
    "open_backend",
]

BACKEND_NAMES = ("auto", "onnxruntime", "torch", "tensorrt")

log = logging.getLogger(__name__)


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def auto_candidates() -> list[str]:
    """The backends "auto" tries, best first, on this machine."""
    cuda = _cuda_available()
    order = ["tensorrt"] if cuda and importlib.util.find_spec("tensorrt") is not None else []
    return order + (["torch"] if cuda else []) + ["onnxruntime"]


def _device_index(device: str | None) -> int:
    if device in (None, "cuda"):
        return 0
    if not device.startswith("cuda:"):
        raise BackendUnavailable(f"the TensorRT backend runs on a CUDA device, not {device!r}")
    return int(device.split(":", 1)[1])


def create_backend(name: str, *, device: str | None = None, threads: int | None = None, fp16: bool = True,
                   engine_cache_dir: str | Path | None = None,
                   engine_sizes: str | Sequence = ()) -> Backend:
    """An unloaded backend by name (not "auto"); options that do not apply to it are ignored.

    device: torch "cpu"/"cuda"/"cuda:N" (None: CUDA if available), TensorRT "cuda:N";
    ONNX Runtime runs on CPU only. threads: CPU intra-op threads (ONNX Runtime, torch).
    fp16, engine_cache_dir: TensorRT precision and engine cache folder.
    engine_sizes: the network input sizes TensorRT builds engines for in load(), "WxH" strings
    (or one comma-separated string) or (H, W) pairs; see tensorrt_backend.parse_engine_sizes.
    """
    if name == "onnxruntime":
        if device not in (None, "cpu"):
            raise BackendUnavailable(f"the onnxruntime backend runs on CPU only, not {device!r}")
        from dfd_depth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=threads)
    if name == "torch":
        from dfd_depth_ros.backends.torch_backend import TorchBackend

        return TorchBackend(device=device, threads=threads)
    if name == "tensorrt":
        from dfd_depth_ros.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(fp16=fp16, cache_dir=engine_cache_dir, device_index=_device_index(device),
                               engine_sizes=engine_sizes)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def open_backend(name: str, model_path: str | Path, **options) -> Backend:
    """create_backend + load; "auto" picks the first candidate that loads (see module doc)."""
    if name != "auto":
        backend = create_backend(name, **options)
        backend.load(model_path)
        return backend
    reasons = []
    candidates = auto_candidates()
    for i, candidate in enumerate(candidates):
        try:
            backend = create_backend(candidate, **options)
            backend.load(model_path)
            return backend
        except BackendUnavailable as exc:
            reasons.append(f"{candidate}: {first_line(exc)}")
            if i + 1 < len(candidates):
                log.warning("backend auto: %s is not available (%s); trying %s", candidate, first_line(exc),
                            candidates[i + 1])
    raise BackendUnavailable("no backend available: " + "; ".join(reasons))
