"""Every parameter of depth_node, with its default, description, range and whether it may change at run time.

``dfd-depth eval-bag`` reads the same class from the same YAML (``params.config_from_params_file``), so
offline evaluation runs with the live node's settings. No rclpy needed to import or build it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfd_depth_ros import input_checks
from dfd_depth_ros.backends import BACKEND_NAMES
from dfd_depth_ros.lens import DEFAULT_RESTART_S, DEFAULT_TOLERANCE_S  # noqa: F401
from dfd_depth_ros.nodes.params import StartupError, check_choices, ros_param
from dfd_depth_ros.optics import LensState

NODE_NAME = "depth_node"
LENS_SOURCES = ("joint_state", "diagnostics", "static")
POINT_FORMATS = ("xyz", "xyzrgb")
INPUT_QOS = ("sensor_data", "reliable")


@dataclass(frozen=True)
class DepthNodeConfig:
    """Every parameter of the node, with its default, description and allowed values."""

    model_path: str = ros_param("", "ONNX model file; empty: the shipped default model")
    backend: str = ros_param("auto", "inference backend", choices=BACKEND_NAMES)
    tensorrt_engine_sizes: str = ros_param("", "network input sizes 'WxH[,WxH...]' the tensorrt backend builds (or "
                                           "loads from its cache) when the node starts; empty: tensorrt is "
                                           "unavailable and auto falls back")
    lens_source: str = ros_param("joint_state", "where the lens state comes from: lens_state (JointState), "
                              "/diagnostics (KeyValue LensPosition, dioptres) or the static_* parameters",
                              choices=LENS_SOURCES)
    lens_tolerance_s: float = ros_param(DEFAULT_TOLERANCE_S, "largest time from an image stamp to a lens sample "
                                        "that may stand for it when no pair of samples (at most 1 s apart) "
                                        "brackets the stamp, s", range=(0.0, 10.0), dynamic=True)
    lens_wait_s: float = ros_param(0.03, "when no lens sample is at or after an image stamp yet, wait this long "
                                   "for one (lens and image travel separately) before giving up or falling back, s",
                                   range=(0.0, 1.0), dynamic=True)
    lens_buffer_size: int = ros_param(200, "lens samples kept for interpolation", range=(2, 100000))
    diagnostics_lens_key: str = ros_param("LensPosition", "KeyValue key of the focus (dioptres) in /diagnostics "
                                       "when lens_source is diagnostics")
    lens_hardware_id: str = ros_param("", "with lens_source diagnostics, read the focus only from statuses with "
                                      "this DiagnosticStatus.hardware_id (one camera of several); empty: any")
    static_focus_distance_m: float = ros_param(0.0, "static focus distance, m; 0: unset. With lens_source static "
                                            "it is the focus; otherwise, set with the two below, the fallback "
                                            "when no lens sample is near a frame", range=(0.0, 1.0e6))
    static_f_number: float = ros_param(0.0, "static f-number; 0: unset. Needed with lens_source static or "
                                    "diagnostics; fills a missing f_number joint", range=(0.0, 1000.0))
    static_focal_length_m: float = ros_param(0.0, "static focal length, m; 0: unset. Needed with lens_source static "
                                          "or diagnostics; fills a missing focal_length joint", range=(0.0, 10.0))
    max_gap_periods: float = ros_param(5.0, "a stamp gap longer than this many frame periods resets the temporal "
                                    "state", range=(1.0, 1.0e6), dynamic=True)
    min_depth_m: float = ros_param(0.1, "depths below this are published as -Inf (too close, REP 117), m",
                                   range=(0.0, 1.0e4), dynamic=True)
    max_depth_m: float = ros_param(20.0, "depths above this are published as +Inf (too far, REP 117), m",
                                   range=(0.0, 1.0e6), dynamic=True)
    min_confidence: float = ros_param(0.0, "pixels with a lower confidence have no estimate (NaN)",
                                      range=(0.0, 1.0), dynamic=True)
    input_qos: str = ros_param("sensor_data", "QoS of the input subscriptions: sensor_data (best effort) or "
                            "reliable; image keeps only the newest message", choices=INPUT_QOS)
    points_format: str = ros_param("xyz", "point fields: xyz, or xyzrgb coloured by the image", choices=POINT_FORMATS,
                                   dynamic=True)
    points_decimation: int = ros_param(1, "use every n-th pixel in both directions for points", range=(1, 64),
                                       dynamic=True)
    points_min_range_m: float = ros_param(0.0, "points nearer than this are NaN, m", range=(0.0, 1.0e6),
                                          dynamic=True)
    points_max_range_m: float = ros_param(20.0, "points farther than this are NaN, m", range=(0.0, 1.0e6),
                                          dynamic=True)
    points_max_rate_hz: float = ros_param(0.0, "build and publish the point cloud at most this often, Hz (the "
                                          "costliest output); 0: with every depth image", range=(0.0, 1000.0),
                                          dynamic=True)
    diagnostics_period_s: float = ros_param(1.0, "period of the /diagnostics status, s", range=(0.05, 60.0))
    log_throttle_s: float = ros_param(5.0, "repeat a warning about the same problem at most this often, s",
                                   range=(0.0, 3600.0), dynamic=True)

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
        try:  # the edge's physical ranges apply to the static lens too
            if self.static_f_number > 0:
                input_checks.check_f_number(self.static_f_number)
            if self.static_focal_length_m > 0:
                input_checks.check_focal_length_m(self.static_focal_length_m)
            if self.static_focus_distance_m > 0:
                input_checks.focus_m_from_distance(self.static_focus_distance_m)
        except input_checks.InputRangeError as exc:
            raise StartupError(f"static lens parameters: {exc}") from None

    def static_lens(self) -> LensState | None:
        """The lens state of the static_* parameters, or None unless all three are set."""
        values = (self.static_focus_distance_m, self.static_f_number, self.static_focal_length_m)
        return LensState(*values) if all(v > 0 for v in values) else None

    def stream_options(self) -> dict:
        """The keyword options of core.DepthStream that these parameters set, besides model_path and backend.

        What ``dfd-depth eval-bag`` builds its DepthStream with; ``depth_inputs.open_depth_stream``
        gives the node's the same with the depth range opened, because the node applies the range
        itself when it publishes (REP 117 +-Inf); its finite depths are the same (tests check both).
        """
        return {"max_gap_periods": self.max_gap_periods, "min_depth_m": self.min_depth_m,
                "max_depth_m": self.max_depth_m, "min_confidence": self.min_confidence}
