"""depth_node over real DDS: frames in -> depth, confidence and points out with the image's header; a
fronto-parallel plane comes back flat at the right depth; the lens state is interpolated at the image
stamp; resets on a backwards stamp and on request; every kind of bad input is logged and skipped while
the next good frame still gets its depth; a bad parameter or model stops start-up with one line; and
`dfd-depth run --synthetic` drives the whole graph in one process.

The node runs in its own process (python -m dfd_depth_ros.nodes.depth_node) on ROS_DOMAIN_ID 142, loopback
only, with the shipped Fast DDS profile; the test talks to it from this process. The model is an
untrained DfDNet whose head is fixed so that it predicts zero blur everywhere: its depth is the focus
distance at every pixel, a fronto-parallel plane, which makes every output checkable to float precision.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.msgs import convert as rm
from dfd_depth_ros.nodes.depth_node import (
    DepthNodeConfig,
    LensInput,
    StartupError,
    StreamStats,
    Throttle,
    decimated_rgb,
    parameter_descriptor,
)
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.pointcloud import depth_to_points

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "config" / "depth.yaml"
PROFILE = REPO / "config" / "fastdds_profile.xml"
DOMAIN = 142  # this module's node and client
RUN_DOMAIN = 143  # the `dfd-depth run` process
DIAG_DOMAIN = 144  # a node that takes its focus from /diagnostics
CAMERA_DOMAIN = 145  # the synthetic camera on its own
H, W = 48, 64
K = intrinsics_matrix(60.0, 61.0, 31.5, 23.25)
PERIOD_NS = 33_333_333
T0_NS = 1_800_000_000_000_000_000
FRAME_ID = "test_camera_optical_frame"
DECIMATION = 2
NS = 1_000_000_000


# ============================================================================= ROS-free helpers


def test_every_parameter_is_described_ranged_and_in_the_yaml():
    import yaml
    from rcl_interfaces.msg import ParameterDescriptor

    from dfd_depth_ros.nodes.synthetic_camera import SyntheticCameraConfig

    shipped = yaml.safe_load(PARAMS_YAML.read_text())
    for section, cls in (("/**/depth_node", DepthNodeConfig), ("/**/synthetic_camera", SyntheticCameraConfig)):
        defaults = {f: getattr(cls(), f) for f in cls.__dataclass_fields__}
        assert shipped[section]["ros__parameters"] == defaults, f"{PARAMS_YAML} [{section}] drifted from {cls}"
        for f in cls.__dataclass_fields__.values():
            desc = parameter_descriptor(f)
            assert isinstance(desc, ParameterDescriptor) and desc.description and desc.read_only
            if isinstance(f.default, float):
                (rng,) = desc.floating_point_range
                assert rng.from_value <= f.default <= rng.to_value, f.name
            elif isinstance(f.default, int) and not isinstance(f.default, bool):
                (rng,) = desc.integer_range
                assert rng.from_value <= f.default <= rng.to_value, f.name


@pytest.mark.parametrize("changes, match", [
    ({"min_depth_m": 5.0, "max_depth_m": 5.0}, "min_depth_m .* smaller"),
    ({"points_min_range_m": 3.0, "points_max_range_m": 1.0}, "points_min_range_m"),
    ({"lens_source": "static", "static_focus_distance_m": 1.0}, "static needs"),
    ({"lens_source": "diagnostics"}, "diagnostics needs static_f_number"),
    ({"lens_source": "camera"}, "choose one of joint_state, diagnostics, static"),
    ({"points_format": "xyzi"}, "choose one of xyz, xyzrgb"),
    ({"backend": "openvino"}, "choose one of auto"),
])
def test_config_refuses_bad_combinations(changes, match):
    with pytest.raises(StartupError, match=match):
        DepthNodeConfig(**changes)


def test_static_lens_is_a_fallback_only_when_complete():
    assert DepthNodeConfig().static_lens() is None
    cfg = DepthNodeConfig(static_focus_distance_m=2.0, static_f_number=2.8, static_focal_length_m=0.008)
    assert cfg.static_lens() == LensState(2.0, 2.8, 0.008)
    DepthNodeConfig(lens_source="diagnostics", static_f_number=2.8, static_focal_length_m=0.008)  # valid


def test_stream_stats_counts_drops_from_stamp_gaps():
    stats = StreamStats(max_gap_periods=5.0, clock=lambda: 0.0)
    stamps = [T0_NS + k * PERIOD_NS for k in (0, 1, 2, 3, 4, 7, 8)]  # frames 5 and 6 never arrived
    drops = [stats.on_input(s) for s in stamps]
    assert drops == [0, 0, 0, 0, 0, 2, 0] and stats.dropped == 2
    assert stats.period_s == pytest.approx(PERIOD_NS * 1e-9)
    stats.on_input(stamps[-1] - 10 * NS)  # backwards: a reversal, not a drop
    stats.on_input(stamps[-1] + 60 * NS)  # a pause far beyond max_gap_periods: not 1800 drops
    assert (stats.dropped, stats.stamp_reversals, stats.frames_in) == (2, 1, 9)
    stats.on_skip("no_lens")
    stats.on_reset("gap")
    report = stats.report()
    assert report["skipped_frames"] == "1" and report["state_resets"] == "1" and report["last_reset_reason"] == "gap"
    assert report["camera_rate_hz"] == "30.00"


def test_throttle_lets_one_through_per_period_and_counts_the_rest():
    now = [0.0]
    throttle = Throttle(5.0, clock=lambda: now[0])
    assert throttle("a") == 0
    assert throttle("a") is None and throttle("a") is None
    assert throttle("b") == 0  # keys are independent
    now[0] = 5.5
    assert throttle("a") == 2


def test_lens_input_interpolates_falls_back_and_restarts():
    lenses = LensInput(tolerance_s=0.05, buffer_size=10)
    assert lenses.at(T0_NS) == (None, "none")
    lenses.add(T0_NS, LensState(1.0, 2.0, 0.01))
    lenses.add(T0_NS + 100_000_000, LensState(0.5, 2.0, 0.01))
    lens, source = lenses.at(T0_NS + 50_000_000)
    assert source == "samples" and lens.focus_diopters == pytest.approx(1.5)  # halfway in dioptres
    assert lenses.at(T0_NS + 140_000_000)[0].focus_distance_m == 0.5  # nearest within tolerance
    assert lenses.at(T0_NS + 160_000_000) == (None, "none")
    assert lenses.add(T0_NS - 5 * NS, LensState(3.0, 2.0, 0.01))  # a replay from the start: new history
    assert lenses.at(T0_NS + 50_000_000) == (None, "none")
    fallback = LensState(2.0, 2.0, 0.01)
    assert LensInput(0.05, 10, fallback).at(T0_NS) == (fallback, "static")


def test_decimated_colours_line_up_with_decimated_points():
    rgb = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
    xyz = depth_to_points(np.ones((7, 9), np.float32), K, decimation=3)
    cols = decimated_rgb(rgb, 3, xyz.shape[:2])
    assert cols.shape == (3, 3, 3)
    np.testing.assert_array_equal(cols[1, 2], rgb[3, 6])


# ============================================================================= processes


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


@pytest.fixture(scope="module")
def plane_model(tmp_path_factory) -> Path:
    return export_plane_model(tmp_path_factory.mktemp("model") / "plane.onnx")


def run_node(args: list[str], domain: int = DOMAIN, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", *args],
                          env=ros_env(domain), capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("depth_node: error: ")
    return lines[0]


@pytest.mark.parametrize("args, match", [
    (["-p", "lens_tolerance_s:=-1.0"], r"parameter lens_tolerance_s = -1.0 is out of range \[0.0, 10.0\]"),
    (["-p", "max_depth_m:=20"], "parameter max_depth_m: .*INTEGER.*DOUBLE"),
    (["-p", "lens_source:=camera"], "lens_source = 'camera': choose one of"),
    (["-p", "model_path:=/nonexistent/dfd.onnx"], "cannot load the model: model file /nonexistent/dfd.onnx does not"),
])
def test_bad_start_up_stops_with_one_line(args, match, tmp_path):
    line = one_error_line(run_node(["--params-file", str(PARAMS_YAML), "-p", "backend:=onnxruntime", *args]))
    assert re.search(match, line), line


def test_corrupt_model_stops_with_one_line(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"not an onnx model" * 100)
    line = one_error_line(run_node(["-p", f"model_path:={bad}", "-p", "backend:=onnxruntime"]))
    assert "cannot load the model" in line and "corrupt.onnx" in line


class Client:
    """The test's side of the graph: publishes camera input, collects the node's outputs."""

    def __init__(self, domain: int):
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
        self.received: dict[str, list] = {}
        self.subs = [self.node.create_subscription(t, name, lambda m, name=name: self.received[name].append(m), qos)
                     for name, t in (("depth", Image), ("depth/camera_info", CameraInfo), ("confidence", Image),
                                     ("points", PointCloud2), ("/diagnostics", DiagnosticArray))]
        for name in ("depth", "depth/camera_info", "confidence", "points", "/diagnostics"):
            self.received[name] = []
        self.reset = self.node.create_client(Trigger, "/depth_node/reset")
        self.stamp_ns = T0_NS

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)

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

    def send_lens_position(self, stamp_ns: int, diopters: float):
        """camera_ros style: the focus as KeyValue LensPosition (dioptres) in a DiagnosticArray."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        status = DiagnosticStatus(name="camera: controls", values=[KeyValue(key="ExposureTime", value="8000"),
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


