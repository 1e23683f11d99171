"""Cross-checks against the ROS 2 libraries a user's other nodes decode our messages with: cv_bridge for
sensor_msgs/Image and sensor_msgs_py.point_cloud2 for PointCloud2. Neither installs from PyPI (see
shared/ENVIRONMENT.md), so these tests run only on a ROS 2 install where they import, and are skipped here.

What must agree: an image written by dfd_depth_ros.msgs.image reads back bit for bit through cv_bridge,
and an image cv_bridge writes reads back bit for bit through ours, with and without row padding; the
estimator's RGB conversion equals cv_bridge's "rgb8" conversion; a cloud from dfd_depth_ros.pointcloud
+ msgs.convert.pointcloud2_msg reads back through read_points_numpy as the same points, organized with
height = H image rows and width = W columns, point index = row * W + column.
"""

from __future__ import annotations

import numpy as np
import pytest

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.msgs.image import array_to_image_fields, bytes_per_pixel, fields_to_rclpy, image_to_array
from dfd_depth_ros.pointcloud import depth_to_points, pointcloud2_fields

H, W = 5, 7  # H != W: a transposed image or cloud cannot pass
SAMPLE_TYPES = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "mono16": (np.uint16, 1),
                "32FC1": (np.float32, 1)}


@pytest.fixture(scope="module")
def bridge():
    cv_bridge = pytest.importorskip("cv_bridge")
    pytest.importorskip("sensor_msgs.msg")
    return cv_bridge.CvBridge()


@pytest.fixture(scope="module")
def point_cloud2():
    pytest.importorskip("sensor_msgs.msg")
    return pytest.importorskip("sensor_msgs_py.point_cloud2")


def sample(encoding: str, seed: int = 0) -> np.ndarray:
    """A random (H, W[, C]) image of the encoding's sample type, every value different in each channel."""
    dtype, channels = SAMPLE_TYPES[encoding]
    shape = (H, W) if channels == 1 else (H, W, channels)
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        arr = rng.uniform(0.1, 30.0, shape).astype(np.float32)
        arr[0, 1], arr[3, 2] = np.nan, np.inf  # depth images carry these; both sides must keep the bits
        return arr
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def assert_same_pixels(out: np.ndarray, arr: np.ndarray) -> None:
    """Same shape, same sample type, same bits (NaN included)."""
    out = np.asarray(out)
    assert out.shape == arr.shape, (out.shape, arr.shape)
    assert out.dtype.kind == arr.dtype.kind and out.dtype.itemsize == arr.dtype.itemsize, out.dtype
    assert np.ascontiguousarray(out).astype(arr.dtype).tobytes() == arr.tobytes()


def with_row_padding(msg, pad_bytes: int, fill: int = 0xAB):
    """``msg`` with ``pad_bytes`` junk bytes appended to every row (step and data changed in place)."""
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    padded = np.full((msg.height, msg.step + pad_bytes), fill, dtype=np.uint8)
    padded[:, : msg.step] = rows
    msg.step = msg.step + pad_bytes
    msg.data = padded.tobytes()
    return msg


# ----------------------------------------------------------------------------- cv_bridge


