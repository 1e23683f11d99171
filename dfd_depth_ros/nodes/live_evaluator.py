"""live_evaluator: scores a running depth node against ground truth, as eval-bag does offline.

    ros2 run dfd_depth_ros live_evaluator --ros-args -r __ns:=/camera -p metrics_path:=out/live/metrics.json
    python -m dfd_depth_ros.nodes.live_evaluator --ros-args -r __ns:=/camera -p metrics_path:=metrics.json

Subscribes   depth/image (32FC1 metres, depth_node's output) and depth_gt (32FC1 metres or 16UC1 mm, e.g. from
             `dfd-depth play` of a contract bag), paired by header.stamp; /diagnostics, for the depth
             node's processing time (its status "<node>: depth", key processing_ms_mean).
Publishes    /diagnostics (DiagnosticArray, about once per diagnostics_period_s): status
             "<node>: evaluation" with the running contract metrics (abs_rel ... delta3, flicker,
             missing, frames), the pairing counts and the number of depth and ground-truth
             publishers it is connected to, as KeyValues.
On shutdown  writes metrics.json (the bag contract's format, method ``method``, bag ``bag``) to
             ``metrics_path`` and, when set, one record per scored frame to ``frames_path``.

Pairs are scored in arrival order with ``metrics.MetricAccumulator``, the accumulator eval-bag
uses, so a live run and eval-bag on the same bag agree except for frames lost live: ground
truth whose depth never came (the node dropped or skipped the frame) is counted as
``gt_without_depth``. A stamp that goes back (a looped replay) ends the flicker sequence.
ms_per_frame is the depth node's own processing time (decode, estimator, publishing), mean
over its diagnostics windows weighted by frames, or null when it reported none.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.evaluate import METHOD_RECURRENT, json_number, metrics_document
from dfd_depth_ros.metrics import MetricAccumulator
from dfd_depth_ros.nodes.params import StartupError, declare_config, ros_param
from dfd_depth_ros.stamp_pairing import StampPairer

try:
    from rclpy.node import Node
except ImportError:  # LiveScorer stays importable (and testable) without rclpy
    Node = object

NODE_NAME = "live_evaluator"
DEPTH_STATUS_SUFFIX = ": depth"  # depth_node's /diagnostics status name is "<fully qualified name>: depth"


# ----------------------------------------------------------------------------- ROS-free core


class LiveScorer:
    """Pairs depth and ground-truth images by stamp and scores each pair once both are there.

    Unpaired images wait (at most ``window`` of each kind; the oldest is dropped and counted).
    """

    def __init__(self, window: int = 64):
        self.window = int(window)
        self.accumulator = MetricAccumulator()
        self._pairer = StampPairer(("depth", "gt"), window=self.window)
        self._last_stamp_ns: int | None = None
        self.records: list[dict] = []
        self.depth_without_gt = 0
        self.gt_evicted = 0
        self.size_mismatch = 0
        self.restarts = 0
        self._ms_sum = 0.0
        self._ms_frames = 0

    @property
    def frames(self) -> int:
        return len(self.accumulator.per_frame)

    @property
    def gt_without_depth(self) -> int:
        """Ground-truth frames whose depth never came (so far): dropped or skipped by the depth node."""
        return self.gt_evicted + self._pairer.waiting("gt")

    def add_depth(self, stamp_ns: int, depth_m: np.ndarray) -> dict | None:
        """A depth image; returns the frame's metrics if its ground truth was waiting."""
        return self._add("depth", stamp_ns, depth_m)

    def add_gt(self, stamp_ns: int, gt_m: np.ndarray) -> dict | None:
        """A ground-truth image; returns the frame's metrics if its depth was waiting."""
        return self._add("gt", stamp_ns, gt_m)

    def _add(self, stream: str, stamp_ns: int, image: np.ndarray) -> dict | None:
        self._pairer.add(stream, stamp_ns, image)
        pair = self._pairer.take(stamp_ns)
        if pair is not None:
            return self._score(stamp_ns, pair["depth"], pair["gt"])
        for _, entry in self._pairer.evict():
            self.gt_evicted += "gt" in entry
            self.depth_without_gt += "depth" in entry
        return None

    def _score(self, stamp_ns: int, depth: np.ndarray, gt: np.ndarray) -> dict | None:
        if depth.shape != gt.shape:
            self.size_mismatch += 1
            return None
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            self.accumulator.reset_sequence()  # a replay started again: no flicker across the jump
            self.restarts += 1
        self._last_stamp_ns = stamp_ns
        m = self.accumulator.add(depth, gt)
        self.records.append({"stamp_ns": int(stamp_ns), **{k: json_number(v) for k, v in m.items()}})
        return m

    def add_processing_time(self, ms_mean: float, frames: int) -> None:
        """The depth node's mean processing time over ``frames`` frames (one diagnostics window)."""
        if frames > 0 and np.isfinite(ms_mean):
            self._ms_sum += ms_mean * frames
            self._ms_frames += frames

    def summary(self) -> dict:
        """The contract's per-method dict (ms_per_frame: the depth node's, NaN if unknown)."""
        s = self.accumulator.summary()
        s["ms_per_frame"] = self._ms_sum / self._ms_frames if self._ms_frames else float("nan")
        return s

    def counts(self) -> dict[str, int]:
        return {"frames": self.frames, "gt_without_depth": self.gt_without_depth,
                "depth_without_gt": self.depth_without_gt + self._pairer.waiting("depth"),
                "size_mismatch": self.size_mismatch,
                "stamp_restarts": self.restarts}