@pytest.fixture(scope="module")
def node_log(plane_model, tmp_path_factory):
    """The depth node process (started once for the module); yields its log file."""
    folder = tmp_path_factory.mktemp("node")
    overrides = folder / "test.yaml"
    overrides.write_text(
        "/**/depth_node:\n  ros__parameters:\n"
        f"    model_path: {plane_model}\n    backend: onnxruntime\n    points_format: xyzrgb\n"
        f"    points_decimation: {DECIMATION}\n    diagnostics_period_s: 0.2\n    log_throttle_s: 0.0\n"
        "    lens_wait_s: 0.25\n")  # generous: the test machine is shared
    log = folder / "node.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", "--params-file",
                                 str(PARAMS_YAML), "--params-file", str(overrides)],
                                env=ros_env(DOMAIN), stdout=out, stderr=subprocess.STDOUT)
    yield log
    alive = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert alive, f"the node died during the tests:\n{log.read_text()}"


@pytest.fixture(scope="module")
def client(node_log):
    saved = {k: os.environ.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    c = Client(DOMAIN)
    matched = c.spin_until(lambda: c.image_pub.get_subscription_count() > 0 and c.lens_pub.get_subscription_count()
                           > 0 and all(s.get_publisher_count() > 0 for s in c.subs), 30.0)
    assert matched, f"the node did not come up:\n{node_log.read_text()}"
    c.spin_until(lambda: False, 0.5)  # let the node see our subscriptions too (points are built on demand)
    yield c
    c.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
    msg = client.output("depth", stamp)
    assert msg is not None, f"no depth for stamp {stamp}"
    assert (msg.height, msg.width, msg.encoding) == (*shape, "32FC1")
    np.testing.assert_allclose(depth_array(msg), focus_m, rtol=1e-5)


# ============================================================================= over DDS


def test_depth_confidence_and_points_carry_the_image_header(client):
    stamp = client.frame(focus_m=2.0)
    depth = client.output("depth", stamp)
    assert depth is not None
    for topic in ("depth", "depth/camera_info", "confidence", "points"):
        msg = client.output(topic, stamp)
        assert msg is not None, f"nothing on {topic}"
        assert rm.stamp_to_ns(msg.header.stamp) == stamp and msg.header.frame_id == FRAME_ID, topic
    assert (depth.height, depth.width, depth.encoding, depth.step) == (H, W, "32FC1", 4 * W)
    conf = client.output("confidence", stamp)
    assert (conf.height, conf.width, conf.encoding) == (H, W, "32FC1")
    np.testing.assert_allclose(depth_array(conf), 0.5, atol=1e-6)
    info = client.output("depth/camera_info", stamp)
    np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), K)
    assert (info.width, info.height) == (W, H)


