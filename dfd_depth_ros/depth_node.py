"""depth_node: the ROS 2 adapter around ``core.DepthStream``.

    ros2 run dfd_depth_ros depth_node --ros-args --params-file config/depth.yaml
    python -m dfd_depth_ros.depth_node --ros-args -p model_path:=models/dfd_recurrent.onnx

Subscribes   image (sensor_msgs/Image), camera_info (CameraInfo), and the lens state from
             lens_state (JointState) or /diagnostics (DiagnosticArray, KeyValue LensPosition in
             dioptres) or static parameters (``lens_source``).
Publishes    depth (32FC1 metres, NaN = invalid, the image's header, REP 118), depth/camera_info,
             confidence (32FC1), points (PointCloud2, organized, only built while subscribed),
             /diagnostics (about once per ``diagnostics_period_s``).
Service      ~/reset (std_srvs/Trigger): forget the temporal state.

Frames are processed in the image callback; image subscriptions keep only the newest message
(depth 1), so a slow estimator drops frames in DDS instead of building a backlog; drops are
counted from gaps in the image stamps. A frame that cannot be used (bad encoding or buffer,
no calibration, no lens state, ...) is skipped with a throttled warning; the node goes on.
The node only converts messages; the estimator, its temporal state and its resets live in
``DepthStream``. The helpers below the parameter table (lens lookup, statistics, log
throttle) are ROS-free and tested on their own.
"""

from __future__ import annotations

import re
import statistics
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields

import numpy as np

from .backends import BACKEND_NAMES
from .optics import LensState

try:
    from rclpy.node import Node
except ImportError:  # the ROS-free helpers below stay importable (and testable) without rclpy
    Node = object

NODE_NAME = "depth_node"
LENS_SOURCES = ("joint_state", "diagnostics", "static")
POINT_FORMATS = ("xyz", "xyzrgb")
INPUT_QOS = ("sensor_data", "reliable")
LENS_QUEUE_DEPTH = 50  # lens samples are small and come faster than frames: keep a few


class StartupError(Exception):
    """The node cannot start (bad parameter, missing model); one line for the user."""


