"""DepthStream: the ROS-free estimator core shared by the node, bag evaluation and the benchmark.

    stream = DepthStream("models/dfd_recurrent.onnx", backend="auto")
    result = stream.process(image, K, lens, stamp_ns, frame_id)   # one camera frame
    result.depth_m      # (H, W) float32 metres, NaN where invalid

It owns the preprocessing (any image size: pad to a multiple of 8, or resize to a set network
size), the backend and the recurrent state. The state is reset, and the reason reported in
``DepthResult.reset_reason``, on the first frame ("start"), on request ("request"), when the
stamp goes backwards ("time_backwards"), after a gap longer than ``max_gap_periods`` median
frame periods ("gap"), and when the resolution, frame_id or intrinsics K change
("resolution", "frame_id", "intrinsics").

State guard: the inputs are range-checked (``input_checks``: K, the lens, and fx * D and 1/focus
finite in float32) before they reach the network, and every output is checked too: when the
network returns a non-finite depth or confidence anywhere, the state is taken to be poisoned,
reset, and the frame is run again from the fresh state ("non_finite"); if that output is still
not finite, ``NonFiniteOutput`` is raised (and the state stays fresh). A NaN never stays in the state.

Motion: for a model that takes a flow input (``backend.takes_flow``), a ``flow.FlowTracker`` computes
the flow from each network-size frame into the previous one on blur-equalised frames (OpenCV DIS,
outside the graph) and the model aligns its state with it; the tracker forgets its frame on every reset
(the state guard's rerun passes no flow: a fresh state has nothing to align).

Blur scales with resolution: resizing the image by s scales every blur diameter by s, so the
network's blur-scale input is fx * D computed with fx in network pixels (fx * s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dfd_depth_ros import input_checks
from dfd_depth_ros.backends import Backend, ModelLoadError, open_backend
from dfd_depth_ros.flow import FlowTracker
from dfd_depth_ros.model_contract import STRIDE
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.package_paths import default_model_path
from dfd_depth_ros.stamps import FramePeriod

RESET_REASONS = ("start", "request", "time_backwards", "gap", "resolution", "frame_id", "intrinsics", "non_finite")
STAGES = ("convert", "preprocess", "inference", "postprocess")
_INV_255 = np.float32(1.0 / 255.0)


@dataclass
class DepthResult:
    """The estimate of one frame.

    depth_m: (H, W) float32 z-depth in metres at the input resolution; NaN where invalid
        (outside [min_depth_m, max_depth_m] or confidence below min_confidence).
    confidence: (H, W) float32 in [0, 1].
    reset_reason: why the temporal state was reset before this frame (RESET_REASONS), or None.
    timings_ms: milliseconds per stage: convert, preprocess, inference, postprocess.
    """

    depth_m: np.ndarray
    confidence: np.ndarray
    reset_reason: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    stamp_ns: int = 0
    frame_id: str = ""


@dataclass(frozen=True)
class _FrameKey:
    """What must stay the same for the state to carry over: size, frame and intrinsics."""

    shape: tuple[int, int]
    frame_id: str
    K: np.ndarray = field(compare=False)


def round_up(n: int, multiple: int = STRIDE) -> int:
    """Smallest multiple of ``multiple`` >= n."""
    return -(-int(n) // multiple) * multiple


def check_image(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB or (H, W) / (H, W, 1) uint8 mono -> (H, W, 3) or (H, W) uint8; ValueError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be (H, W, 3) RGB or (H, W) mono, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has zero size ({image.shape[1]}x{image.shape[0]})")
    return image


def check_intrinsics(K) -> np.ndarray:
    """3x3 (or 9 values, row-major) pinhole intrinsics -> (3, 3) float64; ValueError when unusable.

    The rule is ``input_checks.check_intrinsics`` (finite, fx and fy in (0, 1e6) px, ...).
    """
    return input_checks.check_intrinsics(K)


class NonFiniteOutput(ValueError):
    """The network gave NaN or Inf even from a fresh state: the frame's inputs cannot be used."""


