"""ros_msgs: camera images of every supported layout decode to the right RGB pixels, bad messages fail
with one clear MessageError, lens state is read from JointState and camera_ros diagnostics, and the
outputs (32FC1 depth, PointCloud2) carry the header and the numbers they were built from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.msgs import convert as rm
from dfd_depth_ros.msgs.image import array_to_image_fields, fields_to_rclpy, image_to_array
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.pointcloud import depth_to_points, pointcloud2_fields

pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages (ros-sensor-msgs)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402

H, W = 5, 7
RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
K = intrinsics_matrix(50.0, 51.0, 3.2, 2.1)
STAMP_NS = 1_700_000_123_456_789_012


def image(arr, encoding, step=None, bigendian=False) -> Image:
    return fields_to_rclpy(array_to_image_fields(arr, encoding, step=step, is_bigendian=bigendian))


# ----------------------------------------------------------------------------- image in


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_decode_to_the_same_rgb(encoding, padding):
    arr = {"rgb8": RGB, "bgr8": RGB[:, :, ::-1],
           "rgba8": np.dstack([RGB, np.full((H, W), 9, np.uint8)]),
           "bgra8": np.dstack([RGB[:, :, ::-1], np.full((H, W), 9, np.uint8)])}[encoding]
    step = arr.shape[2] * W + padding
    out = rm.image_to_rgb(image(arr, encoding, step=step))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono_encodings_repeat_into_three_channels(bigendian):
    mono8 = RGB[:, :, 0]
    np.testing.assert_array_equal(rm.image_to_rgb(image(mono8, "mono8", step=W + 3)), np.dstack([mono8] * 3))
    mono16 = (mono8.astype(np.uint16) * 257)  # full 16-bit scale of the same values
    out = rm.image_to_rgb(image(mono16, "mono16", step=2 * W + 2, bigendian=bigendian))
    np.testing.assert_array_equal(out, np.dstack([mono8] * 3))


@pytest.mark.parametrize("encoding", ["yuv422", "32FC1", "16UC1", "bayer_rggb8", ""])
def test_unsupported_encoding_is_named(encoding):
    msg = Image(height=H, width=W, encoding=encoding, step=W * 4, data=bytes(H * W * 4))
    with pytest.raises(rm.MessageError, match="unsupported image encoding") as info:
        rm.image_to_rgb(msg)
    assert repr(encoding) in str(info.value) and "rgb8" in str(info.value)


def test_short_data_zero_size_and_small_step_are_refused():
    short = image(RGB, "rgb8")
    short.data = bytes(H * W * 3 - 1)
    with pytest.raises(rm.MessageError, match="fewer than height \\* step"):
        rm.image_to_rgb(short)
    with pytest.raises(rm.MessageError, match="zero size"):
        rm.image_to_rgb(Image(height=0, width=0, encoding="rgb8", step=0, data=b""))
    with pytest.raises(rm.MessageError, match="step"):
        rm.image_to_rgb(Image(height=H, width=W, encoding="rgb8", step=W, data=bytes(H * W * 3)))


# ----------------------------------------------------------------------------- camera_info


def test_camera_info_round_trip_and_restamp():
    header = rm.make_header(STAMP_NS, "cam")
    info = rm.camera_info_msg(K, W, H, header)
    np.testing.assert_array_equal(rm.camera_info_to_K(info), K)
    assert rm.camera_info_size(info) == (W, H)
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, :3], K)
    other = rm.make_header(STAMP_NS + 5, "depth_frame")
    moved = rm.restamped_camera_info(info, other)
    assert moved.header == other and info.header == header  # the original is untouched
    np.testing.assert_array_equal(moved.k, info.k)
    assert (moved.width, moved.height, moved.distortion_model) == (W, H, "plumb_bob")


@pytest.mark.parametrize("k, match", [
    ([0.0] * 9, "all zeros"),
    ([0.0, 0, 3, 0, 50, 2, 0, 0, 1], "fx=0.0"),
    ([50.0, 0, 3, 0, -5, 2, 0, 0, 1], "fy=-5.0"),
    ([math.nan, 0, 3, 0, 50, 2, 0, 0, 1], "non-finite"),
    ([1e42, 0, 3, 0, 50, 2, 0, 0, 1], "fx=1e\\+42"),  # absurd but finite: overflowed fx * D in float32
    ([50.0, 0, 3, 0, 2e6, 2, 0, 0, 1], "below 1e\\+06 px"),
    ([50.0, 0, 3e7, 0, 50, 2, 0, 0, 1], "cx=30000000.0"),
])
def test_unusable_intrinsics_are_refused(k, match):
    """The K rule is depth_stream.check_intrinsics' (the estimator refuses the same K), said about camera_info."""
    from dfd_depth_ros.depth_stream import check_intrinsics

    with pytest.raises(rm.MessageError, match="^camera_info K .*" + match):
        rm.camera_info_to_K(CameraInfo(k=k))
    with pytest.raises(ValueError, match=match):
        check_intrinsics(k)


# ----------------------------------------------------------------------------- lens state


