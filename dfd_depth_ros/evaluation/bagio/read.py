"""rosbag2 bag -> frames in stamp order: images paired with depth by stamp, lens state and K at each stamp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfd_depth_ros.calibration import CameraInfoHistory
from dfd_depth_ros.evaluation.bagio.common import (
    CAMERA_INFO_TYPE,
    CUSTOM_META,
    CUSTOM_NAME,
    BagError,
    BagReadReport,
    BagTopics,
    typestore,
)
from dfd_depth_ros.evaluation.bagio.common import (
    stamp_ns as _stamp_ns,
)
from dfd_depth_ros.frames import Frame, Sequence
from dfd_depth_ros.lens import LensHistory
from dfd_depth_ros.msgs import image as image_codec
from dfd_depth_ros.msgs.convert import MessageError, camera_info_to_K, joint_state_to_lens
from dfd_depth_ros.stamp_pairing import StampPairer


def storage_name(path: Path) -> str:
    """'mcap', 'sqlite3' or 'unknown', from the bag's file names."""
    names = [path.name] if path.is_file() else [p.name for p in path.iterdir()]
    if any(".mcap" in n for n in names):
        return "mcap"
    if any(".db3" in n for n in names):
        return "sqlite3"
    return "unknown"


def _corrupt(path: Path, exc: Exception) -> str:
    detail = str(exc).strip() or type(exc).__name__
    return f"cannot read bag {path}: it is corrupt or truncated ({detail})"


@contextmanager
def open_bag(path: str | Path):
    """Open a rosbag2 folder (or a single .mcap/.db3 file) read-only; yields a rosbags Reader.

    Raises BagError when the path does not exist, is not a bag, or cannot be opened.
    """
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such file or folder")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is not a rosbag2 bag: it has no metadata.yaml "
                       "(for an interrupted recording, pass its .mcap or .db3 file)")
    if path.is_file() and path.suffix not in (".mcap", ".db3"):
        raise BagError(f"{path} is not a rosbag2 bag: expected a bag folder or a .mcap or .db3 file")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:
        raise BagError(_corrupt(path, exc)) from exc
    try:
        yield reader
    finally:
        reader.close()


def _topic_listing(reader) -> str:
    topics = sorted({(c.topic, c.msgtype) for c in reader.connections})
    return ", ".join(f"{t} [{m}]" for t, m in topics) or "(none)"


def _connections(reader, path: Path, topics: BagTopics, require_depth: bool) -> dict[str, list]:
    """role -> the bag's connections for that role's topic; BagError for a missing or mistyped topic."""
    found = {}
    for role, (topic, msgtype) in topics.expected_types().items():
        on_topic = [c for c in reader.connections if c.topic == topic]
        if not on_topic:
            if role == "depth_gt" and not require_depth:
                found[role] = []
                continue
            raise BagError(f"bag {path} has no {role} topic {topic!r} ({msgtype}); "
                           f"its topics: {_topic_listing(reader)}")
        typed = [c for c in on_topic if c.msgtype == msgtype]
        if not typed:
            raise BagError(f"bag {path}: topic {topic!r} has type {on_topic[0].msgtype}, expected {msgtype}")
        found[role] = typed
    return found


def _messages(reader, path: Path, connections: list) -> Iterator[tuple[object, int, object]]:
    """(connection, log time ns, deserialized message) for ``connections``; BagError on corrupt data."""
    if not connections:
        return
    ts = typestore()
    it = reader.messages(connections=connections)
    while True:
        try:
            item = next(it, None)
            if item is None:
                return
            conn, log_ns, raw = item
            msg = ts.deserialize_cdr(raw, conn.msgtype)
        except Exception as exc:
            raise BagError(_corrupt(path, exc)) from exc
        yield conn, log_ns, msg


