"""rclpy messages <-> numpy for the node: images, intrinsics, lens state, depth, point clouds.

The edge of the ROS node: every function turns one message into arrays (or back) and raises
``MessageError`` (a ValueError) with one readable line when the message cannot be used. Built
on ``msgs.image`` (Image layout, padding, byte order). No ROS import at module import time:
the message classes are imported inside the builders, so the parsers also work on rosbags
messages or any object with the same fields.

Lens state on the wire (shared/specs/bag-contract.md):
    JointState       name = [focus_distance, f_number, focal_length], position = [m, -, m];
                     any order, extra joints ignored; ``focus_diopters`` (1/m) accepted for focus.
    DiagnosticArray  a KeyValue ``LensPosition`` in dioptres (libcamera / camera_ros style); the
                     f-number and focal length come from elsewhere (node parameters).

Every lens value and K is checked against its physical range by ``input_checks`` (the one rule
of the node, bags and DepthStream): absurd but finite values (focus 1e-39 m, f/1e-40, fx = 1e42)
are refused here, before they can reach the network. focus_distance = +inf and focus_diopters = 0
are the same infinity (``FOCUS_AT_INFINITY_M``).
"""

from __future__ import annotations

import numpy as np

from dfd_depth_ros import input_checks
from dfd_depth_ros.input_checks import FOCUS_AT_INFINITY_M, InputRangeError
from dfd_depth_ros.msgs import image as image_codec
from dfd_depth_ros.optics import LensState

__all__ = [
    "FOCUS_AT_INFINITY_M",
    "INPUT_ENCODINGS",
    "LENS_JOINTS",
    "LENS_POSITION_KEY",
    "MessageError",
    "camera_info_msg",
    "camera_info_size",
    "camera_info_stamp_ns",
    "camera_info_to_K",
    "diagnostics_focus_diopters",
    "float_image_msg",
    "focus_m_from_diopters",
    "image_msg",
    "image_to_rgb",
    "joint_state_msg",
    "joint_state_to_lens",
    "make_header",
    "ns_to_stamp",
    "pointcloud2_msg",
    "rep117_depth_m",
    "restamped_camera_info",
    "stamp_to_ns",
]

INPUT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")
"""Image encodings the estimator accepts as camera input."""

LENS_JOINTS = ("focus_distance", "f_number", "focal_length")
"""JointState names of the lens state (bag contract), in the order joint_state_msg writes them: m, -, m.
The one definition: bagio and the nodes import it from here."""
_FOCUS_JOINT, _F_NUMBER_JOINT, _FOCAL_LENGTH_JOINT = LENS_JOINTS
FOCUS_DIOPTERS_JOINT = "focus_diopters"
LENS_POSITION_KEY = "LensPosition"

_NS = 1_000_000_000


class MessageError(ValueError):
    """A message that cannot be used; the text is one line meant for the log."""


# ----------------------------------------------------------------------------- headers


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int):
    """Integer nanoseconds (>= 0) -> builtin_interfaces.msg.Time."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(stamp_ns), _NS)
    return Time(sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str):
    """std_msgs.msg.Header with the given stamp and frame."""
    from std_msgs.msg import Header

    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


# ----------------------------------------------------------------------------- image in


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, the estimator's input.

    Accepts INPUT_ENCODINGS with any row padding and either byte order (mono16 is scaled by
    the fixed factor 255/65535; mono is repeated into three channels). Raises MessageError for
    another encoding, a zero-size image, step < width * bytes_per_pixel or data shorter than
    height * step. The result may be a view of ``msg.data``.
    """
    if msg.encoding not in INPUT_ENCODINGS:
        raise MessageError(f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(INPUT_ENCODINGS)}")
    try:
        return image_codec.to_rgb8(image_codec.image_to_array(msg), msg.encoding)
    except image_codec.ImageDecodeError as exc:
        raise MessageError(f"bad image: {exc}") from None


# ----------------------------------------------------------------------------- camera_info