def test_plane_gives_flat_points_at_the_depth(client):
    stamp = client.frame(focus_m=1.25)
    assert_plane(client, stamp, 1.25)
    cloud = client.output("points", stamp)
    h, w = math.ceil(H / DECIMATION), math.ceil(W / DECIMATION)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (h, w, 16, 16 * w)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"] and cloud.is_dense
    points = np.frombuffer(bytes(cloud.data), "<f4").reshape(h, w, 4)
    np.testing.assert_allclose(points[..., 2], 1.25, rtol=1e-5)  # constant z = the depth
    u = np.arange(0, W, DECIMATION)
    v = np.arange(0, H, DECIMATION)
    x = np.broadcast_to((u[None, :] - K[0, 2]) * 1.25 / K[0, 0], (h, w))
    y = np.broadcast_to((v[:, None] - K[1, 2]) * 1.25 / K[1, 1], (h, w))
    np.testing.assert_allclose(points[..., 0], x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points[..., 1], y, rtol=1e-5, atol=1e-6)


def test_lens_state_is_interpolated_at_the_image_stamp(client):
    before, stamp = client.stamp_ns, client.next_stamp()
    client.next_stamp()
    after = client.stamp_ns  # lens samples only at stamp - 1 period and stamp + 1 period
    client.send_lens(before, focus_m=1.0)
    client.send_lens(after, focus_m=4.0)
    client.send_info(stamp)
    client.spin_until(lambda: False, 0.1)
    client.send_image(stamp)
    # Halfway in time, linear in dioptres: 1 / ((1/1 + 1/4) / 2) = 1.6 m.
    assert_plane(client, stamp, 1.6)