class SkipFrame(Exception):
    """A frame that cannot be processed. ``key`` groups the throttled warning, ``str()`` is the text."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key = key


# ----------------------------------------------------------------------------- parameters


def ros_param(default, description: str, range=None, choices=None):
    """A config dataclass field that is also a ROS parameter: default, description, (lo, hi) range, choices."""
    return field(default=default, metadata={"description": description, "range": range, "choices": choices})


def check_choices(config) -> None:
    """StartupError if a field of a ros_param dataclass holds a value outside its choices."""
    for f in fields(config):
        choices, value = f.metadata.get("choices"), getattr(config, f.name)
        if choices and value not in choices:
            raise StartupError(f"parameter {f.name} = {value!r}: choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class DepthNodeConfig:
    """Every parameter of the node, with its default, description and allowed values."""

    model_path: str = ros_param("", "ONNX model file; empty: the shipped default model")
    backend: str = ros_param("auto", "inference backend", choices=BACKEND_NAMES)
    lens_source: str = ros_param("joint_state", "where the lens state comes from: lens_state (JointState), "
                              "/diagnostics (KeyValue LensPosition, dioptres) or the static_* parameters",
                              choices=LENS_SOURCES)
    lens_tolerance_s: float = ros_param(0.05, "largest time from an image stamp to a lens sample that may stand for "
                                     "it when no pair of samples brackets the stamp, s", range=(0.0, 10.0))
    lens_wait_s: float = ros_param(0.03, "when no lens sample is at or after an image stamp yet, wait this long "
                                   "for one (lens and image travel separately) before giving up or falling back, s",
                                   range=(0.0, 1.0))
    lens_buffer_size: int = ros_param(200, "lens samples kept for interpolation", range=(2, 100000))
    diagnostics_lens_key: str = ros_param("LensPosition", "KeyValue key of the focus (dioptres) in /diagnostics "
                                       "when lens_source is diagnostics")
    static_focus_distance_m: float = ros_param(0.0, "static focus distance, m; 0: unset. With lens_source static "
                                            "it is the focus; otherwise, set with the two below, the fallback "
                                            "when no lens sample is near a frame", range=(0.0, 1.0e6))
    static_f_number: float = ros_param(0.0, "static f-number; 0: unset. Needed with lens_source static or "
                                    "diagnostics; fills a missing f_number joint", range=(0.0, 1000.0))
    static_focal_length_m: float = ros_param(0.0, "static focal length, m; 0: unset. Needed with lens_source static "
                                          "or diagnostics; fills a missing focal_length joint", range=(0.0, 10.0))
    max_gap_periods: float = ros_param(5.0, "a stamp gap longer than this many frame periods resets the temporal "
                                    "state", range=(1.0, 1.0e6))
    min_depth_m: float = ros_param(0.1, "depths below this are invalid (NaN), m", range=(0.0, 1.0e4))
    max_depth_m: float = ros_param(20.0, "depths above this are invalid (NaN), m", range=(0.0, 1.0e6))
    min_confidence: float = ros_param(0.0, "pixels with a lower confidence are invalid (NaN)", range=(0.0, 1.0))
    input_qos: str = ros_param("sensor_data", "QoS of the input subscriptions: sensor_data (best effort) or "
                            "reliable; image and camera_info keep only the newest message", choices=INPUT_QOS)
    points_format: str = ros_param("xyz", "point fields: xyz, or xyzrgb coloured by the image", choices=POINT_FORMATS)
    points_decimation: int = ros_param(1, "use every n-th pixel in both directions for points", range=(1, 64))
    points_min_range_m: float = ros_param(0.0, "points nearer than this are NaN, m", range=(0.0, 1.0e6))
    points_max_range_m: float = ros_param(20.0, "points farther than this are NaN, m", range=(0.0, 1.0e6))
    diagnostics_period_s: float = ros_param(1.0, "period of the /diagnostics status, s", range=(0.05, 60.0))
    log_throttle_s: float = ros_param(5.0, "repeat a warning about the same problem at most this often, s",
                                   range=(0.0, 3600.0))

    def __post_init__(self):
        check_choices(self)
        if not self.min_depth_m < self.max_depth_m:
            raise StartupError(f"min_depth_m ({self.min_depth_m}) must be smaller than max_depth_m "
                               f"({self.max_depth_m})")
        if not self.points_min_range_m < self.points_max_range_m:
            raise StartupError(f"points_min_range_m ({self.points_min_range_m}) must be smaller than "
                               f"points_max_range_m ({self.points_max_range_m})")
        if self.lens_source == "static" and self.static_lens() is None:
            raise StartupError("lens_source static needs static_focus_distance_m, static_f_number and "
                               "static_focal_length_m > 0")
        if self.lens_source == "diagnostics" and not (self.static_f_number > 0 and self.static_focal_length_m > 0):
            raise StartupError("lens_source diagnostics needs static_f_number and static_focal_length_m > 0 "
                               "(/diagnostics only carries the focus)")

    def static_lens(self) -> LensState | None:
        """The lens state of the static_* parameters, or None unless all three are set."""
        values = (self.static_focus_distance_m, self.static_f_number, self.static_focal_length_m)
        return LensState(*values) if all(v > 0 for v in values) else None


def parameter_descriptor(f):
    """rcl_interfaces ParameterDescriptor of one ros_param field (description, range, choices; read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    name = f.name
    desc = ParameterDescriptor(name=name, description=f.metadata["description"], read_only=True)
    if f.metadata["choices"]:
        desc.additional_constraints = "one of: " + ", ".join(f.metadata["choices"])
    lo_hi = f.metadata["range"]
    if lo_hi is not None and isinstance(f.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(lo_hi[0]), to_value=float(lo_hi[1]), step=0.0)]
    elif lo_hi is not None and isinstance(f.default, int) and not isinstance(f.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(lo_hi[0]), to_value=int(lo_hi[1]), step=1)]
    return desc