def depth_image_to_m(msg) -> np.ndarray:
    """sensor_msgs/Image 32FC1 (m) or 16UC1 (mm) -> (H, W) float32 metres; ValueError when it is neither."""
    from dfd_depth_ros.msgs import image as image_codec

    return image_codec.depth_to_m(image_codec.image_to_array(msg), msg.encoding)


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class LiveEvaluatorConfig:
    """Every parameter of the node."""

    method: str = ros_param(METHOD_RECURRENT, "method name under which metrics.json reports the depth")
    bag: str = ros_param("", "what metrics.json names as its bag (e.g. the replayed bag's folder name); "
                         "empty: live")
    metrics_path: str = ros_param("", "write metrics.json here on shutdown; empty: do not write")
    frames_path: str = ros_param("", "write the per-frame metrics (JSON) here on shutdown; empty: do not write")
    match_window: int = ros_param(64, "unpaired depth / ground-truth images kept waiting for their partner",
                                  range=(1, 100000))
    diagnostics_period_s: float = ros_param(1.0, "period of the /diagnostics status, s", range=(0.05, 60.0))
    exit_after_idle_s: float = ros_param(0.0, "after the first image, shut down (writing the files) once no depth "
                                         "or ground truth arrived for this long, s; 0: run until shut down",
                                         range=(0.0, 86400.0))

    def __post_init__(self):
        if not self.method:
            raise StartupError("parameter method must not be empty")


# ----------------------------------------------------------------------------- the node


