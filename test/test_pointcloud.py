"""Point clouds: pinhole back-projection is exact, the cloud is organized H x W, PointCloud2 bytes are right."""

from __future__ import annotations

import numpy as np
import pytest

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.pointcloud import FLOAT32, depth_to_points, pointcloud2_fields

H, W = 6, 9  # H != W catches a transposed cloud
K = intrinsics_matrix(500.0, 400.0, 4.5, 2.25)


def test_fronto_parallel_plane_back_projects_exactly():
    z = 2.5
    xyz = depth_to_points(np.full((H, W), z, np.float32), K)
    assert xyz.shape == (H, W, 3) and xyz.dtype == np.float32
    v, u = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(xyz[..., 2], z)
    np.testing.assert_allclose(xyz[..., 0], (u - 4.5) * z / 500.0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(xyz[..., 1], (v - 2.25) * z / 400.0, rtol=1e-6, atol=1e-7)


def test_invalid_depth_gives_nan_points():
    depth = np.full((H, W), 3.0, np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2], depth[3, 3], depth[4, 4] = np.nan, np.inf, 0.0, 0.05, 50.0
    xyz = depth_to_points(depth, K, min_range_m=0.1, max_range_m=20.0)
    bad = np.isnan(xyz)
    assert bad.any(axis=2).sum() == 5
    assert np.array_equal(bad.any(axis=2), bad.all(axis=2))  # all three coordinates, or none


def test_decimation_keeps_every_nth_pixel_at_its_true_position():
    depth = np.random.default_rng(0).uniform(1, 5, (H, W)).astype(np.float32)
    full, dec = depth_to_points(depth, K), depth_to_points(depth, K, decimation=4)
    assert dec.shape == (2, 3, 3)  # ceil(6/4), ceil(9/4)
    np.testing.assert_array_equal(dec, full[::4, ::4])


def test_pointcloud2_layout_and_bytes_xyz():
    xyz = depth_to_points(np.full((H, W), 2.0, np.float32), K)
    msg = pointcloud2_fields(xyz)
    assert (msg["height"], msg["width"]) == (H, W)
    assert msg["fields"] == [("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)]
    assert msg["point_step"] == 12 and msg["row_step"] == 12 * W
    assert len(msg["data"]) == msg["row_step"] * H and msg["is_dense"] and not msg["is_bigendian"]
    back = np.frombuffer(msg["data"], dtype="<f4").reshape(H, W, 3)
    np.testing.assert_array_equal(back, xyz)
    assert back[1, 7].tolist() == xyz[1, 7].tolist()  # row 1, column 7: organized as image rows


def test_pointcloud2_rgb_is_packed_0x00rrggbb():
    xyz = depth_to_points(np.full((H, W), 2.0, np.float32), K)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[2, 3] = (255, 128, 1)
    msg = pointcloud2_fields(xyz, rgb)
    assert msg["fields"][-1] == ("rgb", 12, FLOAT32, 1)
    assert msg["point_step"] == 16 and msg["row_step"] == 16 * W and len(msg["data"]) == 16 * W * H
    offset = (2 * W + 3) * 16 + 12
    assert msg["data"][offset:offset + 4] == bytes([0x01, 0x80, 0xFF, 0x00])  # little-endian 0x00FF8001
    np.testing.assert_array_equal(np.frombuffer(msg["data"], "<f4").reshape(H, W, 4)[..., :3], xyz)


def test_nan_points_make_the_cloud_not_dense():
    depth = np.full((H, W), 2.0, np.float32)
    depth[0, 0] = np.nan
    assert not pointcloud2_fields(depth_to_points(depth, K))["is_dense"]


def test_rgb_must_match_points():
    xyz = depth_to_points(np.ones((H, W), np.float32), K, decimation=2)
    with pytest.raises(ValueError, match="decimate"):
        pointcloud2_fields(xyz, np.zeros((H, W, 3), np.uint8))