def _read_lens_and_calibration(reader, path: Path, conns: dict, report: BagReadReport, lens_tolerance_s: float,
                               max_lens_gap_s: float) -> tuple[LensHistory, CameraInfoHistory]:
    """Pass 1: every lens sample and every camera info, into the live node's histories (unbounded here).

    The lens rule (``lens.LensHistory``) and the camera_info rule (``calibration.CameraInfoHistory``:
    the stamp's, else the newest before it, else the newest, of the image's size) are the node's,
    with the node's defaults. The samples go in in stamp order, the order the frames are read in,
    so the history never restarts; K is checked as the node checks it (``msgs.convert.camera_info_to_K``).
    """
    calibration = CameraInfoHistory(max_entries=None)
    samples: list[tuple[int, object]] = []
    for conn, log_ns, msg in _messages(reader, path, conns["lens_state"] + conns["camera_info"]):
        if conn.msgtype == CAMERA_INFO_TYPE:
            try:
                K = camera_info_to_K(msg)
            except MessageError:  # an all-zero K means uncalibrated
                continue
            calibration.add(_stamp_ns(msg.header), K, int(msg.width), int(msg.height))
            continue
        report.lens_samples += 1
        try:  # the live node's parser: joints in any order, focus_diopters accepted, infinity mapped alike
            sample = joint_state_to_lens(msg)
        except MessageError:
            report.lens_samples_ignored += 1
            continue
        samples.append((_stamp_ns(msg.header) or log_ns, sample))  # an unstamped JointState gets its log time
    lens = LensHistory(tolerance_s=lens_tolerance_s, max_samples=None, max_gap_s=max_lens_gap_s)
    for stamp, sample in sorted(samples, key=lambda s: s[0]):  # stable: a later sample at the same stamp wins
        lens.add(stamp, sample)
    return lens, calibration


def _decode_rgb(msg, topic: str, stamp_ns: int) -> np.ndarray:
    try:
        rgb = image_codec.to_rgb8(image_codec.image_to_array(msg), msg.encoding)
    except image_codec.ImageDecodeError as exc:
        raise BagError(f"{topic} at stamp {stamp_ns} ns: {exc}") from None
    return np.array(rgb, order="C", copy=True) if rgb.base is not None else rgb


def _decode_depth(msg, topic: str, stamp_ns: int, shape: tuple[int, int]) -> np.ndarray:
    try:
        depth = image_codec.depth_to_m(image_codec.image_to_array(msg), msg.encoding)
    except image_codec.ImageDecodeError as exc:
        raise BagError(f"{topic} at stamp {stamp_ns} ns: {exc}") from None
    if depth.shape != shape:
        raise BagError(f"{topic} at stamp {stamp_ns} ns: depth is {depth.shape[1]}x{depth.shape[0]}, "
                       f"image is {shape[1]}x{shape[0]}")
    return depth


@dataclass(frozen=True)
class _Assembly:
    """What turns one (image, depth) pair into a Frame."""

    topics: BagTopics
    lens: LensHistory
    calibration: CameraInfoHistory

    def frame(self, stamp_ns: int, image_msg, depth_msg, report: BagReadReport) -> Frame | None:
        height, width = int(image_msg.height), int(image_msg.width)
        lens, _ = self.lens.at(stamp_ns)
        if lens is None:
            report.skipped_no_lens += 1
            return None
        calib, exact = self.calibration.at(stamp_ns, width, height)
        if calib is None:
            report.skipped_no_camera_info += 1
            return None
        K = calib.K.copy()
        report.camera_info_inexact += not exact
        image = _decode_rgb(image_msg, self.topics.image, stamp_ns)
        depth = None
        if depth_msg is not None:
            depth = _decode_depth(depth_msg, self.topics.depth_gt, stamp_ns, (height, width))
        else:
            report.frames_without_depth += 1
        return Frame(image=image, K=K, lens=lens, stamp_ns=stamp_ns, depth_m=depth,
                     frame_id=str(image_msg.header.frame_id))


def iter_bag_frames(path: str | Path, topics: BagTopics = BagTopics(), lens_tolerance_s: float = 0.05,
                    max_lens_gap_s: float = 1.0, require_depth: bool = False, report: BagReadReport | None = None,
                    window: int = 16) -> Iterator[Frame]:
    """Yield the bag's frames in stamp order, one at a time (memory: about ``window`` frames).

    Lens states and camera infos are read first (small); then images and depth are streamed
    and paired by header.stamp. Frames without a usable lens state or camera info are skipped;
    pass a ``BagReadReport`` to get the counts. ``require_depth``: a missing depth_gt topic is
    an error (else frames come without depth). Raises BagError (see ``open_bag``, plus missing
    or mistyped topics, corrupt data and image encodings that cannot be decoded).
    """
    path = Path(path)
    report = BagReadReport() if report is None else report
    with open_bag(path) as reader:
        yield from _frames(reader, path, topics, lens_tolerance_s, max_lens_gap_s, require_depth, report, window)