class DepthStream:
    """Depth from one camera stream, frame by frame, with the temporal state carried across frames.

    model_path: exported .onnx (or a .pt checkpoint for the torch backend); None: the shipped
        models/dfd_recurrent.onnx (resources.default_model_path).
    backend: "auto", "onnxruntime", "torch", "tensorrt", or a loaded Backend instance.
    max_gap_periods: reset when the stamp jumps by more than this many median frame periods.
    network_width, network_height: run the network at this size (px; both or neither); None:
        the input size, padded to a multiple of 8.
    min_depth_m, max_depth_m: output range; depth outside it is NaN.
    min_confidence: depth whose confidence is below this is NaN (0: keep all).
    backend_options: keyword options of backends.create_backend (device, threads, fp16, ...).
    """

    def __init__(self, model_path: str | Path | None = None, backend: str | Backend = "auto", *,
                 max_gap_periods: float = 5.0, network_width: int | None = None,
                 network_height: int | None = None, min_depth_m: float = 0.1, max_depth_m: float = 20.0,
                 min_confidence: float = 0.0, backend_options: dict | None = None) -> None:
        self._check_settings(max_gap_periods, network_width, network_height, min_depth_m, max_depth_m,
                             min_confidence)
        self.max_gap_periods = float(max_gap_periods)
        self.network_size = None if network_width is None else (int(network_height), int(network_width))
        self.min_depth_m, self.max_depth_m = float(min_depth_m), float(max_depth_m)
        self.min_confidence = float(min_confidence)
        self.backend = backend if isinstance(backend, Backend) else self._open(model_path, backend,
                                                                               backend_options or {})
        self._input: np.ndarray | None = None  # reused (1, 3, Hn, Wn) float32 network input
        self._last_key: _FrameKey | None = None
        self._last_stamp_ns: int | None = None
        self._period = FramePeriod(history=15)
        self._pending_reset: str | None = None
        self.frames_processed = 0
        takes_flow = getattr(self.backend, "takes_flow", False)
        if takes_flow and self.backend.state_stride != 2:
            raise ModelLoadError(f"{self.backend.model_path}: a flow input at 1/{self.backend.state_stride} of the "
                                 "image is not supported (FlowTracker computes it at 1/2)")
        cfg = self.backend.model_config  # both cost-volume architectures have an inverse-depth grid
        self.flow_tracker = FlowTracker.for_grid(cfg["grid_near_m"], cfg["grid_far_m"]) if takes_flow else None

    @staticmethod
    def _check_settings(max_gap_periods, network_width, network_height, min_depth_m, max_depth_m,
                        min_confidence) -> None:
        if not max_gap_periods > 0:
            raise ValueError(f"max_gap_periods must be > 0 (inf disables the gap reset), got {max_gap_periods}")
        if (network_width is None) != (network_height is None):
            raise ValueError("set both network_width and network_height, or neither")
        if network_width is not None and (network_width < STRIDE or network_height < STRIDE):
            raise ValueError(f"network size must be >= {STRIDE}x{STRIDE} px, got {network_width}x{network_height}")
        if not 0 <= min_depth_m < max_depth_m:
            raise ValueError(f"need 0 <= min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
        if not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")

    @staticmethod
    def _open(model_path, backend: str, options: dict) -> Backend:
        if model_path is None:
            model_path = default_model_path()
            if not model_path.is_file():
                raise ModelLoadError(f"no model given and the default {model_path} does not exist "
                                     "(train and export one, or pass a model path)")
        return open_backend(backend, model_path, **options)

    # -- public API ------------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def model_path(self) -> Path | None:
        return self.backend.model_path

    def reset(self, reason: str = "request") -> None:
        """Forget the temporal state before the next frame; that frame reports ``reason``."""
        self._pending_reset = reason

    def process(self, image: np.ndarray, K, lens: LensState, stamp_ns: int, frame_id: str) -> DepthResult:
        """One frame -> DepthResult.

        image: (H, W, 3) uint8 RGB or (H, W) uint8 mono, any size. K: (3, 3) intrinsics, px.
        lens: the lens state at ``stamp_ns`` (integer ns). frame_id: the optical frame's name.
        """
        t0 = time.perf_counter()
        image = check_image(image)
        K = check_intrinsics(K)
        if not isinstance(lens, LensState):
            raise ValueError(f"lens must be a LensState, got {type(lens).__name__}")
        input_checks.check_lens(lens)
        stamp_ns = int(stamp_ns)
        t1 = time.perf_counter()
        net_image, scale_x, net_u8 = self._preprocess(image)
        lens_in = self.lens_input(lens, K[0, 0] * scale_x)  # refused here: the state is not touched
        reason = self._update_reset(_FrameKey(image.shape[:2], str(frame_id), K), stamp_ns)
        if reason is not None:
            self.backend.reset_state(*net_image.shape[2:])
        flow = self._flow(net_u8, lens_in, reason is not None)
        t2 = time.perf_counter()
        depth_net, conf_net = self.backend.infer(net_image, lens_in, flow)
        if not (_all_finite(depth_net) and _all_finite(conf_net)):  # the state guard
            self.backend.reset_state(*net_image.shape[2:])
            reason = "non_finite"
            depth_net, conf_net = self.backend.infer(net_image, lens_in)
            if not (_all_finite(depth_net) and _all_finite(conf_net)):
                self._pending_reset = "non_finite"
                raise NonFiniteOutput("the network output is not finite even from a fresh state; frame refused")
        if self.flow_tracker is not None:
            self.flow_tracker.observe(1.0 / depth_net)
        t3 = time.perf_counter()
        depth_m, confidence = self._postprocess(depth_net, conf_net, image.shape[:2])
        t4 = time.perf_counter()
        self.frames_processed += 1
        timings = dict(zip(STAGES, (1e3 * (b - a) for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4)))))
        return DepthResult(depth_m, confidence, reason, timings, stamp_ns, str(frame_id))

    @staticmethod
    def lens_input(lens: LensState, fx_network_px: float) -> np.ndarray:
        """(1, 2) float32 network lens input [fx * D px*m with fx in network px, 1/focus 1/m]; ValueError
        (``input_checks.InputRangeError``) unless both are finite and > 0 in float32."""
        return input_checks.network_lens_input(lens, fx_network_px)

    def _flow(self, net_u8: np.ndarray, lens_in: np.ndarray, reset: bool) -> np.ndarray | None:
        """(1, 2, h, w) float32 flow into the previous frame for a model that takes it; None otherwise."""
        if self.flow_tracker is None:
            return None
        if reset:
            self.flow_tracker.reset()
        f = self.flow_tracker.flow(net_u8, float(lens_in[0, 0]), float(lens_in[0, 1]))
        return None if f is None else np.ascontiguousarray(f.transpose(2, 0, 1)[None], dtype=np.float32)

    # -- temporal state ----------------------------------------------------------------------------
    def _update_reset(self, key: _FrameKey, stamp_ns: int) -> str | None:
        """Decide whether this frame starts from a fresh state; remember it as the last frame."""
        reason = self._reset_reason(key, stamp_ns)
        if reason != "time_backwards" and self._last_stamp_ns is not None:
            # kept across a reversal (a replayed bag has the same rate), so a gap right after one is seen
            self._period.add_step(stamp_ns - self._last_stamp_ns)
        self._pending_reset, self._last_key, self._last_stamp_ns = None, key, stamp_ns
        return reason

    def _reset_reason(self, key: _FrameKey, stamp_ns: int) -> str | None:
        last = self._last_key
        if last is None:
            return self._pending_reset or "start"
        if self._pending_reset is not None:
            return self._pending_reset
        if stamp_ns < self._last_stamp_ns:
            return "time_backwards"
        period_ns = self._period.median_ns()
        if period_ns is not None and stamp_ns - self._last_stamp_ns > self.max_gap_periods * period_ns:
            return "gap"
        if key.shape != last.shape:
            return "resolution"
        if key.frame_id != last.frame_id:
            return "frame_id"
        if not np.allclose(key.K, last.K, rtol=1e-9, atol=1e-9):
            return "intrinsics"
        return None

    # -- image in, depth out ---------------------------------------------------------------------
    def _preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """uint8 image -> ((1, 3, Hn, Wn) float32 in [0, 1], horizontal scale factor network/input,
        the (Hn, Wn[, 3]) uint8 network-size image)."""
        h, w = image.shape[:2]
        scale_x = 1.0
        if self.network_size is not None and self.network_size != (h, w):
            nh, nw = self.network_size
            shrink = nh <= h and nw <= w  # INTER_AREA averages only when both axes shrink
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            scale_x = nw / w
        padded = _pad_to_stride(image)
        return self._to_network_tensor(padded), scale_x, padded

    def _to_network_tensor(self, image: np.ndarray) -> np.ndarray:
        """(Hn, Wn[, 3]) uint8 -> the reused (1, 3, Hn, Wn) float32 buffer; mono fills all three channels."""
        shape = (1, 3, *image.shape[:2])
        if self._input is None or self._input.shape != shape:
            self._input = np.empty(shape, dtype=np.float32)
        out = self._input[0]
        if image.ndim == 2:
            np.multiply(image[None], _INV_255, out=out)  # broadcast: no replicated copy
        else:  # cv2.split is the fastest de-interleave, but needs a contiguous image (not a BGR->RGB view)
            channels = cv2.split(image) if image.flags.c_contiguous else (image[:, :, c] for c in range(3))
            for c, channel in enumerate(channels):
                np.multiply(channel, _INV_255, out=out[c])
        return self._input

    def _postprocess(self, depth_net: np.ndarray, conf_net: np.ndarray,
                     shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Network-size outputs -> input-size (depth_m with NaN where invalid, confidence)."""
        depth_m, confidence = (self._to_input_size(a, shape) for a in (depth_net, conf_net))
        invalid = (depth_m < self.min_depth_m) | (depth_m > self.max_depth_m) | ~np.isfinite(depth_m)
        if self.min_confidence > 0:
            invalid |= confidence < self.min_confidence
        depth_m[invalid] = np.nan
        return depth_m, confidence

    def _to_input_size(self, out: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Crop the padding (and undo the resize): (Hp, Wp) -> writable contiguous (H, W) float32."""
        h, w = shape
        if self.network_size is not None and self.network_size != (h, w):
            nh, nw = self.network_size
            return cv2.resize(np.ascontiguousarray(out[:nh, :nw]), (w, h), interpolation=cv2.INTER_LINEAR)
        out = out[:h, :w]
        if out.flags.c_contiguous and out.flags.writeable and out.dtype == np.float32:
            return out
        return np.array(out, dtype=np.float32, order="C")


def _all_finite(a: np.ndarray) -> bool:
    """True when every value of ``a`` is finite (one pass, no temporary boolean array kept)."""
    return bool(np.isfinite(a).all())


def _pad_to_stride(image: np.ndarray) -> np.ndarray:
    """Pad bottom and right to multiples of STRIDE: mirror (reflect-101) where the image is big enough."""
    h, w = image.shape[:2]
    pad_h, pad_w = round_up(h) - h, round_up(w) - w
    if pad_h == 0 and pad_w == 0:
        return image
    border = cv2.BORDER_REFLECT_101 if pad_h < h and pad_w < w else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(np.ascontiguousarray(image), 0, pad_h, 0, pad_w, border)
