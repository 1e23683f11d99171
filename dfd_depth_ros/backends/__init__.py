"""Inference backends behind one interface (base.Backend); each imports its library lazily.

    backend = open_backend("auto", "models/dfd_recurrent.onnx")
    depth_m, confidence = backend.infer(image, lens)

Names: "onnxruntime" (CPU), "torch" (CPU or CUDA), "tensorrt" (CUDA, TensorRT >= 10), and
"auto": TensorRT when it imports and a CUDA GPU is there, else torch on CUDA when available,
else ONNX Runtime on CPU. "auto" moves on to the next candidate only when one is unavailable
(BackendUnavailable); a bad model file (ModelLoadError) is reported as is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dfd_depth_ros.backends.base import Backend, BackendUnavailable, ModelLoadError

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
                   engine_cache_dir: str | Path | None = None) -> Backend:
    """An unloaded backend by name (not "auto"); options that do not apply to it are ignored.

    device: torch "cpu"/"cuda"/"cuda:N" (None: CUDA if available), TensorRT "cuda:N";
    ONNX Runtime runs on CPU only. threads: CPU intra-op threads (ONNX Runtime, torch).
    fp16, engine_cache_dir: TensorRT precision and engine cache folder.
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

        return TensorRTBackend(fp16=fp16, cache_dir=engine_cache_dir, device_index=_device_index(device))
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def open_backend(name: str, model_path: str | Path, **options) -> Backend:
    """create_backend + load; "auto" picks the first candidate that is available (see module doc)."""
    if name != "auto":
        backend = create_backend(name, **options)
        backend.load(model_path)
        return backend
    reasons = []
    for candidate in auto_candidates():
        try:
            backend = create_backend(candidate, **options)
            backend.load(model_path)
            return backend
        except BackendUnavailable as exc:
            reasons.append(f"{candidate}: {exc}")
    raise BackendUnavailable("no backend available: " + "; ".join(reasons))
