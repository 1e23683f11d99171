"""depth_node: the ROS 2 adapter around ``depth_stream.DepthStream``.

    ros2 run dfd_depth_ros depth_node --ros-args --params-file config/depth.yaml
    python -m dfd_depth_ros.nodes.depth_node --ros-args -p model_path:=models/dfd_recurrent.onnx

Subscribes   image (sensor_msgs/Image), camera_info (CameraInfo), and the lens state from
             lens_state (JointState) or /diagnostics (DiagnosticArray, KeyValue LensPosition in
             dioptres, optionally of one hardware_id) or static parameters (``lens_source``).
Publishes    the standard depth-camera layout (as depth_image_proc, image_transport and RViz's
             DepthCloud expect: every image beside its own camera_info), all with the image's
             header (REP 118):
             depth/image (32FC1 metres, REP 117: NaN = no estimate, -Inf = nearer than min_depth_m,
             +Inf = farther than max_depth_m), depth/camera_info, confidence/image (32FC1, 0..1) and
             confidence/camera_info (only while subscribed), points (PointCloud2, organized, only
             while subscribed), /diagnostics (about once per ``diagnostics_period_s``).
Service      ~/reset (std_srvs/Trigger): forget the temporal state.

The model is loaded (and a TensorRT engine built) in ``__init__``, never in a callback. Frames
are processed in the image callback; image subscriptions keep only the newest message (depth 1),
so a slow estimator drops frames in DDS instead of building a backlog; drops are counted from
gaps in the image stamps. Lens samples have a callback group of their own and each lens callback
takes every sample already queued (in stamp order), so they never wait behind images; a frame
waits for its own lens sample only as long as the lens stream's measured latency needs (capped by
``lens_wait_s``). Every input value is range-checked at the edge (``input_checks``, shared with the
bag reader); a refused input, a skipped frame and a non-finite network output (the state is then
reset: ``DepthStream``'s state guard) each turn /diagnostics WARN for that period. A frame with
the same stamp as the one before is skipped and counted (duplicate_stamps). The point cloud is
built at most ``points_max_rate_hz`` times a second. A frame that cannot be used (bad encoding or
buffer, no calibration, no lens state, ...) is skipped with a throttled warning; the node goes on. Parameters marked
dynamic (depth range, confidence, points, lens tolerance and wait, gap, log throttle) may be
changed at run time; a bad value is refused with the reason. The node only converts messages;
the estimator, its temporal state and its resets live in ``DepthStream``, the lens and camera_info
histories in ``lens`` and ``calibration`` (shared with bag reading), the ROS-free helpers in
``depth_inputs`` and the parameter machinery in ``params``.
"""

from __future__ import annotations

import sys
import time

from dfd_depth_ros.calibration import CameraInfoHistory
from dfd_depth_ros.errors import first_line
from dfd_depth_ros.lens import DEFAULT_RESTART_S, LensHistory
from dfd_depth_ros.msgs import convert as rm
from dfd_depth_ros.nodes.depth_inputs import (
    FrameInputs,
    SkipFrame,
    StreamStats,
    Throttle,
    cloud_fields,
    decimated_rgb,  # noqa: F401  (imported from here by the tests)
    frame_inputs,
    open_depth_stream,
    stream_status,
)
from dfd_depth_ros.nodes.graph import run_node
from dfd_depth_ros.nodes.params import (
    StartupError,
    declare_config,
    parameter_descriptor,  # noqa: F401  (imported from here by callers and tests)
    updated_config,
)
from dfd_depth_ros.optics import LensState

try:
    from rclpy.node import Node
except ImportError:  # the config class stays importable (and testable) without rclpy
    Node = object

from dfd_depth_ros.nodes.depth_node_config import (  # noqa: F401  (re-exported: callers import them from here)
    INPUT_QOS,
    LENS_SOURCES,
    NODE_NAME,
    POINT_FORMATS,
    DepthNodeConfig,
)

