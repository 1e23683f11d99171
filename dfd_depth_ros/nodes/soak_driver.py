"""The camera and the consumer of a soak run (``dfd-depth soak``): publishes, receives, measures.

``SoakDriver`` publishes, at ``rate_hz``, a lens sample (JointState), then the camera_info, then the
image of each frame (all with the same stamp: the frame's time on a camera clock that ticks at exactly
``rate_hz``, as a camera stamps exposures, so a late publish shows as latency, never as a stamp gap), from a
thread of its own so the rate holds whatever the executor does; and it subscribes to everything the depth node publishes
(depth/image, confidence/image, points, /diagnostics), so every output is built. It records, per
frame, whether depth came back and its latency (arrival - stamp); the depth node's own /diagnostics
status is kept (skips by reason, resets, drops).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.msgs import convert as rm
from dfd_depth_ros.optics import LensState

try:
    from rclpy.node import Node
except ImportError:  # importable (documentation, tests of the maths) without rclpy
    Node = object

FRAME_ID = "soak_camera_optical_frame"


class SoakError(RuntimeError):
    """The run could not be made (the node did not come up or died); one line."""


@dataclass
class SoakRecord:
    """What one run measured. sent: stamp ns -> send time s; latency_s: stamp ns -> depth latency s;
    rss: (time s, node RSS MB) once a second; cpu_s: node CPU time while counting; counted_s: that duration."""

    sent: dict
    latency_s: dict
    rss: list = field(default_factory=list)
    node_status: dict = field(default_factory=dict)
    node_history: list = field(default_factory=list)
    cpu_s: float | None = None
    counted_s: float = 0.0
    confidence_images: int = 0
    point_clouds: int = 0


class SoakDriver(Node):
    """Publisher + subscriber of one soak run; see the module docstring. Sizes in px, rate in Hz."""

    def __init__(self, rate_hz: float = 30.0, width: int = 320, height: int = 240, seed: int = 0, **node_kwargs):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2

        super().__init__("soak_driver", **node_kwargs)
        self.rate_hz, self.width, self.height = float(rate_hz), int(width), int(height)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.lens_pub = self.create_publisher(JointState, "lens_state", qos)
        self.subs = [self.create_subscription(Image, "depth/image", self._on_depth, qos),
                     self.create_subscription(Image, "confidence/image", self._on_confidence, qos),
                     self.create_subscription(PointCloud2, "points", self._on_points, qos),
                     self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos)]
        rng = np.random.default_rng(seed)
        self._images = [rng.integers(0, 256, (self.height, self.width, 3), dtype=np.uint8) for _ in range(8)]
        self.K = intrinsics_matrix(0.9 * self.width, 0.9 * self.width, self.width / 2, self.height / 2)
        self._lock = threading.Lock()
        self.sent: dict[int, float] = {}  # stamp ns -> monotonic send time, s
        self.depth_latency_s: dict[int, float] = {}  # stamp ns -> arrival - stamp, s
        self.confidence_count = self.points_count = 0
        self.node_status: dict[str, str] = {}
        self.node_history: list[dict[str, str]] = []  # the node's statuses while counting
        self.node_levels: list[int] = []
        self.counting = False  # frames are recorded only while True (after the warm-up)

    def connected(self) -> bool:
        """The depth node subscribes to our inputs and publishes our outputs."""
        return (self.image_pub.get_subscription_count() > 0 and self.lens_pub.get_subscription_count() > 0
                and all(s.get_publisher_count() > 0 for s in self.subs[:3]))

    def publish_frame(self, i: int, stamp_ns: int | None = None) -> int:
        """Lens sample, camera_info, image of frame ``i``, stamped ``stamp_ns`` (None: now); returns the stamp."""
        stamp_ns = self.get_clock().now().nanoseconds if stamp_ns is None else int(stamp_ns)
        header = rm.make_header(stamp_ns, FRAME_ID)
        focus_m = 1.0 / (0.3 + 1.7 * (0.5 + 0.5 * np.sin(i / 15.0)))  # a slow sweep, 0.5 .. 3.3 m
        self.lens_pub.publish(rm.joint_state_msg(LensState(focus_m, 2.0, 0.008), header))
        self.info_pub.publish(rm.camera_info_msg(self.K, self.width, self.height, header))
        self.image_pub.publish(rm.image_msg(self._images[i % len(self._images)], "rgb8", header))
        if self.counting:
            with self._lock:
                self.sent[stamp_ns] = time.monotonic()
        return stamp_ns

    def publish_for(self, duration_s: float, stop: threading.Event) -> int:
        """Publish at ``rate_hz`` for ``duration_s`` (or until ``stop``); returns the frames published."""
        period_s = 1.0 / self.rate_hz
        start = time.monotonic()
        t0_ns = self.get_clock().now().nanoseconds  # the camera clock: frame i is exposed at t0 + i / rate
        i = 0
        while not stop.is_set() and time.monotonic() - start < duration_s:
            self.publish_frame(i, t0_ns + round(i * period_s * 1e9))
            i += 1
            delay = start + i * period_s - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        return i

    def _on_depth(self, msg) -> None:
        if not self.counting:
            return
        stamp_ns = rm.stamp_to_ns(msg.header.stamp)
        latency_s = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        with self._lock:
            self.depth_latency_s[stamp_ns] = latency_s

    def _on_confidence(self, msg) -> None:
        self.confidence_count += self.counting

    def _on_points(self, msg) -> None:
        self.points_count += self.counting

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(": depth"):
                self.node_status = {kv.key: kv.value for kv in status.values}
                if self.counting:
                    self.node_history.append(self.node_status)
                self.node_levels.append(int.from_bytes(status.level, "little") if isinstance(status.level, bytes)
                                        else int(status.level))

    def results(self) -> tuple[dict[int, float], dict[int, float]]:
        """(sent: stamp -> send time s, depth latency: stamp -> s) of the counted frames, copies."""
        with self._lock:
            return dict(self.sent), dict(self.depth_latency_s)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far, s."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def soak(node_command: list[str], domain: int, rate_hz: float, width: int, height: int, warmup_s: float,
         counted_s: float, log_path: Path) -> SoakRecord:
    """Start the depth node (``node_command``, its output in ``log_path``) on ``domain``, drive it with a
    ``SoakDriver`` for ``warmup_s`` + ``counted_s`` seconds, stop it; what was measured while counting."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    with open(log_path, "w") as log:
        node = subprocess.Popen(node_command, env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    driver = SoakDriver(rate_hz, width, height, context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(driver)
    stop = threading.Event()
    rec = SoakRecord({}, {})
    try:
        deadline = time.monotonic() + 60.0
        while not driver.connected():
            if node.poll() is not None or time.monotonic() > deadline:
                raise SoakError(f"the depth node did not come up; see {log_path}")
            executor.spin_once(timeout_sec=0.1)
        publisher = threading.Thread(target=driver.publish_for, args=(warmup_s + counted_s, stop), daemon=True)
        start = time.monotonic()
        publisher.start()
        next_rss, cpu_start = start, None
        while publisher.is_alive():
            executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if cpu_start is None and now - start >= warmup_s:
                driver.counting, cpu_start = True, (now, _cpu_s(node.pid))
            if driver.counting and now >= next_rss:
                mb = _rss_mb(node.pid)
                if mb is not None:
                    rec.rss.append((now, mb))
                next_rss = now + 1.0
            if node.poll() is not None:
                raise SoakError(f"the depth node died; see {log_path}")
        cpu_end = (time.monotonic(), _cpu_s(node.pid))
        end = time.monotonic() + 2.5  # the last frames' outputs and one more /diagnostics status
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        driver.counting = False
        if cpu_start is not None and cpu_start[1] is not None and cpu_end[1] is not None:
            rec.cpu_s, rec.counted_s = cpu_end[1] - cpu_start[1], cpu_end[0] - cpu_start[0]
    finally:
        stop.set()
        node.send_signal(2)
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
        rec.sent, rec.latency_s = driver.results()
        rec.node_status, rec.node_history = driver.node_status, list(driver.node_history)
        rec.confidence_images, rec.point_clouds = driver.confidence_count, driver.points_count
        executor.shutdown()
        driver.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return rec
