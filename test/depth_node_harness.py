"""What the depth_node tests share: the plane model, the node process, and the test's side of the DDS graph.

The node runs in its own process (python -m dfd_depth_ros.nodes.depth_node) on its own ROS_DOMAIN_ID,
loopback only, with the shipped Fast DDS profile; ``Client`` talks to it from the test process. The model
is an untrained DfDNet whose head is fixed so that it predicts zero blur everywhere: its depth is the focus
distance at every pixel, a fronto-parallel plane, which makes every output checkable to float precision.
The fixtures (plane_model, node_log, client) are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.msgs import convert as rm

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "config" / "depth.yaml"
PROFILE = REPO / "config" / "fastdds_profile.xml"
H, W = 48, 64
K = intrinsics_matrix(60.0, 61.0, 31.5, 23.25)
PERIOD_NS = 33_333_333
T0_NS = 1_800_000_000_000_000_000
FRAME_ID = "test_camera_optical_frame"
DECIMATION = 2
NS = 1_000_000_000
OUTPUTS = ("depth/image", "depth/camera_info", "confidence/image", "confidence/camera_info", "points",
           "/diagnostics")
NODE_TEST_PARAMS = {"backend": "onnxruntime", "points_format": "xyzrgb", "points_decimation": DECIMATION,
                    "diagnostics_period_s": 0.2, "log_throttle_s": 0.0,
                    "lens_wait_s": 0.25}  # generous: the test machine is shared


def ros_env(domain: int) -> dict:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE), PYTHONUNBUFFERED="1",
               RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_COLORIZED_OUTPUT="0")
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def export_plane_model(path: Path) -> Path:
    """An untrained DfDNet whose head predicts zero blur: depth = focus distance everywhere."""
    import torch

    from dfd_depth_ros.network import DfDNet
    from training.export import export_onnx

    net = DfDNet()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([-30.0, 0.0, 0.0]))  # blur softplus(-30) ~ 0, p_behind 0.5, conf 0.5
    return export_onnx(net, path, height=H, width=W)


def run_node(args: list[str], domain: int, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", *args],
                          env=ros_env(domain), capture_output=True, text=True, timeout=timeout)


def params_args(model: Path, **params) -> list[str]:
    """--ros-args for the shipped YAML, the plane model and ``params`` (name=value, as -p name:=value)."""
    args = ["--params-file", str(PARAMS_YAML), "-p", f"model_path:={model}"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


@contextlib.contextmanager
def node_process(args: list[str], domain: int, log: Path):
    """The depth node running with ``args`` (after --ros-args) on ``domain``, its output in ``log``; yields the
    process, then stops it with SIGINT and says whether it had died."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", *args],
                                env=ros_env(domain), stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        alive = proc.poll() is None
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert alive, f"the node died during the tests:\n{log.read_text()}"


