"""sensor_msgs/Image <-> numpy, without cv_bridge.

Works on any object with the sensor_msgs/msg/Image fields (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``): rclpy messages, rosbags messages, or a
plain namespace. Pure numpy, no ROS imports at module import; the rclpy and rosbags message
builders import their library when called.

Layout: row r of the image starts at byte ``r * step`` of ``data``; a row holds
``width * bytes_per_pixel`` bytes of pixels followed by ``step - width * bytes_per_pixel``
bytes of padding. Multi-byte samples (16UC1, mono16, 32FC1) follow ``is_bigendian``.

Decoded arrays: (H, W) for one channel, (H, W, C) for several, in the encoding's channel
order (bgr8 stays BGR; use ``to_rgb8`` for display/estimator input) and native byte order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ENCODINGS",
    "ImageDecodeError",
    "ImageEncodeError",
    "array_to_image_fields",
    "bytes_per_pixel",
    "decode_image",
    "depth_to_m",
    "fields_to_rclpy",
    "fields_to_rosbags",
    "image_to_array",
    "to_rgb8",
]


@dataclass(frozen=True)
class _Encoding:
    dtype: str  # numpy type code without byte order: "u1", "u2", "f4"
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return np.dtype(self.dtype).itemsize * self.channels


ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding("u1", 3),
    "bgr8": _Encoding("u1", 3),
    "rgba8": _Encoding("u1", 4),
    "bgra8": _Encoding("u1", 4),
    "mono8": _Encoding("u1", 1),
    "8UC1": _Encoding("u1", 1),
    "8UC3": _Encoding("u1", 3),
    "mono16": _Encoding("u2", 1),
    "16UC1": _Encoding("u2", 1),
    "32FC1": _Encoding("f4", 1),
}
"""Supported encodings: name -> (sample type, channels)."""


class ImageDecodeError(ValueError):
    """An Image message (or its fields) cannot be turned into an array."""


class ImageEncodeError(ValueError):
    """An array cannot be turned into Image fields with the requested encoding."""


def _lookup(encoding: str, error: type[ValueError]) -> _Encoding:
    try:
        return ENCODINGS[encoding]
    except (KeyError, TypeError):
        supported = ", ".join(ENCODINGS)
        raise error(f"unsupported image encoding {encoding!r}; supported: {supported}") from None


def bytes_per_pixel(encoding: str) -> int:
    """Bytes one pixel takes in ``encoding`` (3 for rgb8, 2 for 16UC1, 4 for 32FC1)."""
    return _lookup(encoding, ImageDecodeError).bytes_per_pixel


def _as_byte_array(data) -> np.ndarray:
    """1-D uint8 view of a message's ``data`` (bytes, array.array('B'), ndarray, memoryview, list)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_layout(height, width, step, nbytes: int, bpp: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image has zero size ({width}x{height})")
    if step < width * bpp:
        raise ImageDecodeError(f"step {step} is smaller than width * bytes_per_pixel = {width} * {bpp}")
    if nbytes < height * step:
        raise ImageDecodeError(f"data has {nbytes} bytes, fewer than height * step = {height} * {step}")


def decode_image(height: int, width: int, encoding: str, step: int, is_bigendian, data, copy: bool = False):
    """Image fields -> (H, W) or (H, W, C) array of the encoding's dtype in native byte order.

    Without ``copy`` the result is a view of ``data`` whenever the byte order is native
    (padding is skipped by slicing, not copying); it may then be read-only and changes with
    ``data``. ``copy=True`` always returns an owned, writable, C-contiguous array.
    Raises ImageDecodeError for an unknown encoding, a zero-size image, step < width * bpp or
    fewer than height * step bytes of data.
    """
    enc = _lookup(encoding, ImageDecodeError)
    height, width, step = int(height), int(width), int(step)
    buf = _as_byte_array(data)
    _check_layout(height, width, step, buf.size, enc.bytes_per_pixel)
    rows = buf[: height * step].reshape(height, step)[:, : width * enc.bytes_per_pixel]
    dtype = np.dtype(enc.dtype).newbyteorder(">" if is_bigendian else "<")
    pixels = rows.view(dtype)
    if not dtype.isnative:
        pixels = pixels.astype(dtype.newbyteorder("="))
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    pixels = pixels.reshape(shape)
    return np.array(pixels, order="C", copy=True) if copy else pixels


def image_to_array(msg, copy: bool = False) -> np.ndarray:
    """A sensor_msgs/Image (rclpy, rosbags or look-alike) -> array; see ``decode_image``."""
    return decode_image(msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian, msg.data, copy=copy)