class LiveEvaluator(Node):
    """Depth and ground truth in, running metrics out; see the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        super().__init__(node_name, **node_kwargs)
        self.cfg = declare_config(self, LiveEvaluatorConfig)
        self.scorer = LiveScorer(self.cfg.match_window)
        self._last_input = None  # monotonic time of the last image
        self._frames_out_seen: dict[str, int] = {}
        self.bad_images = 0
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(self.cfg.match_window, 10),
                         reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self.depth_sub = self.create_subscription(Image, "depth/image", self._on_depth, qos)
        self.gt_sub = self.create_subscription(Image, "depth_gt", self._on_gt, qos)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.cfg.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(f"scoring {self.resolve_topic_name('depth/image')} against "
                               f"{self.resolve_topic_name('depth_gt')} as {self.cfg.method}")

    # -- inputs

    def _decode(self, msg):
        from dfd_depth_ros.msgs.convert import stamp_to_ns

        self._last_input = time.monotonic()
        try:
            return stamp_to_ns(msg.header.stamp), depth_image_to_m(msg)
        except ValueError as exc:
            self.bad_images += 1
            self.get_logger().warning(f"{exc}; image ignored", throttle_duration_sec=5.0)
            return None, None

    def _on_depth(self, msg) -> None:
        stamp, depth = self._decode(msg)
        if depth is not None:
            self.scorer.add_depth(stamp, depth)

    def _on_gt(self, msg) -> None:
        stamp, gt = self._decode(msg)
        if gt is not None:
            self.scorer.add_gt(stamp, gt)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if not status.name.endswith(DEPTH_STATUS_SUFFIX):
                continue
            values = {kv.key: kv.value for kv in status.values}
            try:
                frames_out, ms = int(values["frames_out"]), float(values["processing_ms_mean"])
            except (KeyError, ValueError):
                continue  # no frame in that window ("n/a")
            new = frames_out - self._frames_out_seen.get(status.name, 0)
            self._frames_out_seen[status.name] = frames_out
            self.scorer.add_processing_time(ms, new)

    # -- outputs

    def status_values(self) -> dict[str, str]:
        summary = self.scorer.summary()
        values = {k: "nan" if not np.isfinite(summary[k]) else f"{summary[k]:.6g}"
                  for k in ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta1", "delta2", "delta3", "flicker",
                            "missing", "ms_per_frame")}
        values.update({k: str(v) for k, v in self.scorer.counts().items()})
        values["bad_images"] = str(self.bad_images)
        values["depth_publishers"] = str(self.depth_sub.get_publisher_count())
        values["gt_publishers"] = str(self.gt_sub.get_publisher_count())
        return values

    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        values = self.status_values()
        if self.scorer.frames == 0:
            level, message = DiagnosticStatus.STALE, (f"no depth / ground-truth pair yet ({values['depth_publishers']} "
                                                      f"depth and {values['gt_publishers']} ground-truth publishers)")
        else:
            level, message = DiagnosticStatus.OK, f"{values['frames']} frames, abs_rel {values['abs_rel']}"
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: evaluation", message=message,
                                  hardware_id="dfd_depth_ros",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

    def idle(self) -> bool:
        """True once exit_after_idle_s passed since the last image (never before the first, or when 0)."""
        limit = self.cfg.exit_after_idle_s
        return limit > 0 and self._last_input is not None and time.monotonic() - self._last_input > limit

    def metrics_json(self) -> dict:
        return metrics_document(self.cfg.bag or "live", self.scorer.frames, {self.cfg.method: self.scorer.summary()})

    def write_outputs(self) -> list[Path]:
        """metrics.json (and the per-frame records) to the configured paths; returns what was written."""
        written = []
        if self.cfg.metrics_path:
            written.append(_write_json(Path(self.cfg.metrics_path), self.metrics_json()))
        if self.cfg.frames_path:
            doc = {"bag": self.cfg.bag or "live", "method": self.cfg.method, **self.scorer.counts(),
                   "frames_scored": self.scorer.records}
            doc.pop("frames")
            written.append(_write_json(Path(self.cfg.frames_path), doc))
        return written


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


# ----------------------------------------------------------------------------- entry point


def _report(node: LiveEvaluator) -> None:
    written = node.write_outputs()
    counts = node.scorer.counts()
    print(f"{NODE_NAME}: {counts['frames']} frames scored, {counts['gt_without_depth']} ground-truth frames without "
          f"depth (dropped or skipped live), {counts['depth_without_gt']} depth images without ground truth"
          + (f"; wrote {', '.join(map(str, written))}" if written else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    """``live_evaluator`` console script and ``python -m``: 0 after writing the files, 2 if it cannot start."""
    from dfd_depth_ros.nodes.graph import run_node

    spin = {"threads": lambda node: 1, "until": lambda node: node.idle if node.cfg.exit_after_idle_s > 0 else None}
    return run_node(LiveEvaluator, NODE_NAME, argv, spin, after=_report)


if __name__ == "__main__":
    sys.exit(main())
