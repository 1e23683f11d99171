"""depth_node's parameters and its ROS-free helpers: every parameter is described, ranged and in the shipped
YAML, dynamic ones are writable and the rest read-only; bad combinations and a bad model stop start-up with one
line; at run time a dynamic parameter takes effect on the next frame (max_depth_m lowered: the plane turns
+Inf, too far) and a bad value is refused with the reason; confidence is published only while subscribed.

The run-time tests use a DepthNode in this process (its callbacks called directly, its publishers recorded);
the start-up tests run the node as a process.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from depth_node_harness import (
    FRAME_ID,
    NS,
    PARAMS_YAML,
    PERIOD_NS,
    T0_NS,
    H,
    K,
    W,
    depth_array,
    params_args,
    run_node,
)

from dfd_depth_ros.msgs import convert as rm
from dfd_depth_ros.nodes.depth_node import (
    DepthNodeConfig,
    StartupError,
    StreamStats,
    Throttle,
    decimated_rgb,
    parameter_descriptor,
)
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.pointcloud import depth_to_points

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")

DOMAIN = 146  # start-up processes and the in-process node
DYNAMIC = {"lens_tolerance_s", "lens_wait_s", "max_gap_periods", "min_depth_m", "max_depth_m", "min_confidence",
           "points_format", "points_decimation", "points_min_range_m", "points_max_range_m", "log_throttle_s",
           "points_max_rate_hz"}


# ============================================================================= ROS-free


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
            assert isinstance(desc, ParameterDescriptor) and desc.description
            assert desc.read_only == (cls is SyntheticCameraConfig or f.name not in DYNAMIC), f.name
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


def test_decimated_colours_line_up_with_decimated_points():
    rgb = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
    xyz = depth_to_points(np.ones((7, 9), np.float32), K, decimation=3)
    cols = decimated_rgb(rgb, 3, xyz.shape[:2])
    assert cols.shape == (3, 3, 3)
    np.testing.assert_array_equal(cols[1, 2], rgb[3, 6])


# ============================================================================= start-up (a process)


def one_error_line(proc) -> str:
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
def test_bad_start_up_stops_with_one_line(args, match):
    line = one_error_line(run_node(["--params-file", str(PARAMS_YAML), "-p", "backend:=onnxruntime", *args], DOMAIN))
    assert re.search(match, line), line


def test_corrupt_model_stops_with_one_line(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"not an onnx model" * 100)
    line = one_error_line(run_node(params_args(bad, backend="onnxruntime"), DOMAIN))
    assert "cannot load the model" in line and "corrupt.onnx" in line


# ============================================================================= run time (a node in this process)


class Recorder:
    """Stands in for a publisher's publish(): keeps what the node publishes."""

    def __init__(self):
        self.messages = []

    def __call__(self, msg):
        self.messages.append(msg)


@pytest.fixture(scope="module")
def local_node(plane_model):
    """A DepthNode in this process (plane model, onnxruntime), its publishes recorded, and a second node to
    subscribe with; yields (node, helper node, recorders by topic)."""
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from dfd_depth_ros.nodes.depth_node import DepthNode

    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    overrides = [Parameter("model_path", value=str(plane_model)), Parameter("backend", value="onnxruntime"),
                 Parameter("lens_wait_s", value=0.0), Parameter("log_throttle_s", value=0.0)]
    node = DepthNode(context=ctx, parameter_overrides=overrides)
    helper = rclpy.create_node("dfd_test_subscriber", context=ctx)
    recorders = {}
    for name in ("depth_pub", "info_pub", "confidence_pub", "confidence_info_pub", "points_pub"):
        recorders[name] = Recorder()
        getattr(node, name).publish = recorders[name]
    yield node, helper, recorders
    helper.destroy_node()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


_stamp = [T0_NS]


def feed_frame(node, focus_m: float) -> int:
    """Camera info, lens sample and image at one new stamp, straight into the node's callbacks."""
    from sensor_msgs.msg import JointState

    _stamp[0] += PERIOD_NS
    header = rm.make_header(_stamp[0], FRAME_ID)
    node._on_camera_info(rm.camera_info_msg(K, W, H, header))
    node._on_joint_state(JointState(header=header, name=list(rm.LENS_JOINTS), position=[focus_m, 2.0, 0.008]))
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    image = rm.image_msg(rgb, "rgb8", header)
    node._on_image(image)
    return _stamp[0]


def published_depth(recorders, stamp_ns: int) -> np.ndarray:
    msg = recorders["depth_pub"].messages[-1]
    assert rm.stamp_to_ns(msg.header.stamp) == stamp_ns
    return depth_array(msg)


def set_params(node, **values):
    """Set ``values`` together (as ``ros2 param load`` or a SetParametersAtomically call does); one result."""
    from rclpy.parameter import Parameter

    return node.set_parameters_atomically([Parameter(name, value=value) for name, value in values.items()])