def camera_info_to_K(msg) -> np.ndarray:
    """sensor_msgs/CameraInfo -> (3, 3) float64 intrinsics K, px.

    Validated by ``input_checks.check_intrinsics`` (the one K rule of the node, bags and the
    estimator): MessageError for an uncalibrated camera (K all zeros), non-finite entries,
    fx or fy outside (0, 1e6) px, or a principal point beyond 1e6 px.
    """
    try:
        return input_checks.check_intrinsics(msg.k)
    except ValueError as exc:
        raise MessageError(f"camera_info {exc}") from None


def camera_info_stamp_ns(msg) -> int:
    """The header stamp of a CameraInfo, integer ns."""
    return stamp_to_ns(msg.header.stamp)


def camera_info_size(msg) -> tuple[int, int]:
    """(width, height) that a CameraInfo describes; (0, 0) when it does not say."""
    return int(msg.width), int(msg.height)


def restamped_camera_info(msg, header):
    """A copy of a CameraInfo with ``header`` (the depth image's) instead of its own."""
    from sensor_msgs.msg import CameraInfo

    return CameraInfo(
        header=header, height=msg.height, width=msg.width, distortion_model=msg.distortion_model,
        d=list(msg.d), k=msg.k, r=msg.r, p=msg.p, binning_x=msg.binning_x, binning_y=msg.binning_y, roi=msg.roi,
    )


def camera_info_msg(K: np.ndarray, width: int, height: int, header):
    """(3, 3) K and image size -> CameraInfo: plumb_bob with zero distortion, R = I, P = [K | 0]."""
    from sensor_msgs.msg import CameraInfo

    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(header=header, width=int(width), height=int(height), distortion_model="plumb_bob",
                      d=[0.0] * 5, k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1))


# ----------------------------------------------------------------------------- lens state


def focus_m_from_diopters(diopters: float) -> float:
    """Focus in dioptres (1/m; 0 = infinity) -> focus distance in metres; MessageError outside the range of
    ``input_checks.focus_m_from_diopters`` (0, or 1e-6 .. 1000 dioptres)."""
    return _checked(input_checks.focus_m_from_diopters, diopters)


def _checked(check, value) -> float:
    try:
        return check(value)
    except InputRangeError as exc:
        raise MessageError(str(exc)) from None