def _frames(reader, path: Path, topics: BagTopics, lens_tolerance_s: float, max_lens_gap_s: float,
            require_depth: bool, report: BagReadReport, window: int) -> Iterator[Frame]:
    conns = _connections(reader, path, topics, require_depth)
    lens, calibration = _read_lens_and_calibration(reader, path, conns, report, lens_tolerance_s, max_lens_gap_s)
    assembly = _Assembly(topics, lens, calibration)
    # The oldest pending stamp is released once it has its image (and its depth, when the bag has
    # depth), or when more than ``window`` stamps wait behind it, or at the end.
    has_depth = sum(c.msgcount for c in conns["depth_gt"]) > 0
    pairer = StampPairer(("image", "depth_gt"), ("image", "depth_gt") if has_depth else ("image",), window)
    last_stamp = None
    for final, item in _with_end(_messages(reader, path, conns["image"] + conns["depth_gt"])):
        if item is not None:
            conn, _, msg = item
            pairer.add("image" if conn.topic == topics.image else "depth_gt", _stamp_ns(msg.header), msg)
        for stamp, entry in pairer.release(final):
            image_msg, depth_msg = entry.get("image"), entry.get("depth_gt")
            if image_msg is None:
                continue  # depth without its image
            if last_stamp is not None and stamp <= last_stamp:
                report.skipped_out_of_order += 1
                continue
            frame = assembly.frame(stamp, image_msg, depth_msg, report)
            if frame is not None:
                last_stamp = stamp
                report.frames += 1
                yield frame


def _with_end(iterable) -> Iterator[tuple[bool, object]]:
    """(False, item) for each item, then (True, None)."""
    for item in iterable:
        yield False, item
    yield True, None


def _custom_data(reader) -> dict:
    custom = getattr(getattr(reader.storage, "metadata", None), "custom", None)
    return dict(custom) if isinstance(custom, dict) else {}


def no_frames_message(path: Path, report: BagReadReport, lens_tolerance_s: float) -> str:
    """Why a bag gave no frame, in one line (bag reading and bag evaluation say it alike)."""
    if report.skipped_no_lens:
        return (f"bag {path}: no frame has a usable lens state ({report.skipped_no_lens} frames skipped; "
                f"{report.lens_samples} lens samples, {report.lens_samples_ignored} unusable; a sample must lie "
                f"within {lens_tolerance_s} s of an image stamp or bracket it)")
    if report.skipped_no_camera_info:
        return f"bag {path}: no frame has a camera_info with a calibrated K of its image size"
    return f"bag {path}: no image messages"


def read_sequence_bag(path: str | Path, topics: BagTopics = BagTopics(), lens_tolerance_s: float = 0.05,
                      max_lens_gap_s: float = 1.0, require_depth: bool = False) -> Sequence:
    """Read a whole bag into a Sequence (frames in stamp order; see ``iter_bag_frames``).

    seq.name: the name stored by ``write_sequence_bag``, else the bag folder's name.
    seq.meta: the stored meta, plus "bag" (path), "storage" and the BagReadReport counts
    (e.g. meta["skipped_no_lens"]). Raises BagError if no frame could be read.
    """
    path = Path(path)
    report = BagReadReport()
    with open_bag(path) as reader:
        name, meta = _name_and_meta(reader, path)
        frames = list(_frames(reader, path, topics, lens_tolerance_s, max_lens_gap_s, require_depth, report, 16))
    if not frames:
        raise BagError(no_frames_message(path, report, lens_tolerance_s))
    meta.update(bag=str(path), storage=storage_name(path), **report.as_dict())
    return Sequence(frames=frames, name=name, meta=meta)


def _name_and_meta(reader, path: Path) -> tuple[str, dict]:
    custom = _custom_data(reader)
    try:
        meta = json.loads(custom.get(CUSTOM_META, "{}"))
    except ValueError:
        meta = {}
    return custom.get(CUSTOM_NAME) or path.stem, meta if isinstance(meta, dict) else {}


def bag_meta(path: str | Path) -> dict:
    """The sequence meta ``write_sequence_bag`` stored in the bag ({} for bags recorded elsewhere)."""
    path = Path(path)
    with open_bag(path) as reader:
        return _name_and_meta(reader, path)[1]