def declare_config(node, config_cls=DepthNodeConfig):
    """Declare every field of ``config_cls`` as a parameter of ``node`` and build the config from the values.

    The values come from the parameter overrides (params file, -p, launch). StartupError with
    one line for a wrong type, a value out of range or a config that rejects the combination.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for f in fields(config_cls):
        try:
            values[f.name] = node.declare_parameter(f.name, f.default, parameter_descriptor(f)).value
        except InvalidParameterTypeException as exc:
            raise StartupError(f"parameter {f.name}: {exc.args[0]} (write it like {f.default!r})") from None
        except InvalidParameterValueException as exc:
            lo, hi = f.metadata["range"]
            found = re.search(r"value \((.*?)\) for parameter", str(exc.args[0]))
            raise StartupError(f"parameter {f.name} = {found.group(1) if found else '?'} is out of range "
                               f"[{lo}, {hi}]") from None
    return config_cls(**values)


# ----------------------------------------------------------------------------- ROS-free helpers


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


class LensInput:
    """The lens state at an image stamp: received samples (interpolated), else the static fallback.

    Thread-safe: samples arrive in one callback group while frames are processed in another,
    and ``at`` can wait a little for a sample that is still on its way. A sample more than
    ``restart_s`` older than the newest one starts a new history (a bag replayed from its
    start, a restarted driver), so that samples from the old "future" are never interpolated
    with; smaller reorderings are simply sorted in.
    """

    def __init__(self, tolerance_s: float, buffer_size: int, fallback: LensState | None = None,
                 restart_s: float = 1.0):
        from .lens_buffer import LensBuffer

        self._make_buffer = lambda: LensBuffer(buffer_size)
        self.tolerance_s = tolerance_s
        self.fallback = fallback
        self.restart_ns = int(restart_s * 1e9)
        self._buffer = self._make_buffer()
        self._newest_ns: int | None = None
        self._cond = threading.Condition()

    def add(self, stamp_ns: int, lens: LensState) -> bool:
        """Store one sample; returns True when it restarted the history (stamp jumped back)."""
        with self._cond:
            restarted = self._newest_ns is not None and stamp_ns < self._newest_ns - self.restart_ns
            if restarted:
                self._buffer = self._make_buffer()
                self._newest_ns = None
            self._buffer.add(stamp_ns, lens)
            self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
            self._cond.notify_all()
            return restarted

    def at(self, stamp_ns: int, wait_s: float = 0.0) -> tuple[LensState | None, str]:
        """(lens, where it came from: "samples" | "static" | "none").

        With ``wait_s`` > 0 and no usable sample yet, waits up to ``wait_s`` for a sample at or
        after ``stamp_ns`` to arrive before falling back.
        """
        def arrived() -> bool:
            return self._newest_ns is not None and self._newest_ns >= stamp_ns

        with self._cond:
            lens = self._buffer.at(stamp_ns, self.tolerance_s)
            if lens is None and wait_s > 0 and not arrived():
                self._cond.wait_for(arrived, wait_s)
                lens = self._buffer.at(stamp_ns, self.tolerance_s)
        if lens is not None:
            return lens, "samples"
        if self.fallback is not None:
            return self.fallback, "static"
        return None, "none"

    @property
    def newest_ns(self) -> int | None:
        """Stamp of the newest sample, or None before the first."""
        return self._newest_ns


class StreamStats:
    """Counters and rates of one image stream, reported on /diagnostics.

    Dropped frames are estimated from the image stamps: the frame period is the median of the
    recent stamp steps, and a step of n periods (up to ``max_gap_periods``) means n - 1 frames
    never reached the callback (dropped by DDS while the node was busy, or by the network).
    """

    def __init__(self, max_gap_periods: float = 5.0, clock=time.monotonic):
        self.max_gap_periods = max_gap_periods
        self._clock = clock
        self._lock = threading.Lock()
        self._steps_ns: deque[int] = deque(maxlen=31)
        self._last_stamp_ns: int | None = None
        self.frames_in = self.frames_out = self.skipped = self.dropped = self.resets = self.stamp_reversals = 0
        self.last_skip = ""
        self.last_reset = ""
        self._window_start = clock()
        self._win_in = self._win_out = 0
        self._win_processing_s: list[float] = []
        self._win_latency_s: list[float] = []

    @property
    def period_s(self) -> float | None:
        """Estimated camera frame period, s (None until three stamp steps are known)."""
        return statistics.median(self._steps_ns) * 1e-9 if len(self._steps_ns) >= 3 else None

    def on_input(self, stamp_ns: int) -> int:
        """One image reached the callback; returns how many frames were dropped just before it."""
        dropped = 0
        with self._lock:
            self.frames_in += 1
            self._win_in += 1
            if self._last_stamp_ns is not None:
                step = stamp_ns - self._last_stamp_ns
                period = self.period_s
                if step <= 0:
                    self.stamp_reversals += 1
                elif period is None or step <= self.max_gap_periods * period * 1e9:
                    if period is not None and step > 1.5 * period * 1e9:
                        dropped = round(step / (period * 1e9)) - 1
                    self._steps_ns.append(step)
            self._last_stamp_ns = stamp_ns
            self.dropped += dropped
        return dropped

    def on_skip(self, reason: str) -> None:
        with self._lock:
            self.skipped += 1
            self.last_skip = reason

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
                "stamp_reversals": str(self.stamp_reversals),
                "state_resets": str(self.resets),
                "last_reset_reason": self.last_reset or "none",
                "last_skip_reason": self.last_skip or "none",
            }
            self._window_start = now
            self._win_in = self._win_out = 0
            self._win_processing_s, self._win_latency_s = [], []
        return values


@dataclass(frozen=True)
class Calibration:
    """The newest usable camera_info: K, the size it is for ((0, 0): unknown) and the message itself."""

    K: np.ndarray
    width: int
    height: int
    msg: object


@dataclass(frozen=True)
class FrameInputs:
    """What DepthStream needs for one frame, taken from the messages at the edge."""

    rgb: np.ndarray  # (H, W, 3) uint8 RGB, possibly a view of the message's data
    calib: Calibration
    lens: LensState
    lens_source: str  # "samples" or "static"


def frame_inputs(msg, calib: Calibration | None, lens_input: LensInput, stamp_ns: int,
                 lens_wait_s: float = 0.0) -> FrameInputs:
    """Image message + the newest calibration + lens history -> FrameInputs; SkipFrame when unusable."""
    from .ros_msgs import MessageError, image_to_rgb

    try:
        rgb = image_to_rgb(msg)
    except MessageError as exc:
        raise SkipFrame("image", f"{exc}; frame skipped") from None
    if calib is None:
        raise SkipFrame("no_camera_info", "no valid camera_info received yet; frame skipped")
    h, w = rgb.shape[:2]
    if calib.width and calib.height and (calib.width, calib.height) != (w, h):
        raise SkipFrame("size_mismatch", f"camera_info is for {calib.width}x{calib.height} but the image is "
                        f"{w}x{h}; frame skipped until a matching camera_info arrives")
    lens, source = lens_input.at(stamp_ns, lens_wait_s)
    if lens is None:
        newest = lens_input.newest_ns
        if newest is None:
            when = "no lens sample received yet"
        else:
            age_s = (stamp_ns - newest) * 1e-9
            when = f"newest lens sample is {abs(age_s):.3f} s {'older' if age_s > 0 else 'newer'} than the image"
        raise SkipFrame("no_lens", f"no lens state within lens_tolerance_s = {lens_input.tolerance_s} s of image "
                        f"stamp {stamp_ns * 1e-9:.3f} ({when}); frame skipped")
    return FrameInputs(rgb, calib, lens, source)


def decimated_rgb(rgb: np.ndarray, decimation: int, shape: tuple[int, int]) -> np.ndarray:
    """The pixels of an (H, W, 3) image that a cloud decimated by ``decimation`` keeps, cropped to ``shape``."""
    return np.ascontiguousarray(rgb[::decimation, ::decimation][: shape[0], : shape[1]])


# ----------------------------------------------------------------------------- the node


class DepthNode(Node):
    """Messages in, arrays to DepthStream, messages out; see the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
        from std_srvs.srv import Trigger

        super().__init__(node_name, **node_kwargs)
        self.cfg = declare_config(self, DepthNodeConfig)
        self.stream = _open_stream(self.cfg)
        self.stats = StreamStats(self.cfg.max_gap_periods)
        self.lens_input = LensInput(self.cfg.lens_tolerance_s, self.cfg.lens_buffer_size, self.cfg.static_lens())
        self._throttle = Throttle(self.cfg.log_throttle_s)
        self._calib: Calibration | None = None
        self._reset_requested = False
        self._lens_wait_s = 0.0 if self.cfg.lens_source == "static" else self.cfg.lens_wait_s

        # Frames (and the reset service, which touches the stream) run in one group; lens
        # samples, calibration and the status timer in another, so samples keep arriving
        # while a frame is processed (with a multi-threaded executor).
        self._frame_group = MutuallyExclusiveCallbackGroup()
        self._side_group = MutuallyExclusiveCallbackGroup()
        in_qos = _input_qos(self.cfg.input_qos, depth=1)
        out_qos = _output_qos()
        if self.cfg.lens_source == "joint_state":
            self.create_subscription(JointState, "lens_state", self._on_joint_state,
                                     _input_qos(self.cfg.input_qos, LENS_QUEUE_DEPTH), callback_group=self._side_group)
        elif self.cfg.lens_source == "diagnostics":
            self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics,
                                     _input_qos(self.cfg.input_qos, LENS_QUEUE_DEPTH), callback_group=self._side_group)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, in_qos,
                                 callback_group=self._side_group)
        self.create_subscription(Image, "image", self._on_image, in_qos, callback_group=self._frame_group)
        self.depth_pub = self.create_publisher(Image, "depth", out_qos)
        self.info_pub = self.create_publisher(CameraInfo, "depth/camera_info", out_qos)
        self.confidence_pub = self.create_publisher(Image, "confidence", out_qos)
        self.points_pub = self.create_publisher(PointCloud2, "points", out_qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=self._frame_group)
        self.create_timer(self.cfg.diagnostics_period_s, self._publish_diagnostics, callback_group=self._side_group)
        fallback = self.cfg.static_lens()
        self.get_logger().info(
            f"backend {self.stream.backend_name}, lens from {self.cfg.lens_source}"
            + (f" (static fallback {fallback.as_tuple()})" if fallback and self.cfg.lens_source != "static" else "")
            + f", points {self.cfg.points_format} every {self.cfg.points_decimation} px")

    # -- logging

    def _warn(self, key: str, text: str) -> None:
        held = self._throttle(key)
        if held is not None:
            self.get_logger().warning(text + (f" [{held} more like this since the last report]" if held else ""))

    # -- inputs

    def _on_camera_info(self, msg) -> None:
        from .ros_msgs import MessageError, camera_info_size, camera_info_to_K

        try:
            K = camera_info_to_K(msg)
        except MessageError as exc:
            self._warn("camera_info", f"{exc}; camera_info ignored")
            return
        self._calib = Calibration(K, *camera_info_size(msg), msg)

    def _add_lens(self, stamp_ns: int, lens: LensState) -> None:
        if self.lens_input.add(stamp_ns, lens):
            self._warn("lens_back", "lens sample stamps jumped back in time; lens history restarted")

    def _on_joint_state(self, msg) -> None:
        from .ros_msgs import MessageError, joint_state_to_lens, stamp_to_ns

        try:
            lens = joint_state_to_lens(msg, self.cfg.static_f_number or None, self.cfg.static_focal_length_m or None)
        except MessageError as exc:
            self._warn("lens_msg", f"{exc}; lens sample ignored")
            return
        self._add_lens(stamp_to_ns(msg.header.stamp), lens)

    def _on_diagnostics(self, msg) -> None:
        from .ros_msgs import MessageError, diagnostics_focus_diopters, focus_m_from_diopters, stamp_to_ns

        try:
            diopters = diagnostics_focus_diopters(msg, self.cfg.diagnostics_lens_key)
        except MessageError as exc:
            self._warn("lens_msg", f"{exc}; lens sample ignored")
            return
        if diopters is None:
            return  # other diagnostics (our own among them)
        lens = LensState(focus_m_from_diopters(diopters), self.cfg.static_f_number, self.cfg.static_focal_length_m)
        stamp_ns = stamp_to_ns(msg.header.stamp) or self.get_clock().now().nanoseconds  # unstamped: now
        self._add_lens(stamp_ns, lens)

    def _on_image(self, msg) -> None:
        from .ros_msgs import stamp_to_ns

        t0 = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        self.stats.on_input(stamp_ns)
        try:
            inputs = frame_inputs(msg, self._calib, self.lens_input, stamp_ns, self._lens_wait_s)
            result = self.stream.process(inputs.rgb, inputs.calib.K, inputs.lens, stamp_ns, msg.header.frame_id)
        except SkipFrame as exc:
            self.stats.on_skip(exc.key)
            self._warn(exc.key, str(exc))
            return
        except Exception as exc:  # one bad frame must not take the node down
            self.stats.on_skip("estimator")
            self._warn("estimator", f"estimator failed on this frame ({type(exc).__name__}: {_first_line(exc)}); "
                       "frame skipped")
            return
        if inputs.lens_source == "static" and self.cfg.lens_source != "static":
            self._warn("lens_fallback", "no lens sample near the image stamp; using the static_* lens parameters")
        self._note_reset(result.reset_reason)
        self._publish(msg.header, inputs, result)
        now_ns = self.get_clock().now().nanoseconds
        self.stats.on_output(time.perf_counter() - t0, (now_ns - stamp_ns) * 1e-9 if now_ns > 0 else None)

    def _note_reset(self, reason: str | None) -> None:
        """Count a state reset that DepthStream reports (not the first frame's; a requested one was
        counted by the service)."""
        if reason is None or reason == "start":
            return
        if reason == "request" and self._reset_requested:
            self._reset_requested = False
            return
        self.stats.on_reset(reason)
        self._warn(f"reset_{reason}", f"temporal state reset: {reason}")

    # -- outputs

    def _publish(self, header, inputs: FrameInputs, result) -> None:
        from .ros_msgs import float_image_msg, restamped_camera_info

        self.depth_pub.publish(float_image_msg(result.depth_m, header))
        self.info_pub.publish(restamped_camera_info(inputs.calib.msg, header))
        if self.confidence_pub.get_subscription_count() > 0:
            self.confidence_pub.publish(float_image_msg(result.confidence, header))
        if self.points_pub.get_subscription_count() > 0:  # building a cloud nobody reads is the costliest step
            self.points_pub.publish(self._points_msg(header, inputs, result.depth_m))

    def _points_msg(self, header, inputs: FrameInputs, depth_m: np.ndarray):
        from .pointcloud import depth_to_points, pointcloud2_fields
        from .ros_msgs import pointcloud2_msg

        cfg = self.cfg
        xyz = depth_to_points(depth_m, inputs.calib.K, decimation=cfg.points_decimation,
                              min_range_m=cfg.points_min_range_m, max_range_m=cfg.points_max_range_m)
        colour = None
        if cfg.points_format == "xyzrgb":
            colour = decimated_rgb(inputs.rgb, cfg.points_decimation, xyz.shape[:2])
        return pointcloud2_msg(pointcloud2_fields(xyz, colour), header)

    def _on_reset(self, request, response):
        self.stream.reset("request")
        self._reset_requested = True
        self.stats.on_reset("request")
        self.get_logger().info("temporal state reset on request")
        response.success = True
        response.message = "temporal state reset"
        return response

    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        values = self.stats.report()
        values.update(backend=self.stream.backend_name, lens_source=self.cfg.lens_source)
        if values["frames_in"] == "0":
            level, message = DiagnosticStatus.STALE, "no images received yet"
        elif float(values["input_rate_hz"]) == 0.0:
            level, message = DiagnosticStatus.WARN, "no images in the last period"
        elif float(values["output_rate_hz"]) == 0.0:
            level, message = DiagnosticStatus.WARN, f"images arrive but none is usable ({values['last_skip_reason']})"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: depth", message=message,
                                  hardware_id="dfd_depth_ros",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def _open_stream(cfg: DepthNodeConfig):
    """DepthStream for the node's parameters; StartupError with one line for a missing/corrupt model."""
    from .backends import BackendUnavailable, ModelLoadError
    from .core import DepthStream

    try:
        return DepthStream(model_path=cfg.model_path or None, backend=cfg.backend, max_gap_periods=cfg.max_gap_periods,
                           min_depth_m=cfg.min_depth_m, max_depth_m=cfg.max_depth_m,
                           min_confidence=cfg.min_confidence)
    except ModelLoadError as exc:
        raise StartupError(f"cannot load the model: {_first_line(exc)}") from None
    except BackendUnavailable as exc:
        raise StartupError(f"backend {cfg.backend} is not available: {_first_line(exc)}") from None
    except ValueError as exc:
        raise StartupError(f"cannot start the estimator: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _input_qos(kind: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.RELIABLE if kind == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def _output_qos():
    """Reliable, newest only: matches best-effort and reliable subscribers (RViz defaults to reliable)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


# ----------------------------------------------------------------------------- entry point


def spin_nodes(nodes, threads: int = 2, until=None, linger_s: float = 0.0) -> None:
    """Spin ``nodes`` on one multi-threaded executor, then destroy them and shut rclpy down.

    Runs until shutdown or Ctrl-C, or, with ``until`` (a callable), until it returns True and
    ``linger_s`` more seconds have passed (time for the last messages to be handled).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    try:
        if until is None:
            executor.spin()
        else:
            while rclpy.ok() and not until():
                executor.spin_once(timeout_sec=0.1)
            deadline = time.monotonic() + linger_s
            while rclpy.ok() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    """``depth_node`` console script: exit 0 on shutdown, 2 with one line on stderr if it cannot start."""
    import rclpy

    try:
        rclpy.init(args=sys.argv if argv is None else argv)
    except Exception as exc:  # bad --ros-args (unreadable params file, bad remap): rcl says why
        print(f"{NODE_NAME}: error: {_first_line(exc)}", file=sys.stderr)
        return 2
    try:
        node = DepthNode()
    except StartupError as exc:
        print(f"{NODE_NAME}: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    spin_nodes([node])
    return 0


if __name__ == "__main__":
    sys.exit(main())