def _check_array(arr: np.ndarray, encoding: str, enc: _Encoding) -> None:
    expected = np.dtype(enc.dtype)
    if arr.dtype.kind != expected.kind or arr.dtype.itemsize != expected.itemsize:
        raise ImageEncodeError(f"{encoding} needs a {expected.name} array, got {arr.dtype.name}")
    shape_ok = arr.ndim == 2 if enc.channels == 1 else (arr.ndim == 3 and arr.shape[2] == enc.channels)
    if not shape_ok and not (enc.channels == 1 and arr.ndim == 3 and arr.shape[2] == 1):
        want = "(H, W)" if enc.channels == 1 else f"(H, W, {enc.channels})"
        raise ImageEncodeError(f"{encoding} needs an array of shape {want}, got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageEncodeError(f"image has zero size ({arr.shape[1]}x{arr.shape[0]})")


def array_to_image_fields(arr: np.ndarray, encoding: str, step: int | None = None, is_bigendian: bool = False) -> dict:
    """(H, W) or (H, W, C) array -> dict(height, width, encoding, is_bigendian, step, data).

    ``arr`` must have the encoding's sample type (uint8, uint16 or float32; any byte order)
    and channel count. ``step`` (bytes per row) defaults to width * bytes_per_pixel; a larger
    value pads each row with zero bytes. ``data`` is ``bytes``; ``is_bigendian`` is 0 or 1.
    """
    enc = _lookup(encoding, ImageEncodeError)
    arr = np.asarray(arr)
    _check_array(arr, encoding, enc)
    height, width = int(arr.shape[0]), int(arr.shape[1])
    row_bytes = width * enc.bytes_per_pixel
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageEncodeError(f"step {step} is smaller than width * bytes_per_pixel = {row_bytes}")
    dtype = np.dtype(enc.dtype).newbyteorder(">" if is_bigendian else "<")
    pixels = np.ascontiguousarray(arr, dtype=dtype).reshape(height, -1).view(np.uint8)
    if step > row_bytes:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row_bytes] = pixels
        pixels = padded
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": int(bool(is_bigendian)),
        "step": step,
        "data": pixels.tobytes(),
    }


def to_rgb8(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Any colour or mono image (as decoded) -> (H, W, 3) uint8 RGB.

    bgr8/bgra8 are reordered, alpha is dropped, mono8/8UC1 are repeated into three channels.
    8UC3 has no defined channel order and is taken as RGB. mono16/16UC1 are scaled by a fixed
    factor, round(v * 255 / 65535), so the full 16-bit range maps to 0..255 the same way in
    every frame (no per-frame auto-contrast, which would flicker). 32FC1 is not an intensity
    image here and raises ImageDecodeError. May return ``arr`` itself for rgb8/8UC3.
    """
    enc = _lookup(encoding, ImageDecodeError)
    if enc.dtype == "f4":
        raise ImageDecodeError(f"{encoding} is not a colour or mono image encoding")
    if enc.dtype == "u2":
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if encoding.startswith("bgr"):
        return arr[:, :, 2::-1]
    return arr[:, :, :3]


def depth_to_m(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Decoded depth image -> (H, W) float32 metres, NaN where unknown.

    32FC1 is metres already and is copied unchanged (bit for bit: NaN, inf and 0 stay; deciding
    which pixels are valid is evaluation's job). 16UC1/mono16 follow the ROS convention of
    millimetres with 0 = no measurement, which becomes NaN.
    """
    if encoding == "32FC1":
        return np.array(arr, dtype=np.float32, order="C", copy=True)
    if encoding in ("16UC1", "mono16"):
        depth = arr.astype(np.float32) * np.float32(1e-3)
        depth[arr == 0] = np.nan
        return depth
    raise ImageDecodeError(f"depth images must be 32FC1 (metres) or 16UC1 (millimetres), got {encoding!r}")


def fields_to_rclpy(fields: dict, header=None):
    """Image fields -> rclpy ``sensor_msgs.msg.Image`` (imports sensor_msgs when called)."""
    from sensor_msgs.msg import Image

    msg = Image(**fields)
    if header is not None:
        msg.header = header
    return msg


def fields_to_rosbags(fields: dict, header, typestore):
    """Image fields -> rosbags ``sensor_msgs/msg/Image`` of ``typestore`` with ``header``."""
    image_type = typestore.types["sensor_msgs/msg/Image"]
    data = np.frombuffer(fields["data"], dtype=np.uint8)
    return image_type(header=header, **{**fields, "data": data})