def joints(names, positions) -> JointState:
    return JointState(name=names, position=[float(p) for p in positions])


def test_joint_state_any_order_extra_joints_ignored():
    msg = joints(["zoom_motor", "focal_length", "focus_distance", "f_number"], [7.0, 0.025, 1.5, 2.8])
    assert rm.joint_state_to_lens(msg) == LensState(1.5, 2.8, 0.025)


def test_joint_state_round_trip_in_contract_layout():
    lens = LensState(0.8, 4.0, 0.012)
    msg = rm.joint_state_msg(lens, rm.make_header(STAMP_NS, "cam"))
    assert list(msg.name) == ["focus_distance", "f_number", "focal_length"]
    assert rm.joint_state_to_lens(msg) == lens


def test_focus_in_diopters_and_fallbacks():
    lens = rm.joint_state_to_lens(joints(["focus_diopters", "f_number", "focal_length"], [2.0, 2.0, 0.01]))
    assert lens.focus_distance_m == pytest.approx(0.5)
    at_infinity = rm.joint_state_to_lens(joints(["focus_diopters", "f_number", "focal_length"], [0.0, 2.0, 0.01]))
    assert at_infinity.focus_distance_m == rm.FOCUS_AT_INFINITY_M
    # +inf metres is the same infinity as 0 dioptres: accepted, mapped to the same value
    assert rm.joint_state_to_lens(joints(["focus_distance", "f_number", "focal_length"], [math.inf, 2.0, 0.01])) \
        == at_infinity
    written = rm.joint_state_msg(at_infinity, rm.make_header(STAMP_NS, "cam"))  # what our bags store for infinity
    assert rm.joint_state_to_lens(written) == at_infinity
    only_focus = joints(["focus_distance"], [3.0])
    assert rm.joint_state_to_lens(only_focus, f_number=5.6, focal_length_m=0.05) == LensState(3.0, 5.6, 0.05)
    with pytest.raises(rm.MessageError, match="no f_number joint"):
        rm.joint_state_to_lens(only_focus)


FOCUS_RANGE = r"focus_distance must be in \[0.001, 1e\+06\] m or \+inf"
LENS3 = ["focus_distance", "f_number", "focal_length"]
DIOPTERS3 = ["focus_diopters", "f_number", "focal_length"]


@pytest.mark.parametrize("names, positions, match", [
    (LENS3, [0.0, 2.0, 0.01], FOCUS_RANGE),
    (LENS3, [-1.0, 2.0, 0.01], FOCUS_RANGE),
    (LENS3, [math.nan, 2.0, 0.01], FOCUS_RANGE),
    (LENS3, [1e-39, 2.0, 0.01], FOCUS_RANGE),  # absurd but finite: overflowed 1/focus in float32
    (LENS3, [5e-324, 2.0, 0.01], FOCUS_RANGE),
    (LENS3, [1e7, 2.0, 0.01], FOCUS_RANGE),  # beyond the project's infinity: send +inf or 0 dioptres
    (LENS3, [-math.inf, 2.0, 0.01], FOCUS_RANGE),
    (LENS3, [1.0, 0.0, 0.01], r"f_number must be in \[0.5, 64\]"),
    (LENS3, [1.0, 1e-40, 0.01], r"f_number must be in \[0.5, 64\]"),
    (LENS3, [1.0, 100.0, 0.01], r"f_number must be in \[0.5, 64\]"),
    (LENS3, [1.0, 2.0, math.inf], r"focal_length must be in \[0.0001, 10\] m"),
    (LENS3, [1.0, 2.0, 1e37], r"focal_length must be in \[0.0001, 10\] m"),
    (DIOPTERS3, [-0.5, 2.0, 0.01], "dioptres"),
    (DIOPTERS3, [1e39, 2.0, 0.01], r"0 \(infinity\) or in \[1e-06, 1000\] dioptres"),
    (DIOPTERS3, [math.inf, 2.0, 0.01], "dioptres"),
    (["f_number", "focal_length"], [2.0, 0.01], "no focus_distance or focus_diopters"),
    (LENS3, [1.0, 2.0], "3 names but 2 positions"),
    (LENS3, [1.0, 2.0, 0.01, 4.0], "3 names but 4 positions"),
])
def test_bad_lens_samples_are_refused(names, positions, match):
    with pytest.raises(rm.MessageError, match=match):
        rm.joint_state_to_lens(joints(names, positions))


def diagnostics(*pairs, hardware_id: str = "") -> DiagnosticArray:
    return DiagnosticArray(status=[
        DiagnosticStatus(name="other", values=[KeyValue(key="Temperature", value="41")]),
        DiagnosticStatus(name="camera", hardware_id=hardware_id, values=[KeyValue(key=k, value=v) for k, v in pairs]),
    ])


def test_lens_position_of_one_camera_by_hardware_id():
    two = diagnostics(("LensPosition", "2.5"), hardware_id="cam_left")
    two.status.append(DiagnosticStatus(name="camera", hardware_id="cam_right",
                                       values=[KeyValue(key="LensPosition", value="0.5")]))
    assert rm.diagnostics_focus_diopters(two, hardware_id="cam_right") == 0.5
    assert rm.diagnostics_focus_diopters(two, hardware_id="cam_left") == 2.5
    assert rm.diagnostics_focus_diopters(two) == 2.5  # empty: the first status that has the key
    assert rm.diagnostics_focus_diopters(two, hardware_id="cam_rear") is None