LENS_QUEUE_DEPTH = 50  # lens samples are small; each lens callback drains the queue (``_drain``)
EXECUTOR_THREADS = 4  # frames, lens samples, camera_info + timer, and one for the service / spare


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
        self.stream = open_depth_stream(self.cfg)  # the model loads (an engine builds) here, not in a callback
        self.stats = StreamStats(self.cfg.max_gap_periods)
        self.lens_history = LensHistory(self.cfg.lens_tolerance_s, self.cfg.lens_buffer_size,
                                        fallback=self.cfg.static_lens())
        self.camera_infos = CameraInfoHistory(restart_s=DEFAULT_RESTART_S)
        self._throttle = Throttle(self.cfg.log_throttle_s)
        self._reset_requested = False
        self._last_points_s = -float("inf")
        self.executor_threads = EXECUTOR_THREADS  # spin_nodes gives the executor at least this many
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Frames (and the reset service, which touches the stream) run in one group; lens samples
        # in a second, camera_info and the status timer in a third, so samples keep arriving (and
        # are taken as they arrive) while a frame is processed or waits for its lens sample.
        self._frame_group = MutuallyExclusiveCallbackGroup()
        self._lens_group = MutuallyExclusiveCallbackGroup()
        self._side_group = MutuallyExclusiveCallbackGroup()
        reliable = self.cfg.input_qos == "reliable"
        in_qos, lens_qos, out_qos = _qos(reliable, 1), _qos(reliable, LENS_QUEUE_DEPTH), _qos(True, 1)
        self._lens_sub = None
        if self.cfg.lens_source == "joint_state":
            self._lens_sub = self.create_subscription(JointState, "lens_state", self._on_lens_msg, lens_qos,
                                                      callback_group=self._lens_group)
        elif self.cfg.lens_source == "diagnostics":
            self._lens_sub = self.create_subscription(DiagnosticArray, "/diagnostics", self._on_lens_msg, lens_qos,
                                                      callback_group=self._lens_group)
        # camera_info keeps a few messages: they are looked up by stamp (CameraInfoHistory)
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info_msg,
                                                  _qos(reliable, 5), callback_group=self._side_group)
        self.create_subscription(Image, "image", self._on_image, in_qos, callback_group=self._frame_group)
        self.depth_pub = self.create_publisher(Image, "depth/image", out_qos)
        self.info_pub = self.create_publisher(CameraInfo, "depth/camera_info", out_qos)
        self.confidence_pub = self.create_publisher(Image, "confidence/image", out_qos)
        self.confidence_info_pub = self.create_publisher(CameraInfo, "confidence/camera_info", out_qos)
        self.points_pub = self.create_publisher(PointCloud2, "points", out_qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=self._frame_group)
        self.create_timer(self.cfg.diagnostics_period_s, self._publish_diagnostics, callback_group=self._side_group)
        fallback = self.cfg.static_lens()
        self.get_logger().info(
            f"backend {self.stream.backend_name}, lens from {self.cfg.lens_source}"
            + (f" (static fallback {fallback.as_tuple()})" if fallback and self.cfg.lens_source != "static" else "")
            + f", points {self.cfg.points_format} every {self.cfg.points_decimation} px")

    # -- parameters

    def _on_set_parameters(self, parameters):
        """Accept a change of dynamic parameters when the new config is valid (min < max, ...), else refuse it
        with the reason (rclpy has already refused read-only ones, wrong types and values out of range)."""
        from rcl_interfaces.msg import SetParametersResult

        try:
            cfg = updated_config(self.cfg, {p.name: p.value for p in parameters})
        except StartupError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if cfg is not self.cfg:
            self._apply(cfg)
            self.get_logger().info("parameters set: " + ", ".join(f"{p.name} = {p.value!r}" for p in parameters))
        return SetParametersResult(successful=True)

    def _apply(self, cfg: DepthNodeConfig) -> None:
        """Make a validated config current: the parts of it that other objects hold are set there too."""
        self.stream.min_confidence = cfg.min_confidence  # the depth range is applied when publishing
        self.stream.max_gap_periods = cfg.max_gap_periods
        self.stats.max_gap_periods = cfg.max_gap_periods
        self.lens_history.tolerance_s = cfg.lens_tolerance_s
        self._throttle.period_s = cfg.log_throttle_s
        self.cfg = cfg  # one reference swap: a frame sees the old config or the new one, never a mix

    # -- logging

    def _warn(self, key: str, text: str) -> None:
        held = self._throttle(key)
        if held is not None:
            self.get_logger().warning(text + (f" [{held} more like this since the last report]" if held else ""))

    # -- inputs

    def _on_camera_info_msg(self, msg) -> None:
        for m in _drain(self._info_sub, msg):
            self._on_camera_info(m)

    def _on_lens_msg(self, msg) -> None:
        """Every lens sample already queued, oldest first: none waits for a later executor round."""
        handle = self._on_joint_state if self.cfg.lens_source == "joint_state" else self._on_diagnostics
        for m in _drain(self._lens_sub, msg):
            handle(m)
        self.stats.lens_latency_s = self.lens_history.lens_latency_s()

    def _on_camera_info(self, msg) -> None:
        try:
            K = rm.camera_info_to_K(msg)
        except rm.MessageError as exc:
            self.stats.on_refused("camera_info", str(exc))
            self._warn("camera_info", f"{exc}; camera_info ignored")
            return
        self.camera_infos.add(rm.camera_info_stamp_ns(msg), K, *rm.camera_info_size(msg), payload=msg)

    def _refuse_lens(self, exc: Exception) -> None:
        self.stats.on_refused("lens_sample", str(exc))
        self._warn("lens_msg", f"{exc}; lens sample ignored")

    def _add_lens(self, stamp_ns: int, lens: LensState) -> None:
        if self.lens_history.add(stamp_ns, lens, arrival_ns=self.get_clock().now().nanoseconds):
            self._warn("lens_back", "lens sample stamps jumped back in time; lens history restarted")

    def _on_joint_state(self, msg) -> None:
        try:
            lens = rm.joint_state_to_lens(msg, self.cfg.static_f_number or None, self.cfg.static_focal_length_m or None)
        except rm.MessageError as exc:
            self._refuse_lens(exc)
            return
        stamp_ns = rm.stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:  # it would restart the lens history and could never be paired with an image
            self._refuse_lens(rm.MessageError("lens JointState has no stamp (0)"))
            return
        self._add_lens(stamp_ns, lens)

    def _on_diagnostics(self, msg) -> None:
        try:
            diopters = rm.diagnostics_focus_diopters(msg, self.cfg.diagnostics_lens_key, self.cfg.lens_hardware_id)
        except rm.MessageError as exc:
            self._refuse_lens(exc)
            return
        if diopters is None:
            return  # other diagnostics (our own among them, or another camera's)
        lens = LensState(rm.focus_m_from_diopters(diopters), self.cfg.static_f_number, self.cfg.static_focal_length_m)
        stamp_ns = rm.stamp_to_ns(msg.header.stamp) or self.get_clock().now().nanoseconds  # unstamped: now
        self._add_lens(stamp_ns, lens)

    def _on_image(self, msg) -> None:
        t0 = time.perf_counter()
        cfg = self.cfg  # one config for the whole frame, even if parameters change meanwhile
        stamp_ns = rm.stamp_to_ns(msg.header.stamp)
        if stamp_ns == 0:
            self.stats.on_skip("unstamped")
            self._warn("unstamped", "image has no stamp (0): it cannot be paired with its lens sample; frame skipped")
            return
        if self.stats.is_duplicate(stamp_ns):
            self.stats.on_skip("duplicate_stamp")
            self._warn("duplicate_stamp", f"image stamp {stamp_ns * 1e-9:.3f} repeats the previous image's; "
                       "frame skipped")
            return
        self.stats.on_input(stamp_ns)
        lens_wait_s = 0.0
        if cfg.lens_source != "static":
            lens_wait_s = self.lens_history.wait_budget_s(stamp_ns, self.get_clock().now().nanoseconds, cfg.lens_wait_s)
        try:
            inputs = frame_inputs(msg, self.camera_infos, self.lens_history, stamp_ns, lens_wait_s)
            result = self.stream.process(inputs.rgb, inputs.calib.K, inputs.lens, stamp_ns, msg.header.frame_id)
        except SkipFrame as exc:
            self.stats.on_skip(exc.key)
            self._warn(exc.key, str(exc))
            return
        except Exception as exc:  # one bad frame must not take the node down
            self.stats.on_skip("estimator")
            self._warn("estimator", f"estimator failed on this frame ({type(exc).__name__}: {first_line(exc)}); "
                       "frame skipped")
            return
        if inputs.lens_source == "static" and cfg.lens_source != "static":
            self._warn("lens_fallback", "no lens sample near the image stamp; using the static_* lens parameters")
        self._note_reset(result.reset_reason)
        self._publish(msg.header, inputs, result, cfg)
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

    def _publish(self, header, inputs: FrameInputs, result, cfg: DepthNodeConfig) -> None:
        depth_m = rm.rep117_depth_m(result.depth_m, cfg.min_depth_m, cfg.max_depth_m)
        info = rm.restamped_camera_info(inputs.calib.payload, header)
        self.depth_pub.publish(rm.float_image_msg(depth_m, header))
        self.info_pub.publish(info)
        if self.confidence_pub.get_subscription_count() + self.confidence_info_pub.get_subscription_count() > 0:
            self.confidence_pub.publish(rm.float_image_msg(result.confidence, header))
            self.confidence_info_pub.publish(info)
        if self.points_pub.get_subscription_count() > 0 and self._points_due(cfg):  # the costliest output
            fields = cloud_fields(depth_m, inputs.calib.K, inputs.rgb, cfg)  # +-Inf: no point (NaN)
            self.points_pub.publish(rm.pointcloud2_msg(fields, header))

    def _points_due(self, cfg: DepthNodeConfig) -> bool:
        """True (and the time noted) when a cloud may be built now under ``points_max_rate_hz``."""
        now_s = time.monotonic()
        if cfg.points_max_rate_hz > 0 and now_s - self._last_points_s < 1.0 / cfg.points_max_rate_hz - 1e-3:
            return False
        self._last_points_s = now_s
        return True

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
        level, message = stream_status(values)
        status = DiagnosticStatus(level=getattr(DiagnosticStatus, level), message=message,
                                  name=f"{self.get_fully_qualified_name()}: depth", hardware_id="dfd_depth_ros",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def _drain(subscription, first):
    """``first``, then every message still queued on ``subscription`` (taken here, oldest first).

    Called from the subscription's own callback, in a mutually exclusive group that holds nothing
    else, so no other thread takes from it meanwhile.
    """
    yield first
    while subscription is not None:
        try:
            with subscription.handle:
                taken = subscription.handle.take_message(subscription.msg_type, subscription.raw)
        except Exception:  # destroyed while shutting down
            return
        if taken is None:
            return
        yield taken[0]


def _qos(reliable: bool, depth: int):
    """Keep-last ``depth``, volatile; best effort or reliable. Outputs are reliable with depth 1: that
    matches best-effort and reliable subscribers (RViz defaults to reliable) and never queues old frames."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """``depth_node`` console script: exit 0 on shutdown, 2 with one line on stderr if it cannot start."""
    return run_node(DepthNode, NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())