def test_backwards_stamp_resets_the_state(client):
    client.frame()
    resets = int(client.diagnostics()["state_resets"])
    client.stamp_ns -= 10 * NS  # e.g. a bag replayed from its start
    stamp = client.frame(focus_m=3.0)
    assert_plane(client, stamp, 3.0)
    diag = client.diagnostics()
    assert int(diag["state_resets"]) == resets + 1 and diag["last_reset_reason"] == "time_backwards"
    assert int(diag["stamp_reversals"]) >= 1


def test_reset_service_resets_once(client):
    from std_srvs.srv import Trigger

    assert client.reset.wait_for_service(timeout_sec=5.0)
    resets = int(client.diagnostics()["state_resets"])
    future = client.reset.call_async(Trigger.Request())
    assert client.spin_until(future.done, 5.0) and future.result().success
    stamp = client.frame(focus_m=2.5)
    assert_plane(client, stamp, 2.5)
    diag = client.diagnostics()
    assert int(diag["state_resets"]) == resets + 1 and diag["last_reset_reason"] == "request"


def bad_image(kind: str):
    from sensor_msgs.msg import Image

    good = rm.image_msg(np.zeros((H, W, 3), np.uint8), "rgb8", None)
    if kind == "encoding":
        good.encoding = "yuv422"
    elif kind == "short":
        good.data = bytes(H * W * 3 - 10)
    elif kind == "zero":
        return Image(height=0, width=0, encoding="rgb8", step=0, data=b"")
    return good


@pytest.mark.parametrize("kind, logged", [
    ("encoding", "unsupported image encoding 'yuv422'"),
    ("short", "fewer than height * step"),
    ("zero", "zero size (0x0)"),
])
def test_bad_image_is_skipped_and_the_next_frame_works(client, node_log, kind, logged):
    bad = client.frame(image=bad_image(kind))
    client.spin_until(lambda: False, 0.15)
    good = client.frame(focus_m=1.5)
    assert_plane(client, good, 1.5)
    assert client.output("depth", bad, timeout=0.0) is None
    assert log_has(node_log, logged)


def test_uncalibrated_camera_info_is_ignored(client, node_log):
    stamp = client.next_stamp()
    client.send_lens(stamp, 2.0)
    client.send_info(stamp, k=np.zeros(9))
    client.spin_until(lambda: False, 0.1)
    client.send_image(stamp)
    assert_plane(client, stamp, 2.0)  # the last good K still applies
    assert log_has(node_log, "camera_info K is all zeros (uncalibrated camera); camera_info ignored")
    good = client.frame(focus_m=1.75)
    assert_plane(client, good, 1.75)


