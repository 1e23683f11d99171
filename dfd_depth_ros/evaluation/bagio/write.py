"""Sequence -> rosbag2 bag (the contract's four topics), sqlite3 or MCAP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.bagio.common import (
    CAMERA_INFO_TYPE,
    CUSTOM_META,
    CUSTOM_NAME,
    IMAGE_ENCODINGS,
    JOINT_STATE_TYPE,
    NS,
    BagError,
    BagTopics,
    typestore,
)
from dfd_depth_ros.frames import Frame, Sequence
from dfd_depth_ros.msgs import image as image_codec
from dfd_depth_ros.msgs.convert import LENS_JOINTS
from dfd_depth_ros.optics import LensState


def _header(stamp_ns: int, frame_id: str):
    types = typestore().types
    sec, nanosec = divmod(int(stamp_ns), NS)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _camera_info_msg(header, frame: Frame):
    types = typestore().types
    K = np.asarray(frame.K, dtype=np.float64)
    P = np.zeros((3, 4), dtype=np.float64)
    P[:, :3] = K
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=header, height=frame.height, width=frame.width, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(9).copy(), r=np.eye(3).reshape(9), p=P.reshape(12),
        binning_x=0, binning_y=0, roi=roi,
    )


def _lens_msg(header, lens: LensState):
    return typestore().types[JOINT_STATE_TYPE](
        header=header, name=list(LENS_JOINTS), position=np.array(lens.as_tuple(), dtype=np.float64),
        velocity=np.zeros(0), effort=np.zeros(0),
    )


def _image_msg(header, arr: np.ndarray, encoding: str):
    return image_codec.fields_to_rosbags(image_codec.array_to_image_fields(arr, encoding), header, typestore())


def _check_frames(seq: Sequence) -> None:
    if len(seq) == 0:
        raise BagError("sequence has no frames")
    previous = -1
    for i, frame in enumerate(seq):
        img = np.asarray(frame.image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise BagError(f"frame {i}: image must be (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
        if frame.depth_m is not None and np.shape(frame.depth_m) != img.shape[:2]:
            raise BagError(f"frame {i}: depth_m must be (H, W) = {img.shape[:2]}, got {np.shape(frame.depth_m)}")
        if np.shape(frame.K) != (3, 3):
            raise BagError(f"frame {i}: K must be (3, 3), got {np.shape(frame.K)}")
        if not int(frame.stamp_ns) > previous:
            raise BagError(f"frame {i}: stamps must be >= 0 and strictly increasing, got {frame.stamp_ns}")
        previous = int(frame.stamp_ns)


def _json_meta(meta: dict) -> str:
    """The JSON-serialisable items of a sequence's meta, as a JSON object string."""
    keep = {}
    for key, value in meta.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        keep[str(key)] = value
    return json.dumps(keep)


def _encode_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the array of one contract encoding (mono8: Rec. 601 luma, rounded)."""
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def _write_frames(writer, seq: Sequence, topics: BagTopics, write_depth: bool, encoding: str = "rgb8") -> None:
    ts = typestore()
    conns = {
        role: writer.add_connection(topic, msgtype, typestore=ts)
        for role, (topic, msgtype) in topics.expected_types().items()
        if role != "depth_gt" or write_depth
    }
    for frame in seq:
        header = _header(frame.stamp_ns, frame.frame_id)
        stamp = int(frame.stamp_ns)
        messages = [("lens_state", _lens_msg(header, frame.lens)), ("camera_info", _camera_info_msg(header, frame)),
                    ("image", _image_msg(header, _encode_rgb(np.asarray(frame.image), encoding), encoding))]
        if write_depth and frame.depth_m is not None:
            messages.append(("depth_gt", _image_msg(header, np.asarray(frame.depth_m, dtype=np.float32), "32FC1")))
        for role, msg in messages:
            writer.write(conns[role], stamp, ts.serialize_cdr(msg, msg.__msgtype__))


def write_sequence_bag(seq: Sequence, path: str | Path, storage: str = "mcap", topics: BagTopics = BagTopics(),
                       write_depth: bool = True, version: int = 9, encoding: str = "rgb8") -> Path:
    """Write ``seq`` as a rosbag2 folder at ``path`` (must not exist, or be an empty folder).

    storage: "mcap" or "sqlite3"; version: rosbag2 metadata version, 8 or 9.
    Per frame, all with the frame's stamp (also the bag's log time) and frame_id: lens_state,
    camera_info, image (``encoding``: rgb8, bgr8 or mono8, converted from the frame's RGB) and,
    if ``write_depth`` and the frame has ground truth, depth_gt
    (32FC1). Poses are not stored (the contract has no topic for them). The sequence name and
    the JSON-serialisable part of ``seq.meta`` go into the bag's custom_data. Returns the path.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise BagError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
    if version not in (8, 9):
        raise BagError(f"rosbag2 metadata version must be 8 or 9, got {version!r}")
    if encoding not in IMAGE_ENCODINGS:
        raise BagError(f"image encoding must be one of {IMAGE_ENCODINGS}, got {encoding!r}")
    _check_frames(seq)
    path = Path(path)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    elif path.exists():
        raise BagError(f"{path} exists; not overwriting")
    try:
        writer = Writer(path, version=version, storage_plugin=plugins[storage])
    except WriterError as exc:
        raise BagError(f"cannot write bag {path}: {exc}") from exc
    try:
        with writer:
            writer.set_custom_data(CUSTOM_NAME, str(seq.name))
            writer.set_custom_data(CUSTOM_META, _json_meta(seq.meta))
            _write_frames(writer, seq, topics, write_depth, encoding)
    except BaseException as exc:
        shutil.rmtree(path, ignore_errors=True)  # the folder this call created: no half-written bags
        if isinstance(exc, WriterError):
            raise BagError(f"cannot write bag {path}: {exc}") from exc
        raise
    return path