def test_lens_position_from_camera_ros_diagnostics():
    assert rm.diagnostics_focus_diopters(diagnostics(("ExposureTime", "9000"), ("LensPosition", "2.5"))) == 2.5
    assert rm.diagnostics_focus_diopters(diagnostics(("LensPosition", "[0.0]"))) == 0.0
    assert rm.diagnostics_focus_diopters(diagnostics(("ExposureTime", "9000"))) is None
    assert rm.diagnostics_focus_diopters(diagnostics(("Focus", "1.0")), key="Focus") == 1.0
    with pytest.raises(rm.MessageError, match="not a number"):
        rm.diagnostics_focus_diopters(diagnostics(("LensPosition", "near")))
    with pytest.raises(rm.MessageError, match="dioptres"):
        rm.diagnostics_focus_diopters(diagnostics(("LensPosition", "nan")))


# ----------------------------------------------------------------------------- outputs


def test_stamps_and_headers():
    assert rm.stamp_to_ns(rm.ns_to_stamp(STAMP_NS)) == STAMP_NS
    header = rm.make_header(STAMP_NS, "cam")
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1_700_000_123, 456_789_012, "cam")


def test_depth_image_is_32fc1_with_nan_kept():
    depth = RNG.uniform(0.2, 5.0, (H, W)).astype(np.float32)
    depth[1, 2] = np.nan
    header = rm.make_header(STAMP_NS, "cam")
    msg = rm.float_image_msg(depth, header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", H, W, 4 * W)
    assert msg.header == header and msg.is_bigendian == 0
    np.testing.assert_array_equal(image_to_array(msg), depth)  # NaN where NaN, every other value exact


def test_published_depth_follows_rep_117():
    depth = np.array([[0.05, 0.1, 2.0], [20.0, 25.0, np.nan]], np.float32)
    out = rm.rep117_depth_m(depth, 0.1, 20.0)
    assert out.dtype == np.float32 and out[0, 0] == -np.inf and out[1, 1] == np.inf  # too close, too far
    assert np.isnan(out[1, 2])  # no estimate stays NaN
    np.testing.assert_array_equal(out[[0, 0, 1], [1, 2, 0]], np.float32([0.1, 2.0, 20.0]))  # the ends are in range
    assert np.isnan(depth[1, 2]) and depth[0, 0] == np.float32(0.05)  # the input is untouched


def test_rep_117_depth_is_finite_exactly_where_the_evaluated_depth_is(tmp_path):
    """The node runs DepthStream with the range open and maps it to +-Inf; eval-bag runs it with the range: the
    finite pixels (what evaluation scores) must be the same pixels with the same values."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from toy_models import affine_channel_model

    from dfd_depth_ros.depth_stream import DepthStream

    model = affine_channel_model(tmp_path / "ramp.onnx", depth_offset_m=0.0, depth_scale_m=30.0, conf_offset=0.0,
                                 conf_scale=1.0)  # depth 0..30 m from red, confidence from green
    options = {"min_depth_m": 0.5, "max_depth_m": 20.0, "min_confidence": 0.3}
    node = DepthStream(model, "onnxruntime", **{**options, "min_depth_m": 0.0, "max_depth_m": math.inf})
    evaluated = DepthStream(model, "onnxruntime", **options)
    rgb = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    lens = LensState(1.0, 2.0, 0.008)
    published = rm.rep117_depth_m(node.process(rgb, K, lens, 0, "cam").depth_m, 0.5, 20.0)
    scored = evaluated.process(rgb, K, lens, 0, "cam").depth_m
    np.testing.assert_array_equal(np.isfinite(published), np.isfinite(scored))
    np.testing.assert_array_equal(published[np.isfinite(published)], scored[np.isfinite(scored)])
    confident = rgb[..., 1] / 255.0 >= 0.3
    assert (published == -np.inf).any() and (published == np.inf).any() and np.isnan(published).any()
    assert np.all(confident[np.isinf(published)]) and not np.any(confident[np.isnan(published)])


def test_pointcloud_message_is_organized_h_by_w():
    depth = np.full((H, W), 2.0, np.float32)
    depth[0, 0] = np.nan
    xyz = depth_to_points(depth, K)
    header = rm.make_header(STAMP_NS, "cam")
    msg = rm.pointcloud2_msg(pointcloud2_fields(xyz, RGB), header)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (H, W, 16, 16 * W)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert msg.header == header and not msg.is_dense and not msg.is_bigendian
    points = np.frombuffer(bytes(msg.data), "<f4").reshape(H, W, 4)
    np.testing.assert_array_equal(points[..., :3], xyz)
    assert points.view("<u4")[2, 3, 3] == (int(RGB[2, 3, 0]) << 16 | int(RGB[2, 3, 1]) << 8 | int(RGB[2, 3, 2]))