@pytest.mark.parametrize("positions, logged", [
    ([0.0, 2.0, 0.008], "lens focus_distance must be finite and > 0 m, got 0.0"),
    ([-2.0, 2.0, 0.008], "lens focus_distance must be finite and > 0 m, got -2.0"),
    ([math.nan, 2.0, 0.008], "lens focus_distance must be finite and > 0 m, got nan"),
    ([2.0, 0.0, 0.008], "lens f_number must be finite and > 0, got 0.0"),
])
def test_bad_lens_sample_is_ignored(client, node_log, positions, logged):
    client.stamp_ns += 10 * PERIOD_NS  # so no older good sample is within tolerance of the next frame
    stamp = client.next_stamp()
    client.send_lens(stamp, positions=positions)
    client.send_info(stamp)
    client.spin_until(lambda: False, 0.1)
    client.send_image(stamp)
    assert log_has(node_log, logged)
    assert log_has(node_log, skipped_for_lens(stamp))  # its only lens sample was refused
    good = client.frame(focus_m=0.75)
    assert_plane(client, good, 0.75)
    assert client.output("depth", stamp, timeout=0.0) is None


def test_missing_lens_samples_skip_frames_until_they_return(client, node_log):
    skipped = int(client.diagnostics()["skipped_frames"])
    client.stamp_ns += 10 * PERIOD_NS
    silent = []
    for _ in range(3):  # one at a time: while the node waits lens_wait_s, a newer image would replace it
        silent.append(client.frame(lens=False))
        assert log_has(node_log, skipped_for_lens(silent[-1]))
    assert log_has(node_log, "no lens state within lens_tolerance_s = 0.05 s")
    good = client.frame(focus_m=2.25)
    assert_plane(client, good, 2.25)
    assert all(client.output("depth", s, timeout=0.0) is None for s in silent)
    diag = client.diagnostics()
    assert int(diag["skipped_frames"]) == skipped + 3 and diag["last_skip_reason"] == "no_lens"