class Client:
    """The test's side of the graph: publishes camera input, collects the node's outputs (``topics``)."""

    def __init__(self, domain: int, topics=OUTPUTS):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
        from std_srvs.srv import Trigger

        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("dfd_test_client", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.lens_pub = self.node.create_publisher(JointState, "lens_state", qos)
        self.diag_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", qos)
        types = {"depth/image": Image, "depth/camera_info": CameraInfo, "confidence/image": Image,
                 "confidence/camera_info": CameraInfo, "points": PointCloud2, "/diagnostics": DiagnosticArray}
        self.received: dict[str, list] = {name: [] for name in topics}
        self.subs = [self.node.create_subscription(types[name], name,
                                                   lambda m, name=name: self.received[name].append(m), qos)
                     for name in topics]
        self.reset = self.node.create_client(Trigger, "/depth_node/reset")
        self.stamp_ns = T0_NS

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)

    def connected(self, timeout: float = 30.0, lens: bool = True) -> bool:
        """Wait until the node subscribes to our inputs and publishes our outputs."""
        return self.spin_until(lambda: self.image_pub.get_subscription_count() > 0
                               and (not lens or self.lens_pub.get_subscription_count() > 0)
                               and all(s.get_publisher_count() > 0 for s in self.subs), timeout)

    def spin_until(self, done, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                return False
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def next_stamp(self) -> int:
        self.stamp_ns += PERIOD_NS
        return self.stamp_ns

    def send_lens(self, stamp_ns: int, focus_m: float = 2.0, positions=None):
        """A contract JointState: [focus_m, f/2, 8 mm], or ``positions`` as given."""
        from sensor_msgs.msg import JointState

        self.lens_pub.publish(JointState(header=rm.make_header(stamp_ns, FRAME_ID), name=list(rm.LENS_JOINTS),
                                         position=[focus_m, 2.0, 0.008] if positions is None else positions))

    def send_lens_position(self, stamp_ns: int, diopters: float, hardware_id: str = ""):
        """camera_ros style: the focus as KeyValue LensPosition (dioptres) in a DiagnosticArray."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        status = DiagnosticStatus(name="camera: controls", hardware_id=hardware_id,
                                  values=[KeyValue(key="ExposureTime", value="8000"),
                                          KeyValue(key="LensPosition", value=str(diopters))])
        self.diag_pub.publish(DiagnosticArray(header=rm.make_header(stamp_ns, ""), status=[status]))

    def send_info(self, stamp_ns: int, k=K, width: int = W, height: int = H):
        msg = rm.camera_info_msg(K, width, height, rm.make_header(stamp_ns, FRAME_ID))
        msg.k = np.asarray(k, dtype=np.float64).reshape(-1)  # may be unusable on purpose
        self.info_pub.publish(msg)

    def send_image(self, stamp_ns: int, msg=None, width: int = W, height: int = H):
        if msg is None:
            rgb = np.random.default_rng(stamp_ns % 1000).integers(0, 256, (height, width, 3), dtype=np.uint8)
            msg = rm.image_msg(rgb, "rgb8", None)
        msg.header = rm.make_header(stamp_ns, FRAME_ID)
        self.image_pub.publish(msg)
        return msg

    def frame(self, focus_m: float = 2.0, image=None, lens: bool = True, info: bool = True, width=W, height=H,
              k=K) -> int:
        """Lens sample and camera_info first (given time to arrive), then the image; returns its stamp."""
        stamp = self.next_stamp()
        if lens:
            self.send_lens(stamp, focus_m)
        if info:
            self.send_info(stamp, k, width, height)
        self.spin_until(lambda: False, 0.25)  # generous: CI machines are loaded
        self.send_image(stamp, image, width, height)
        return stamp

    def output(self, topic: str, stamp_ns: int, timeout: float = 5.0):
        """The message on ``topic`` with header stamp ``stamp_ns`` (waits for it), or None."""
        def find():
            return next((m for m in self.received[topic] if rm.stamp_to_ns(m.header.stamp) == stamp_ns), None)

        self.spin_until(lambda: find() is not None, timeout)
        return find()

    def diagnostics(self) -> dict[str, str]:
        """Values of a depth_node status published after this call (so it includes everything before)."""
        n = len(self.received["/diagnostics"])
        assert self.spin_until(lambda: len(self.received["/diagnostics"]) >= n + 2, 5.0), "no /diagnostics"
        status = next(s for s in self.received["/diagnostics"][-1].status if "depth_node" in s.name)
        return {kv.key: kv.value for kv in status.values}


def log_has(log: Path, text: str, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def skipped_for_lens(stamp_ns: int) -> str:
    """The node's log text when it skips the frame at ``stamp_ns`` for want of a lens state."""
    return f"of image stamp {stamp_ns * 1e-9:.3f}"


def depth_array(msg) -> np.ndarray:
    from dfd_depth_ros.msgs.image import image_to_array

    return image_to_array(msg)


def assert_plane(client: Client, stamp: int, focus_m: float, shape=(H, W)) -> None:
    msg = client.output("depth/image", stamp)
    assert msg is not None, f"no depth for stamp {stamp}"
    assert (msg.height, msg.width, msg.encoding) == (*shape, "32FC1")
    np.testing.assert_allclose(depth_array(msg), focus_m, rtol=1e-5)
