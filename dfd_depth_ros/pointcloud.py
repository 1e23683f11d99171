"""Depth image -> organized point cloud, and PointCloud2 field packing. Pure numpy, no ROS.

Points are in the camera's optical frame (x right, y down, z forward), metres:
    x = (u - cx) z / fx,   y = (v - cy) z / fy,   z = depth
The cloud is organized: row v of the cloud is image row v (height = H rows, width = W
columns; the PointCloud2 message gets height=H, width=W, not the other way round).
``pointcloud2_fields`` returns plain values that the ROS node copies into a
sensor_msgs/PointCloud2 (``PointCloud2(**fields, fields=[PointField(...)...])``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dfd_depth_ros.input_checks import check_intrinsics

FLOAT32 = 7  # sensor_msgs/PointField datatype code of float32
_XYZ_FIELDS = [("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)]


@lru_cache(maxsize=8)
def _rays(shape: tuple[int, int], K_key: tuple[float, float, float, float], decimation: int):
    """((w,) (u - cx)/fx, (h, 1) (v - cy)/fy) float32 for the kept pixels."""
    fx, fy, cx, cy = K_key
    u = np.arange(0, shape[1], decimation, dtype=np.float64)
    v = np.arange(0, shape[0], decimation, dtype=np.float64)
    return ((u - cx) / fx).astype(np.float32), ((v - cy) / fy).astype(np.float32)[:, None]


def depth_to_points(depth_m: np.ndarray, K, decimation: int = 1, min_range_m: float = 0.0,
                    max_range_m: float = np.inf) -> np.ndarray:
    """(H, W) z-depth in metres -> (h, w, 3) float32 xyz in the optical frame, NaN where invalid.

    decimation: keep every n-th row and column (pixels 0, n, 2n, ...): h = ceil(H/n), w = ceil(W/n).
    min_range_m, max_range_m: z-depth limits; points outside, non-finite or z <= 0 are NaN.
    K: (3, 3) intrinsics of the depth image, px.
    """
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth_m.shape}")
    if decimation < 1:
        raise ValueError(f"decimation must be >= 1, got {decimation}")
    K = check_intrinsics(K)
    ray_x, ray_y = _rays(depth_m.shape, (K[0, 0], K[1, 1], K[0, 2], K[1, 2]), int(decimation))
    z = depth_m[::decimation, ::decimation]
    points = np.empty((*z.shape, 3), dtype=np.float32)
    zc = points[..., 2]
    zc[...] = z
    with np.errstate(invalid="ignore"):
        zc[~((zc >= min_range_m) & (zc <= max_range_m) & (zc > 0) & np.isfinite(zc))] = np.nan
    np.multiply(zc, ray_x, out=points[..., 0])  # NaN z gives NaN x and y
    np.multiply(zc, ray_y, out=points[..., 1])
    return points


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint32 0x00RRGGBB: the bits of PCL's float32 "rgb" field."""
    out = rgb[..., 0].astype(np.uint32)
    for c in (1, 2):  # in place: no more full-size temporaries
        out <<= 8
        out |= rgb[..., c]
    return out


def pointcloud2_fields(xyz: np.ndarray, rgb: np.ndarray | None = None) -> dict:
    """(h, w, 3) float32 xyz [+ (h, w, 3) uint8 RGB or (h, w) mono] -> PointCloud2 field values.

    Returns dict(height=h, width=w, fields=[(name, offset, datatype, count)], point_step,
    row_step, is_dense, is_bigendian, data): x, y, z float32 at offsets 0, 4, 8 and, with
    ``rgb``, the packed float32 "rgb" at 12. Little-endian; is_dense is False when any point
    is NaN. ``rgb`` must have xyz's height and width (decimate it the same way).
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"xyz must be (h, w, 3), got shape {xyz.shape}")
    h, w = xyz.shape[:2]
    fields = list(_XYZ_FIELDS)
    xyz = np.ascontiguousarray(xyz, dtype="<f4")
    if rgb is None:
        packed = xyz
    else:
        packed = np.empty((h, w, 4), dtype="<f4")
        for c in range(3):  # one strided copy per coordinate: 4x faster than packed[..., :3] = xyz
            packed[..., c] = xyz[..., c]
        packed.view("<u4")[..., 3] = pack_rgb(_check_rgb(rgb, (h, w)))  # bits, not a value cast
        fields.append(("rgb", 12, FLOAT32, 1))
    point_step = 4 * packed.shape[2]
    return {
        "height": h,
        "width": w,
        "fields": fields,
        "point_step": point_step,
        "row_step": point_step * w,
        "is_dense": not bool(np.isnan(xyz).any()),
        "is_bigendian": False,
        "data": packed.tobytes(),
    }


def _check_rgb(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8, or (h, w) mono repeated to three channels; ValueError on a size mismatch."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = rgb[..., None].repeat(3, axis=2)
    if rgb.shape != (*shape, 3):
        raise ValueError(f"rgb must be {shape[0]}x{shape[1]} (h x w) like the points (decimate it the same way), "
                         f"got shape {rgb.shape}")
    return rgb
