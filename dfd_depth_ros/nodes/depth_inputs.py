"""ROS-free helpers of the depth node: log throttle, stream statistics, frame inputs.

None of these imports rclpy; they take messages only through ``msgs.convert`` (which works on
any object with the fields of the ROS message), so they are tested without a ROS graph. The
lens and camera_info histories they read are the core's (``lens.LensHistory``,
``calibration.CameraInfoHistory``), shared with bag reading.

    Throttle      one warning per problem and period, counting the ones held back
    StreamStats   frame, drop, skip and reset counters and rates for /diagnostics
    frame_inputs  image message + camera_info history + lens history -> arrays for DepthStream (or SkipFrame)
    cloud_fields  the point cloud of a depth image as the node parameters ask for it
    stream_status, open_depth_stream   the /diagnostics verdict; the estimator from the node config
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from dfd_depth_ros.calibration import CameraCalibration, CameraInfoHistory
from dfd_depth_ros.errors import first_line
from dfd_depth_ros.lens import LensHistory
from dfd_depth_ros.nodes.params import StartupError
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.stamps import FramePeriod


class SkipFrame(Exception):
    """A frame that cannot be processed. ``key`` groups the throttled warning, ``str()`` is the text."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key = key


class Throttle:
    """Allows one event per key every ``period_s`` and counts the ones it held back."""

    def __init__(self, period_s: float, clock=time.monotonic):
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, key: str) -> int | None:
        """None: stay quiet. Else the number of events held back since the last one let through."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class StreamStats:
    """Counters and rates of one image stream, reported on /diagnostics.

    Dropped frames are estimated from the image stamps: the frame period is the median of the
    recent stamp steps (``stamps.FramePeriod``, known after three steps), and a step of n periods
    (up to ``max_gap_periods``, which may be changed at run time) means n - 1 frames never reached
    the callback (dropped by DDS while the node was busy, or by the network).
    """

    def __init__(self, max_gap_periods: float = 5.0, clock=time.monotonic):
        self.max_gap_periods = max_gap_periods
        self._clock = clock
        self._lock = threading.Lock()
        self._period = FramePeriod(history=31, min_steps=3)
        self._last_stamp_ns: int | None = None
        self.frames_in = self.frames_out = self.skipped = self.dropped = self.resets = self.stamp_reversals = 0
        self.duplicate_stamps = 0
        self.refused: dict[str, int] = {}  # input kind ("lens_sample", "camera_info") -> messages refused
        self.skipped_by_reason: dict[str, int] = {}  # SkipFrame key -> frames
        self.last_skip = ""
        self.last_reset = ""
        self.last_problem = ""
        self._win_problems: dict[str, int] = {}  # problem kind -> count in this period (first few kinds)
        self.lens_latency_s: float | None = None  # set by the node: the lens stream's arrival latency
        self._window_start = clock()
        self._win_in = self._win_out = 0
        self._win_processing_s: list[float] = []
        self._win_latency_s: list[float] = []

    @property
    def period_s(self) -> float | None:
        """Estimated camera frame period, s (None until three stamp steps are known)."""
        return self._period.period_s()

    def is_duplicate(self, stamp_ns: int) -> bool:
        """True when ``stamp_ns`` is the stamp of the image before (the same frame again); counts it."""
        with self._lock:
            duplicate = stamp_ns == self._last_stamp_ns
            self.duplicate_stamps += duplicate
            return duplicate

    def on_input(self, stamp_ns: int) -> int:
        """One image reached the callback; returns how many frames were dropped just before it."""
        dropped = 0
        with self._lock:
            self.frames_in += 1
            self._win_in += 1
            if self._last_stamp_ns is not None:
                step = stamp_ns - self._last_stamp_ns
                period = self.period_s
                if step < 0:
                    self.stamp_reversals += 1
                elif step == 0:
                    pass  # a duplicate (``is_duplicate``): neither a reversal nor a step
                elif period is None or step <= self.max_gap_periods * period * 1e9:
                    if period is not None and step > 1.5 * period * 1e9:
                        dropped = round(step / (period * 1e9)) - 1
                    self._period.add_step(step)
            self._last_stamp_ns = stamp_ns
            self.dropped += dropped
        return dropped

    def on_skip(self, reason: str) -> None:
        with self._lock:
            self.skipped += 1
            self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + 1
            self.last_skip = reason
            self._problem(f"frame skipped: {reason}")

    def on_refused(self, kind: str, reason: str) -> None:
        """An input message of ``kind`` ("lens_sample", "camera_info") was refused for ``reason`` (one line)."""
        with self._lock:
            self.refused[kind] = self.refused.get(kind, 0) + 1
            self._problem(f"{kind} refused", reason)

    def _problem(self, kind: str, detail: str = "") -> None:
        """Remember a problem for this period's /diagnostics status (WARN); call with the lock held.

        The period's status names each ``kind`` (the first 8) with its count; ``last_problem`` the latest detail.
        """
        if kind in self._win_problems or len(self._win_problems) < 8:
            self._win_problems[kind] = self._win_problems.get(kind, 0) + 1
        self.last_problem = f"{kind}: {detail}" if detail else kind

    def on_output(self, processing_s: float, latency_s: float | None) -> None:
        with self._lock:
            self.frames_out += 1
            self._win_out += 1
            self._win_processing_s.append(processing_s)
            if latency_s is not None:
                self._win_latency_s.append(latency_s)

    def on_reset(self, reason: str) -> None:
        with self._lock:
            self.resets += 1
            self.last_reset = reason
            if reason == "non_finite":
                self._problem("state reset: non_finite", "the network output was not finite")

    def report(self) -> dict[str, str]:
        """Key/value pairs for /diagnostics; starts a new rate window."""
        with self._lock:
            now = self._clock()
            window = max(now - self._window_start, 1e-9)
            proc, lat = self._win_processing_s, self._win_latency_s
            period = self.period_s
            values = {
                "input_rate_hz": f"{self._win_in / window:.2f}",
                "output_rate_hz": f"{self._win_out / window:.2f}",
                "camera_rate_hz": f"{1.0 / period:.2f}" if period else "unknown",
                "processing_ms_mean": f"{1e3 * sum(proc) / len(proc):.1f}" if proc else "n/a",
                "processing_ms_max": f"{1e3 * max(proc):.1f}" if proc else "n/a",
                "latency_ms_mean": f"{1e3 * sum(lat) / len(lat):.1f}" if lat else "n/a",
                "frames_in": str(self.frames_in),
                "frames_out": str(self.frames_out),
                "dropped_frames": str(self.dropped),
                "skipped_frames": str(self.skipped),
                "skipped_no_lens": str(self.skipped_by_reason.get("no_lens", 0)),
                "skipped_by_reason": ",".join(f"{k}={v}" for k, v in sorted(self.skipped_by_reason.items())) or "none",
                "stamp_reversals": str(self.stamp_reversals),
                "duplicate_stamps": str(self.duplicate_stamps),
                "refused_lens_samples": str(self.refused.get("lens_sample", 0)),
                "refused_camera_infos": str(self.refused.get("camera_info", 0)),
                "state_resets": str(self.resets),
                "last_reset_reason": self.last_reset or "none",
                "last_skip_reason": self.last_skip or "none",
                "problems_in_period": str(sum(self._win_problems.values())),
                "problem_kinds": "; ".join(f"{k} (x{n})" for k, n in self._win_problems.items()) or "none",
                "last_problem": self.last_problem or "none",
                "lens_latency_ms": "unknown" if self.lens_latency_s is None else f"{1e3 * self.lens_latency_s:.1f}",
            }
            self._window_start = now
            self._win_in = self._win_out = 0
            self._win_problems = {}
            self._win_processing_s, self._win_latency_s = [], []
        return values


@dataclass(frozen=True)
class FrameInputs:
    """What DepthStream needs for one frame, taken from the messages at the edge."""

    rgb: np.ndarray  # (H, W, 3) uint8 RGB, possibly a view of the message's data
    calib: CameraCalibration  # its payload is the CameraInfo message, republished with the depth
    lens: LensState
    lens_source: str  # "samples" or "static"


def frame_inputs(msg, calibrations: CameraInfoHistory, lens_history: LensHistory, stamp_ns: int,
                 lens_wait_s: float = 0.0) -> FrameInputs:
    """Image message + camera_info history + lens history -> FrameInputs; SkipFrame when unusable.

    The camera_info and the lens state are the ones at the image stamp, by the rules of
    ``calibration.CameraInfoHistory.at`` and ``lens.LensHistory.at`` (the bag reader's too).
    """
    from dfd_depth_ros.msgs.convert import MessageError, image_to_rgb

    try:
        rgb = image_to_rgb(msg)
    except MessageError as exc:
        raise SkipFrame("image", f"{exc}; frame skipped") from None
    h, w = rgb.shape[:2]
    calib, _ = calibrations.at(stamp_ns, w, h)
    if calib is None:
        newest = calibrations.newest
        if newest is None:
            raise SkipFrame("no_camera_info", "no valid camera_info received yet; frame skipped")
        raise SkipFrame("size_mismatch", f"camera_info is for {newest.width}x{newest.height} but the image is "
                        f"{w}x{h}; frame skipped until a matching camera_info arrives")
    lens, source = lens_history.at(stamp_ns, lens_wait_s)
    if lens is None:
        newest_ns = lens_history.newest_ns
        if newest_ns is None:
            when = "no lens sample received yet"
        else:
            age_s = (stamp_ns - newest_ns) * 1e-9
            when = f"newest lens sample is {abs(age_s):.3f} s {'older' if age_s > 0 else 'newer'} than the image"
        raise SkipFrame("no_lens", f"no lens state within lens_tolerance_s = {lens_history.tolerance_s} s of image "
                        f"stamp {stamp_ns * 1e-9:.3f} ({when}); frame skipped")
    return FrameInputs(rgb, calib, lens, source)


def decimated_rgb(rgb: np.ndarray, decimation: int, shape: tuple[int, int]) -> np.ndarray:
    """The pixels of an (H, W, 3) image that a cloud decimated by ``decimation`` keeps, cropped to ``shape``."""
    return np.ascontiguousarray(rgb[::decimation, ::decimation][: shape[0], : shape[1]])


def stream_status(values: dict[str, str]) -> tuple[str, str]:
    """(DiagnosticStatus level name "OK" | "WARN" | "STALE", message) for a ``StreamStats.report()``.

    WARN also when an input was refused, a frame skipped or the state found non-finite in the period.
    """
    problems = int(values.get("problems_in_period", "0"))
    if problems:
        return "WARN", (f"{problems} input problem(s) in the last period: {values['problem_kinds']}; "
                        f"last: {values['last_problem']}")
    if values["frames_in"] == "0":
        return "STALE", "no images received yet"
    if float(values["input_rate_hz"]) == 0.0:
        return "WARN", "no images in the last period"
    if float(values["output_rate_hz"]) == 0.0:
        return "WARN", f"images arrive but none is usable ({values['last_skip_reason']})"
    return "OK", "ok"


def open_depth_stream(cfg):
    """DepthStream for a DepthNodeConfig; StartupError with one line for a missing/corrupt model or backend.

    Called by ``DepthNode.__init__``: the model is loaded (and a TensorRT engine built) when the
    node starts, never in a callback. The stream gets ``cfg.stream_options()`` (what eval-bag
    gives its own) with the depth range opened to [0, inf): the node applies min/max_depth_m
    itself when it publishes (``msgs.convert.rep117_depth_m``: -Inf too close, +Inf too far, as
    REP 117 asks), so out-of-range pixels are told apart from pixels without an estimate (NaN).
    """
    from dfd_depth_ros.backends import BackendUnavailable, ModelLoadError
    from dfd_depth_ros.depth_stream import DepthStream

    options = {**cfg.stream_options(), "min_depth_m": 0.0, "max_depth_m": math.inf}
    if cfg.tensorrt_engine_sizes and cfg.backend in ("auto", "tensorrt"):
        options["backend_options"] = {"engine_sizes": cfg.tensorrt_engine_sizes}
    try:
        return DepthStream(model_path=cfg.model_path or None, backend=cfg.backend, **options)
    except ModelLoadError as exc:
        raise StartupError(f"cannot load the model: {first_line(exc)}") from None
    except BackendUnavailable as exc:
        raise StartupError(f"backend {cfg.backend} is not available: {first_line(exc)}") from None
    except ValueError as exc:
        raise StartupError(f"cannot start the estimator: {first_line(exc)}") from None


def cloud_fields(depth_m: np.ndarray, K: np.ndarray, rgb: np.ndarray, cfg) -> dict:
    """PointCloud2 field values of one (H, W) depth image as a DepthNodeConfig asks for them.

    Decimated by ``cfg.points_decimation``, points outside ``points_min/max_range_m`` NaN, and
    coloured from the (H, W, 3) ``rgb`` when ``cfg.points_format`` is xyzrgb.
    """
    from dfd_depth_ros.pointcloud import depth_to_points, pointcloud2_fields

    xyz = depth_to_points(depth_m, K, decimation=cfg.points_decimation, min_range_m=cfg.points_min_range_m,
                          max_range_m=cfg.points_max_range_m)
    colour = decimated_rgb(rgb, cfg.points_decimation, xyz.shape[:2]) if cfg.points_format == "xyzrgb" else None
    return pointcloud2_fields(xyz, colour)
