"""depth_node over real DDS, its outputs: depth/image, depth/camera_info, confidence/image (+ camera_info) and
points carry the image's header; a fronto-parallel plane comes back flat at the right depth; the lens state is
interpolated at the image stamp; the camera_info of the image's stamp is the one republished; a dynamic
parameter set over DDS changes the next frame; the static-lens / xyz-points mode and the camera_ros
/diagnostics lens source (filtered by hardware_id) work; `dfd-depth run --synthetic` drives the whole graph.

See depth_node_harness.py for the node process, the client and the plane model.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest
from depth_node_harness import (
    DECIMATION,
    FRAME_ID,
    PARAMS_YAML,
    Client,
    H,
    K,
    W,
    assert_plane,
    depth_array,
    node_process,
    params_args,
    ros_env,
)

from dfd_depth_ros.msgs import convert as rm

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")

DOMAIN = 142  # this module's node and client
RUN_DOMAIN = 143  # the `dfd-depth run` process
DIAG_DOMAIN = 144  # a node that takes its focus from /diagnostics
CAMERA_DOMAIN = 145  # the synthetic camera on its own
STATIC_DOMAIN = 147  # a node with a static lens and xyz points



# ============================================================================= over DDS


def test_depth_confidence_and_points_carry_the_image_header(client):
    stamp = client.frame(focus_m=2.0)
    depth = client.output("depth/image", stamp)
    assert depth is not None
    for topic in ("depth/image", "depth/camera_info", "confidence/image", "confidence/camera_info", "points"):
        msg = client.output(topic, stamp)
        assert msg is not None, f"nothing on {topic}"
        assert rm.stamp_to_ns(msg.header.stamp) == stamp and msg.header.frame_id == FRAME_ID, topic
    assert (depth.height, depth.width, depth.encoding, depth.step) == (H, W, "32FC1", 4 * W)
    conf = client.output("confidence/image", stamp)
    assert (conf.height, conf.width, conf.encoding) == (H, W, "32FC1")
    np.testing.assert_allclose(depth_array(conf), 0.5, atol=1e-6)
    for topic in ("depth/camera_info", "confidence/camera_info"):  # each image beside its own camera_info
        info = client.output(topic, stamp)
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



def test_camera_info_of_the_image_stamp_is_the_one_used(client):
    """camera_info is matched by stamp, as bags are: a newer camera_info does not apply to an older image."""
    wide = K.copy()
    wide[0, 0] = wide[1, 1] = 90.0
    first, second = client.next_stamp(), client.next_stamp()
    client.send_lens(first, 2.0)
    client.send_info(first)  # K
    client.send_info(second, k=wide)  # a newer, different calibration
    client.spin_until(lambda: False, 0.25)
    client.send_image(first)
    info = client.output("depth/camera_info", first)
    assert info is not None, "no depth/camera_info"
    np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), K)
    assert_plane(client, first, 2.0)
    client.send_lens(second, 2.0)
    client.spin_until(lambda: False, 0.1)
    client.send_image(second)
    np.testing.assert_array_equal(np.asarray(client.output("depth/camera_info", second).k).reshape(3, 3), wide)
    client.frame()  # back to K, so that later tests see no intrinsics change


def test_max_depth_set_over_dds_applies_to_the_next_frame(client):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    params = AsyncParameterClient(client.node, "/depth_node")
    assert params.wait_for_services(timeout_sec=10.0)

    def set_max_depth(value):
        future = params.set_parameters([Parameter("max_depth_m", value=value)])
        assert client.spin_until(future.done, 5.0)
        return future.result().results[0]

    assert set_max_depth(1.0).successful
    try:
        stamp = client.frame(focus_m=2.0)
        depth = client.output("depth/image", stamp)
        assert depth is not None and np.all(depth_array(depth) == np.inf)  # too far: +Inf (REP 117)
        cloud = client.output("points", stamp)
        xyz = np.frombuffer(bytes(cloud.data), "<f4").reshape(cloud.height, cloud.width, -1)[..., :3]
        assert np.isnan(xyz).all()  # and no points
        refused = set_max_depth(0.05)  # below min_depth_m 0.1
        assert not refused.successful and "must be smaller than max_depth_m" in refused.reason
    finally:
        assert set_max_depth(20.0).successful
    assert_plane(client, client.frame(focus_m=2.0), 2.0)


def test_focus_from_camera_ros_diagnostics_of_one_hardware_id(plane_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log = tmp_path / "node.log"
    args = params_args(plane_model, backend="onnxruntime", lens_source="diagnostics", static_f_number=2.0,
                       static_focal_length_m=0.008, lens_wait_s=0.5, lens_hardware_id="cam_left")
    with node_process(args, DIAG_DOMAIN, log) as proc:
        c = Client(DIAG_DOMAIN, topics=("depth/image",))
        try:
            assert c.spin_until(lambda: c.image_pub.get_subscription_count() > 0 and c.diag_pub.get_subscription_count()
                                > 0 and c.subs[0].get_publisher_count() > 0, 30.0), log.read_text()
            c.spin_until(lambda: False, 0.3)
            before, stamp, after = c.stamp_ns, c.next_stamp(), c.next_stamp()
            c.send_lens_position(before, 1.0, hardware_id="cam_left")
            c.send_lens_position(before, 4.0, hardware_id="cam_right")  # another camera, same stamp: ignored
            c.send_lens_position(after, 0.5, hardware_id="cam_left")
            c.send_info(stamp)
            c.spin_until(lambda: False, 0.1)
            c.send_image(stamp)
            assert_plane(c, stamp, 1 / 0.75)  # halfway between 1.0 and 0.5 dioptres
            assert proc.poll() is None and "Traceback" not in log.read_text()
        finally:
            c.close()


def test_static_lens_and_xyz_points(plane_model, tmp_path, monkeypatch):
    """lens_source static: no lens topic at all, every frame at the static focus; points_format xyz."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log = tmp_path / "node.log"
    args = params_args(plane_model, backend="onnxruntime", lens_source="static", static_focus_distance_m=1.4,
                       static_f_number=2.0, static_focal_length_m=0.008, points_format="xyz")
    with node_process(args, STATIC_DOMAIN, log) as proc:
        c = Client(STATIC_DOMAIN, topics=("depth/image", "points"))
        try:
            assert c.connected(lens=False), log.read_text()
            c.spin_until(lambda: False, 0.5)
            assert c.lens_pub.get_subscription_count() == 0  # static: the node does not listen for lens samples
            stamps = [c.frame(focus_m=5.0) for _ in range(2)]  # a lens sample on the topic changes nothing
            for stamp in stamps:
                assert_plane(c, stamp, 1.4)
            cloud = c.output("points", stamps[-1])
            assert cloud is not None and [f.name for f in cloud.fields] == ["x", "y", "z"]
            assert (cloud.height, cloud.width, cloud.point_step) == (H, W, 12)
            points = np.frombuffer(bytes(cloud.data), "<f4").reshape(H, W, 3)
            np.testing.assert_allclose(points[..., 2], 1.4, rtol=1e-5)
            assert proc.poll() is None and "Traceback" not in log.read_text()
            assert "lens from static" in log.read_text()
        finally:
            c.close()


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
    assert "run" in cli.COMMANDS
    cmd = [sys.executable, "-m", "dfd_depth_ros.cli", *args]
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