@pytest.mark.parametrize("encoding", list(SAMPLE_TYPES))
@pytest.mark.parametrize("pad_px", [0, 3])
def test_cv_bridge_reads_the_images_we_write(bridge, encoding, pad_px):
    """cv_bridge honours a padded step only in whole pixels (it views each row as step / bpp pixels), so the
    padding here is whole pixels; our own decoder takes any padding (test_image_codec.py)."""
    arr = sample(encoding)
    step = (W + pad_px) * bytes_per_pixel(encoding)
    msg = fields_to_rclpy(array_to_image_fields(arr, encoding, step=step))
    assert msg.step == step
    assert_same_pixels(bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough"), arr)


@pytest.mark.parametrize("encoding", list(SAMPLE_TYPES))
def test_we_read_the_images_cv_bridge_writes(bridge, encoding):
    arr = sample(encoding, seed=1)
    msg = bridge.cv2_to_imgmsg(arr, encoding=encoding)
    assert (msg.height, msg.width, msg.encoding) == (H, W, encoding)
    assert msg.step == W * bytes_per_pixel(encoding)
    assert_same_pixels(image_to_array(msg), arr)
    # The same message with padded rows, as a driver with aligned rows sends it: both decoders skip the padding.
    padded = with_row_padding(msg, 2 * bytes_per_pixel(encoding))
    assert_same_pixels(image_to_array(padded), arr)
    assert_same_pixels(bridge.imgmsg_to_cv2(padded, desired_encoding="passthrough"), arr)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_estimator_rgb_equals_cv_bridge_rgb8(bridge, encoding):
    """What depth_node feeds the estimator is what cv_bridge gives for desired_encoding "rgb8"."""
    from dfd_depth_ros.msgs.convert import image_to_rgb

    arr = sample(encoding, seed=2)
    msg = with_row_padding(fields_to_rclpy(array_to_image_fields(arr, encoding)), 4 * bytes_per_pixel(encoding))
    theirs = bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
    ours = image_to_rgb(msg)
    assert ours.shape == (H, W, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------------------- sensor_msgs_py


def cloud_inputs() -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) float32 points of a random depth image with invalid pixels, (H, W, 3) uint8 colours."""
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 5.0, (H, W)).astype(np.float32)
    depth[0, 0], depth[2, 5], depth[4, 1] = np.nan, 0.0, np.inf
    xyz = depth_to_points(depth, intrinsics_matrix(300.0, 280.0, 3.2, 2.1))
    return xyz, rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def cloud_msg(xyz: np.ndarray, rgb: np.ndarray | None = None):
    from dfd_depth_ros.msgs.convert import make_header, pointcloud2_msg

    return pointcloud2_msg(pointcloud2_fields(xyz, rgb), make_header(1_000_000_123, "camera_optical_frame"))


def test_read_points_numpy_gives_our_points_organized_h_by_w(point_cloud2):
    xyz, _ = cloud_inputs()
    msg = cloud_msg(xyz)
    assert (msg.height, msg.width) == (H, W), "organized: height = image rows, width = image columns"
    assert msg.row_step == msg.point_step * W and not msg.is_dense
    flat = point_cloud2.read_points_numpy(msg, field_names=["x", "y", "z"], skip_nans=False)
    assert flat.shape == (H * W, 3) and flat.dtype == np.float32
    # PointCloud2 order is row-major: point v * width + u is pixel (v, u). Not reshaped by the library:
    # some sensor_msgs_py releases reshape organized clouds to (width, height).
    organized = flat.reshape(msg.height, msg.width, 3)
    assert organized.tobytes() == xyz.tobytes()
    assert organized[1, 6].tolist() == xyz[1, 6].tolist() and organized[4, 2].tolist() == xyz[4, 2].tolist()
    finite = point_cloud2.read_points_numpy(msg, field_names=["x", "y", "z"], skip_nans=True)
    assert len(finite) == int(np.isfinite(xyz).all(axis=2).sum()) == H * W - 3


def test_read_points_gives_our_packed_colours(point_cloud2):
    xyz, rgb = cloud_inputs()
    msg = cloud_msg(xyz, rgb)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
    points = point_cloud2.read_points(msg, skip_nans=False)
    assert len(points) == H * W
    packed = np.ascontiguousarray(points["rgb"]).view(np.uint32).reshape(H, W)  # PCL: float32 bits 0x00RRGGBB
    r, g, b = (rgb[..., c].astype(np.uint32) for c in range(3))
    np.testing.assert_array_equal(packed, (r << 16) | (g << 8) | b)
    np.testing.assert_array_equal(np.ascontiguousarray(points["x"]).reshape(H, W), xyz[..., 0])