def joint_state_to_lens(msg, f_number: float | None = None, focal_length_m: float | None = None) -> LensState:
    """sensor_msgs/JointState -> LensState.

    Joints ``focus_distance`` (m; +inf: infinity) or ``focus_diopters`` (1/m; 0: infinity), ``f_number``
    and ``focal_length`` (m), in any order; extra joints are ignored. ``f_number`` / ``focal_length_m``
    fill in a joint the message lacks (a driver that only reports focus). Raises MessageError for a
    missing joint, a name count that differs from the position count, or a value outside its physical
    range (``input_checks``: NaN, <= 0 and absurd but finite values such as 1e-39 m alike).
    """
    names = list(msg.name)
    try:
        positions = np.asarray(msg.position, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise MessageError("JointState positions are not numbers") from None
    if positions.size != len(names):
        raise MessageError(f"JointState has {len(names)} names but {positions.size} positions")
    value: dict[str, float] = {}
    for name, pos in zip(names, positions):
        value.setdefault(name, float(pos))
    if _FOCUS_JOINT in value:
        focus_m = _checked(input_checks.focus_m_from_distance, value[_FOCUS_JOINT])
    elif FOCUS_DIOPTERS_JOINT in value:
        focus_m = focus_m_from_diopters(value[FOCUS_DIOPTERS_JOINT])
    else:
        raise MessageError(f"JointState has no {_FOCUS_JOINT} or {FOCUS_DIOPTERS_JOINT} joint (names: {names})")
    fallback = {_F_NUMBER_JOINT: f_number, _FOCAL_LENGTH_JOINT: focal_length_m}
    out = []
    for joint, check in ((_F_NUMBER_JOINT, input_checks.check_f_number),
                         (_FOCAL_LENGTH_JOINT, input_checks.check_focal_length_m)):
        v = value.get(joint, fallback[joint])
        if v is None:
            raise MessageError(f"JointState has no {joint} joint (names: {names})")
        out.append(_checked(check, v))
    return LensState(focus_m, out[0], out[1])


def joint_state_msg(lens: LensState, header):
    """LensState -> JointState in the bag contract's layout."""
    from sensor_msgs.msg import JointState

    return JointState(header=header, name=list(LENS_JOINTS), position=[float(v) for v in lens.as_tuple()])


def diagnostics_focus_diopters(msg, key: str = LENS_POSITION_KEY, hardware_id: str = "") -> float | None:
    """diagnostic_msgs/DiagnosticArray -> the focus in dioptres of its first ``key`` KeyValue, or None.

    hardware_id: only statuses with this ``DiagnosticStatus.hardware_id`` count (one camera of
    several on /diagnostics); empty: any status. None when no such status carries ``key`` (other
    diagnostics on the topic). Raises MessageError when the value is not a number or is outside
    the range of ``focus_m_from_diopters``.
    """
    for status in msg.status:
        if hardware_id and status.hardware_id != hardware_id:
            continue
        for kv in status.values:
            if kv.key == key:
                try:
                    diopters = float(str(kv.value).strip().strip("[]"))
                except ValueError:
                    raise MessageError(f"diagnostics {key} = {kv.value!r} is not a number") from None
                focus_m_from_diopters(diopters)  # validates
                return diopters
    return None


# ----------------------------------------------------------------------------- outputs


def image_msg(arr: np.ndarray, encoding: str, header):
    """(H, W) or (H, W, C) array -> sensor_msgs.msg.Image with ``header`` (no row padding)."""
    return image_codec.fields_to_rclpy(image_codec.array_to_image_fields(arr, encoding), header)


def float_image_msg(arr: np.ndarray, header):
    """(H, W) float array (depth in m, confidence, ...) -> 32FC1 Image; NaN stays NaN."""
    return image_msg(np.asarray(arr, dtype=np.float32), "32FC1", header)


def rep117_depth_m(depth_m: np.ndarray, min_depth_m: float, max_depth_m: float) -> np.ndarray:
    """(H, W) depth in metres -> (H, W) float32 depth as REP 117 asks a depth image to be published.

    NaN stays NaN (no estimate: low confidence, invalid); a finite depth below ``min_depth_m`` becomes
    -Inf (too close) and one above ``max_depth_m`` +Inf (too far); the rest is unchanged. The finite
    pixels are exactly those that ``DepthStream(min_depth_m=..., max_depth_m=...)`` keeps (its range
    test, ``depth < min_depth_m | depth > max_depth_m``, turns them into NaN), so evaluation, which
    treats any non-finite depth as missing, scores both alike.
    """
    out = np.array(depth_m, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        out[out < min_depth_m] = -np.inf
        out[out > max_depth_m] = np.inf
    return out


def pointcloud2_msg(fields: dict, header):
    """dict from ``pointcloud.pointcloud2_fields`` -> sensor_msgs.msg.PointCloud2 with ``header``."""
    from sensor_msgs.msg import PointCloud2, PointField

    data = fields["data"]
    if not isinstance(data, (bytes, bytearray)):
        data = np.ascontiguousarray(data).reshape(-1).view(np.uint8).tobytes()
    return PointCloud2(
        header=header, height=int(fields["height"]), width=int(fields["width"]),
        fields=[PointField(name=n, offset=int(o), datatype=int(t), count=int(c)) for n, o, t, c in fields["fields"]],
        is_bigendian=bool(fields["is_bigendian"]), point_step=int(fields["point_step"]),
        row_step=int(fields["row_step"]), data=data, is_dense=bool(fields["is_dense"]),
    )
