"""PyTorch backend (CPU or CUDA): runs the network itself (architectures.build_model); the state is a tensor
that stays on the device.

Weights come from, in this order:
- a ``.pt`` checkpoint {"model": state_dict, "model_config": dict} (loaded with weights_only=True);
- for an ``.onnx`` path, the checkpoint beside it with the same stem (models/dfd_recurrent.pt);
- else the ONNX file itself: the architecture from its ``dfd_model_config`` metadata and the
  weights from its initializers (needs the ``onnx`` package).
Weights always load strictly: a missing, extra or misshapen tensor is a ModelLoadError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfd_depth_ros.backends.base import Backend, BackendUnavailable, require_file
from dfd_depth_ros.errors import first_line
from dfd_depth_ros.model_contract import METADATA_KEY, ModelLoadError, parse_model_metadata


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(f"torch is not installed ({exc})") from None
    return torch


def resolve_torch_device(device: str | None) -> str:
    """"cpu", "cuda", "cuda:N" or None (CUDA when available, else CPU) -> a torch device string."""
    torch = _import_torch()
    if device is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"torch device {device!r} requested but CUDA is not available "
                                     f"(torch {torch.__version__})")
        return device if ":" in device else f"cuda:{torch.cuda.current_device()}"
    if device != "cpu":
        raise ValueError(f"torch device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def _build_net(model_config: dict, state_dict: dict, path: Path):
    """The network of a config dict, weights loaded strictly; ModelLoadError on any mismatch."""
    from dfd_depth_ros.architectures import build_model

    try:
        net = build_model(model_config)
        net.load_state_dict(state_dict, strict=True)
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"{path}: weights do not fit the model config: {first_line(exc)}") from None
    return net.eval()


def load_checkpoint_net(path: Path):
    """A .pt checkpoint {"model", "model_config"} -> (network, model_config dict)."""
    torch = _import_torch()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise ModelLoadError(f"cannot load checkpoint {path} (weights-only): {first_line(exc)}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ModelLoadError(f"{path} is not a dfd_depth_ros checkpoint: needs keys 'model' and 'model_config'")
    return _build_net(ckpt["model_config"], ckpt["model"], path), dict(ckpt["model_config"])


def load_onnx_net(path: Path):
    """An exported .onnx -> (network with the ONNX initializers as weights, model_config dict)."""
    torch = _import_torch()
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelLoadError(f"no checkpoint {path.with_suffix('.pt')} beside {path}, and reading weights "
                             "from the ONNX file needs the 'onnx' package") from None
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelLoadError(f"cannot read {path} as ONNX: {first_line(exc)}") from None
    meta_map = {p.key: p.value for p in model.metadata_props}
    meta = parse_model_metadata(meta_map.get(METADATA_KEY), path)
    weights = {t.name: torch.from_numpy(np.array(numpy_helper.to_array(t))) for t in model.graph.initializer}
    from dfd_depth_ros.architectures import build_model

    try:
        wanted = build_model(meta["model_config"]).state_dict().keys()
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"{path}: bad model config in metadata: {first_line(exc)}") from None
    missing = [k for k in wanted if k not in weights]
    if missing:
        raise ModelLoadError(f"{path}: the ONNX initializers lack {len(missing)} weights (e.g. {missing[0]}); "
                             f"put the checkpoint {path.with_suffix('.pt').name} beside it")
    return _build_net(meta["model_config"], {k: weights[k] for k in wanted}, path), dict(meta["model_config"])


class TorchBackend(Backend):
    """The network in PyTorch. ``device``: "cpu", "cuda", "cuda:N" or None (CUDA if available).

    ``threads`` sets torch's intra-op CPU threads (a process-wide setting) when given.
    """

    name = "torch"

    def __init__(self, device: str | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.requested_device = device
        self.threads = threads
        self._net = None
        self._state = None

    def load(self, model_path: str | Path) -> None:
        torch = _import_torch()
        self.device = resolve_torch_device(self.requested_device)
        if self.threads:
            torch.set_num_threads(self.threads)
        path = require_file(model_path)
        if path.suffix == ".onnx":
            ckpt = path.with_suffix(".pt")
            net, cfg = load_checkpoint_net(ckpt) if ckpt.is_file() else load_onnx_net(path)
        else:
            net, cfg = load_checkpoint_net(path)
        try:
            self._net = net.to(self.device)
        except (RuntimeError, AssertionError) as exc:  # torch built without CUDA, driver error, out of memory
            raise BackendUnavailable(f"torch cannot use {self.device}: {first_line(exc)}") from None
        self.model_path, self.model_config = path, cfg
        self.state_stride = int(getattr(net, "STATE_STRIDE", self.state_stride))
        # a network may take a flow whether or not its (training) config declared the ONNX input
        self.takes_flow = bool(cfg.get("flow_input", False) or getattr(net, "TAKES_FLOW", False))
        self._state, self._size = None, None

    def _zero_state(self, height: int, width: int) -> None:
        self._state = self._net.initial_state(1, height, width, device=self.device)

    def _run(self, image: np.ndarray, lens: np.ndarray, *flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = _import_torch()
        with torch.inference_mode():
            image_t = torch.from_numpy(image).to(self.device, non_blocking=True)
            lens_t = torch.from_numpy(lens).to(self.device, non_blocking=True)
            extra = [torch.from_numpy(f).to(self.device, non_blocking=True) for f in flow]
            depth, confidence, self._state = self._net(image_t, lens_t, self._state, *extra)
            return depth[0, 0].cpu().numpy(), confidence[0, 0].cpu().numpy()