def test_the_model_is_loaded_when_the_node_starts(local_node):
    node, _, recorders = local_node
    assert node.stream.backend_name == "onnxruntime" and node.stream.frames_processed == 0  # before any frame


def test_lowering_max_depth_makes_the_plane_too_far(local_node):
    node, _, recorders = local_node
    np.testing.assert_allclose(published_depth(recorders, feed_frame(node, 2.0)), 2.0, rtol=1e-5)
    result = set_params(node, max_depth_m=1.5)
    assert result.successful and node.get_parameter("max_depth_m").value == 1.5
    depth = published_depth(recorders, feed_frame(node, 2.0))
    assert np.all(depth == np.inf)  # REP 117: known to be beyond max_depth_m
    assert not set_params(node, min_depth_m=25.0).successful  # alone: not below max_depth_m 1.5
    assert set_params(node, min_depth_m=1.0, max_depth_m=20.0).successful  # together: checked together
    depth = published_depth(recorders, feed_frame(node, 0.5))
    assert np.all(depth == -np.inf)  # nearer than min_depth_m
    assert set_params(node, min_depth_m=0.1).successful
    np.testing.assert_allclose(published_depth(recorders, feed_frame(node, 0.5)), 0.5, rtol=1e-5)


@pytest.mark.parametrize("values, reason", [
    ({"min_depth_m": 30.0}, r"min_depth_m \(30.0\) must be smaller than max_depth_m \(20.0\)"),
    ({"points_min_range_m": 25.0}, "points_min_range_m .* smaller"),
    ({"points_format": "xyzi"}, "choose one of xyz, xyzrgb"),
    ({"max_depth_m": -1.0}, "range"),  # rclpy's range check
    ({"backend": "torch"}, "read-only"),
    ({"lens_tolerance_s": 1}, "type"),  # an integer for a double
])
def test_bad_values_are_refused_with_the_reason(local_node, values, reason):
    node, _, recorders = local_node
    before = node.cfg
    result = set_params(node, **values)
    assert not result.successful and re.search(reason, result.reason, re.IGNORECASE), result.reason
    assert node.cfg is before
    np.testing.assert_allclose(published_depth(recorders, feed_frame(node, 2.0)), 2.0, rtol=1e-5)


def test_dynamic_settings_reach_the_objects_that_use_them(local_node):
    node, _, _ = local_node
    assert set_params(node, min_confidence=0.25, max_gap_periods=8.0, lens_tolerance_s=0.2,
                      log_throttle_s=2.0).successful
    assert (node.stream.min_confidence, node.stream.max_gap_periods, node.stats.max_gap_periods) == (0.25, 8.0, 8.0)
    assert node.lens_history.tolerance_s == 0.2 and node._throttle.period_s == 2.0
    assert set_params(node, min_confidence=0.0, max_gap_periods=5.0, lens_tolerance_s=0.05).successful


def test_confidence_and_points_are_published_only_while_subscribed(local_node):
    from sensor_msgs.msg import Image, PointCloud2

    node, helper, recorders = local_node
    counts = {name: len(recorders[name].messages) for name in ("confidence_pub", "confidence_info_pub", "points_pub")}
    feed_frame(node, 2.0)
    assert {name: len(recorders[name].messages) for name in counts} == counts  # nobody listens: nothing built
    subs = [helper.create_subscription(Image, "confidence/image", lambda m: None, 1),
            helper.create_subscription(PointCloud2, "points", lambda m: None, 1)]
    try:
        executor_free_wait(lambda: node.confidence_pub.get_subscription_count() > 0
                           and node.points_pub.get_subscription_count() > 0)
        stamp = feed_frame(node, 2.0)
        conf, info = recorders["confidence_pub"].messages[-1], recorders["confidence_info_pub"].messages[-1]
        assert rm.stamp_to_ns(conf.header.stamp) == stamp == rm.stamp_to_ns(info.header.stamp)
        np.testing.assert_allclose(depth_array(conf), 0.5, atol=1e-6)
        assert len(recorders["points_pub"].messages) == counts["points_pub"] + 1
        assert set_params(node, points_format="xyzrgb", points_decimation=4).successful
        feed_frame(node, 2.0)
        cloud = recorders["points_pub"].messages[-1]
        assert (cloud.height, cloud.width) == (math.ceil(H / 4), math.ceil(W / 4))
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    finally:
        for sub in subs:
            helper.destroy_subscription(sub)
        set_params(node, points_format="xyz", points_decimation=1)


def executor_free_wait(done, timeout: float = 10.0) -> None:
    """Wait for DDS matching inside this process (no spinning needed for subscription counts)."""
    import time

    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "the subscriptions never matched"
        time.sleep(0.05)
