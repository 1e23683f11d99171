"""The interface every inference backend implements, and the errors they raise.

A backend runs one exported DfD model frame by frame and owns the recurrent state, which
stays where the backend computes (a numpy array for ONNX Runtime on CPU, a tensor on the
torch device, a device buffer for TensorRT):

    backend.load(model_path)
    backend.reset_state(height, width)      # zeros = "no memory"
    depth_m, confidence = backend.infer(image, lens)   # advances the state

No heavy imports here: each backend module imports its library inside its methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from dfd_depth_ros.model_contract import STRIDE, ModelLoadError

__all__ = ["Backend", "BackendUnavailable", "ModelLoadError", "check_infer_inputs", "require_file", "state_shape"]


class BackendUnavailable(RuntimeError):
    """The backend's library or device is missing on this machine, or it cannot run this model file type."""


def require_file(path: str | Path) -> Path:
    """``path`` as a Path; ModelLoadError when it is not an existing file."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a model file" if path.is_dir() else "does not exist"
        raise ModelLoadError(f"model file {path} {what}")
    return path


def check_infer_inputs(image: np.ndarray, lens: np.ndarray) -> tuple[int, int]:
    """Validate infer()'s arguments; returns (H, W)."""
    if image.ndim != 4 or image.shape[:2] != (1, 3) or image.dtype != np.float32:
        raise ValueError(f"image must be a (1, 3, H, W) float32 array, got {image.shape} {image.dtype}")
    h, w = image.shape[2:]
    if h % STRIDE or w % STRIDE or h == 0 or w == 0:
        raise ValueError(f"image height and width must be positive multiples of {STRIDE}, got {h}x{w}")
    if lens.shape != (1, 2) or lens.dtype != np.float32:
        raise ValueError(f"lens must be a (1, 2) float32 array, got {lens.shape} {lens.dtype}")
    return h, w


def state_shape(channels: int, height: int, width: int, stride: int = STRIDE) -> tuple[int, int, int, int]:
    """(1, S, H/s, W/s): the recurrent state of one stream at input size height x width px.

    s is the model metadata's "state_stride" (8 unless it says otherwise; 2 for the cost-volume networks).
    """
    return (1, channels, -(-height // stride), -(-width // stride))


class Backend(ABC):
    """One model on one device, with the recurrent state of one image stream.

    Attributes: ``name`` ("onnxruntime", "torch", "tensorrt"), ``device`` ("cpu", "cuda:0"),
    ``model_path`` (set by load), ``model_config`` (the ModelConfig dict the model was built
    from, or {} when the file does not say).
    """

    name: str = "base"

    def __init__(self) -> None:
        self.device = "cpu"
        self.model_path: Path | None = None
        self.model_config: dict = {}
        self._size: tuple[int, int] | None = None  # (H, W) the state was made for
        self.takes_flow = False  # the model aligns its state by a flow input (model_contract.FLOW_INPUT)
        self.state_stride = STRIDE  # the state (and a flow input) is at 1/state_stride of the input size

    @abstractmethod
    def load(self, model_path: str | Path) -> None:
        """Load the model; raises ModelLoadError (bad file) or BackendUnavailable (no library/device)."""

    @abstractmethod
    def _zero_state(self, height: int, width: int) -> None:
        """Replace the state by zeros for an input of height x width px (multiples of 8)."""

    @abstractmethod
    def _run(self, image: np.ndarray, lens: np.ndarray, *flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step: (1,3,H,W), (1,2)[, flow (1,2,h,w) when takes_flow] -> depth_m (H,W), confidence (H,W);
        advances the state."""

    def reset_state(self, height: int, width: int) -> None:
        """Forget the past: zero state for an input of height x width px (multiples of 8)."""
        if self.model_path is None:
            raise RuntimeError(f"{self.name} backend: load() a model before reset_state()")
        self._zero_state(int(height), int(width))
        self._size = (int(height), int(width))

    def flow_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(1, 2, H/s, W/s): the flow input of a model that takes one, s = state_stride."""
        return (1, 2, *state_shape(1, height, width, self.state_stride)[2:])

    def infer(self, image: np.ndarray, lens: np.ndarray,
              flow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """image (1,3,H,W) float32 RGB in [0,1], lens (1,2) float32 [fx*D px*m, 1/focus 1/m]
        -> depth_m (H,W) float32 metres, confidence (H,W) float32 in [0,1].

        flow: (1,2,H/s,W/s) float32, for a model that ``takes_flow`` (None: zeros, no motion); a model that does
        not take it ignores it.

        Advances the recurrent state. The first call after load() starts from zeros; a call
        at a size other than the state's raises ValueError (call reset_state first). The
        returned arrays are new each call and belong to the caller (who may write into them).
        """
        h, w = check_infer_inputs(image, lens)
        if self._size is None:
            self.reset_state(h, w)
        elif self._size != (h, w):
            raise ValueError(f"state is for {self._size[1]}x{self._size[0]} px, image is {w}x{h}: "
                             "call reset_state(height, width) first")
        if not self.takes_flow:
            return self._run(image, lens)
        shape = self.flow_shape(h, w)
        if flow is None:
            flow = np.zeros(shape, np.float32)
        elif flow.shape != shape or flow.dtype != np.float32:
            raise ValueError(f"flow must be a {shape} float32 array, got {flow.shape} {flow.dtype}")
        return self._run(image, lens, flow)

    def describe(self) -> dict:
        """{"backend", "device", "model"} for logs and benchmark reports."""
        return {"backend": self.name, "device": self.device, "model": str(self.model_path)}