def test_image_size_change_resets_and_follows_camera_info(client, node_log):
    small_k = K.copy()
    small_k[:2] /= 2
    mismatch = client.frame(width=W // 2, height=H // 2, info=False)  # camera_info still says 64x48
    # Wait for the node to reject it before the matching camera_info goes out (a loaded machine may lag).
    assert log_has(node_log, f"camera_info is for {W}x{H} but the image is {W // 2}x{H // 2}", timeout=10.0)
    stamp = client.frame(focus_m=1.1, width=W // 2, height=H // 2, k=small_k)
    assert_plane(client, stamp, 1.1, shape=(H // 2, W // 2))
    assert client.output("depth", mismatch, timeout=0.0) is None
    assert client.diagnostics()["last_reset_reason"] == "resolution"
    back = client.frame(focus_m=1.9)
    assert_plane(client, back, 1.9)


def test_focus_from_camera_ros_diagnostics(plane_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log = tmp_path / "node.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", "--params-file", str(PARAMS_YAML),
             "-p", f"model_path:={plane_model}", "-p", "backend:=onnxruntime", "-p", "lens_source:=diagnostics",
             "-p", "static_f_number:=2.0", "-p", "static_focal_length_m:=0.008", "-p", "lens_wait_s:=0.5"],
            env=ros_env(DIAG_DOMAIN), stdout=out, stderr=subprocess.STDOUT)
    c = Client(DIAG_DOMAIN)
    try:
        assert c.spin_until(lambda: c.image_pub.get_subscription_count() > 0 and c.diag_pub.get_subscription_count()
                            > 1 and c.subs[0].get_publisher_count() > 0, 30.0), log.read_text()
        c.spin_until(lambda: False, 0.3)
        before, stamp = c.stamp_ns, c.next_stamp()
        c.send_lens_position(before, 1.0)
        c.send_lens_position(c.next_stamp(), 0.5)
        c.send_info(stamp)
        c.spin_until(lambda: False, 0.1)
        c.send_image(stamp)
        assert_plane(c, stamp, 1 / 0.75)  # halfway between 1.0 and 0.5 dioptres
        assert proc.poll() is None and "Traceback" not in log.read_text()
    finally:
        c.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_node_log_is_clean(client, node_log):
    text = node_log.read_text()
    assert "Traceback" not in text and "XMLPARSER" not in text, text
    assert "backend onnxruntime, lens from joint_state, points xyzrgb every 2 px" in text


# ============================================================================= synthetic camera, dfd-depth run


def test_synthetic_camera_publishes_frames_like_a_driver(monkeypatch, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, JointState

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    c = Client(CAMERA_DOMAIN)
    got: dict[str, list] = {"image_raw": [], "camera_info": [], "lens_state": [], "depth_gt": []}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    subs = [c.node.create_subscription(t, f"/camera/{name}", lambda m, name=name: got[name].append(m), qos)
            for name, t in (("image_raw", Image), ("camera_info", CameraInfo), ("lens_state", JointState),
                            ("depth_gt", Image))]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dfd_depth_ros.nodes.synthetic_camera", "--ros-args", "-r", "__ns:=/camera",
         "-p", "width:=40", "-p", "height:=30", "-p", "num_frames:=2", "-p", "fps:=10.0", "-p", "max_frames:=4",
         "-p", "frame_id:=cam_opt"],
        env=ros_env(CAMERA_DOMAIN), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert c.spin_until(lambda: all(s.get_publisher_count() > 0 for s in subs), 60.0), "camera did not come up"
        c.spin_until(lambda: proc.poll() is not None and all(len(v) >= 3 for v in got.values()), 30.0)
        assert proc.wait(timeout=10) == 0, proc.stdout.read()
    finally:
        c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stamps = {name: [rm.stamp_to_ns(m.header.stamp) for m in msgs] for name, msgs in got.items()}
    images = stamps["image_raw"]
    assert len(images) >= 3 and all(b - a == round(1e9 / 10.0) for a, b in zip(images, images[1:]))
    for name in ("camera_info", "lens_state", "depth_gt"):
        assert set(images) <= set(stamps[name]), name  # every frame's four messages share its stamp
    assert all(m.header.frame_id == "cam_opt" for msgs in got.values() for m in msgs)
    image, depth, info = got["image_raw"][0], got["depth_gt"][0], got["camera_info"][0]
    assert (image.encoding, image.width, image.height, depth.encoding) == ("rgb8", 40, 30, "32FC1")
    assert (info.width, info.height) == (40, 30) and rm.camera_info_to_K(info)[0, 0] > 0
    lens = rm.joint_state_to_lens(got["lens_state"][0])
    assert list(got["lens_state"][0].name) == list(rm.LENS_JOINTS) and lens.focus_distance_m > 0
    assert np.isfinite(depth_array(depth)).any()


def test_run_command_drives_synthetic_camera_and_depth_node(plane_model, tmp_path):
    import yaml

    from dfd_depth_ros import cli

    params = yaml.safe_load(PARAMS_YAML.read_text())
    params["/**/synthetic_camera"]["ros__parameters"].update(width=64, height=48, num_frames=3, fps=5.0)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(params))
    params = tmp_path / "run.yaml"
    args = ["run", "--params-file", str(params), "--model", str(plane_model), "--backend", "onnxruntime",
            "--synthetic", "--max-frames", "5"]
    if "run" in cli.COMMANDS:
        cmd = [sys.executable, "-m", "dfd_depth_ros.cli", *args]
    else:  # until cli.COMMANDS lists "run"
        code = ("import argparse, sys; from dfd_depth_ros.commands import run; p = argparse.ArgumentParser(); "
                "run.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
        cmd = [sys.executable, "-c", code, *args]
    env = ros_env(RUN_DOMAIN)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE")  # the command sets it itself
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("depth_node:"))
    frames_in, frames_out = (int(w) for w in re.findall(r"(\d+) (?:frames in|depth images out)", line))
    assert frames_in >= 4 and frames_out == frames_in, line
    assert "Traceback" not in proc.stderr and "XMLPARSER" not in proc.stderr


def test_run_command_refuses_a_missing_params_file(tmp_path):
    import argparse

    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.commands import run

    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    args = parser.parse_args(["run", "--params-file", str(tmp_path / "missing.yaml")])
    with pytest.raises(CommandError, match="missing.yaml does not exist"):
        args.func(args)
