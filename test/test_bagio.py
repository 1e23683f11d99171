"""bagio: contract bags round trip bit for bit; recorded-style bags (bgr8, padding, lens at its own rate) read
correctly; broken bags fail with one clear BagError; make-bag writes a readable bag."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from dfd_depth_ros.evaluation import bagio
from dfd_depth_ros.evaluation.bagio import BagError, BagTopics, read_sequence_bag, write_sequence_bag
from dfd_depth_ros.frames import Frame, Sequence, intrinsics_matrix
from dfd_depth_ros.lens import LensHistory
from dfd_depth_ros.msgs.image import array_to_image_fields, fields_to_rosbags
from dfd_depth_ros.optics import LensState

H, W = 6, 9
T0_NS = 1_700_000_000_123_456_789
DT_NS = 33_333_333
K = intrinsics_matrix(12.5, 12.25, 4.5, 2.75)


def make_sequence(n: int = 4, seed: int = 0, depth: bool = True) -> Sequence:
    """n random frames; depth has NaN holes; focus changes every frame."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        depth_m = None
        if depth:
            depth_m = rng.uniform(0.2, 8.0, (H, W)).astype(np.float32)
            depth_m[rng.random((H, W)) < 0.2] = np.nan
        lens = LensState(0.3 + 0.37 * i, 2.8, 0.0085)
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        frames.append(Frame(image, K.copy(), lens, T0_NS + i * DT_NS, depth_m, frame_id="cam_optical"))
    return Sequence(frames, name="unit", meta={"seed": seed, "not_json": np.zeros(2)})


def tree_digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_is_bit_identical(tmp_path, storage):
    seq = make_sequence()
    bag = write_sequence_bag(seq, tmp_path / "bag", storage=storage)
    before = tree_digest(bag)
    back = read_sequence_bag(bag)
    assert tree_digest(bag) == before, "reading must not modify the bag"
    assert back.name == "unit" and back.meta["storage"] == storage and back.meta["seed"] == 0
    assert back.meta["frames"] == len(seq) and back.meta["skipped_no_lens"] == 0
    for a, b in zip(seq, back, strict=True):
        assert b.image.dtype == np.uint8 and np.array_equal(a.image, b.image)
        assert np.array_equal(a.depth_m.view(np.uint32), b.depth_m.view(np.uint32))  # NaNs included
        assert np.array_equal(a.K, b.K)
        assert b.lens == a.lens and b.stamp_ns == a.stamp_ns and b.frame_id == "cam_optical"
        assert b.image.flags.writeable and b.depth_m.flags.writeable


@pytest.mark.parametrize("encoding", ["bgr8", "mono8"])
def test_written_encodings_read_back_as_the_same_picture(tmp_path, encoding):
    seq = make_sequence(2)
    bag = write_sequence_bag(seq, tmp_path / "bag", encoding=encoding)
    ts = bagio.typestore()
    with bagio.open_bag(bag) as reader:
        images = [ts.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages()
                  if c.topic == "/camera/image_raw"]
    assert {m.encoding for m in images} == {encoding}
    back = read_sequence_bag(bag)
    for a, b in zip(seq, back, strict=True):
        if encoding == "bgr8":
            assert np.array_equal(a.image, b.image)
        else:  # grey: every channel carries the luma of the RGB frame
            luma = a.image.astype(np.float64) @ [0.299, 0.587, 0.114]
            assert np.all(np.abs(b.image.astype(np.float64) - luma[..., None]) <= 0.5 + 1e-9)


def test_unknown_encoding_is_refused(tmp_path):
    with pytest.raises(BagError, match="encoding"):
        write_sequence_bag(make_sequence(1), tmp_path / "bag", encoding="rgba8")
    assert not (tmp_path / "bag").exists()


def test_contract_messages_and_metadata(tmp_path):
    seq = make_sequence(2)
    bag = write_sequence_bag(seq, tmp_path / "bag", version=8)
    assert "version: 8" in (bag / "metadata.yaml").read_text()
    ts = bagio.typestore()
    with bagio.open_bag(bag) as reader:
        msgs = {}
        for conn, log_ns, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((log_ns, ts.deserialize_cdr(raw, conn.msgtype)))
    assert sorted(msgs) == sorted(vars(BagTopics()).values())
    stamps = {topic: [bagio.stamp_ns(m.header) for _, m in items] for topic, items in msgs.items()}
    assert all(s == [T0_NS, T0_NS + DT_NS] for s in stamps.values())
    info = msgs["/camera/camera_info"][0][1]
    assert info.distortion_model == "plumb_bob" and info.d.tolist() == [0.0] * 5
    assert np.array_equal(info.r, np.eye(3).ravel()) and np.array_equal(info.p.reshape(3, 4)[:, :3], K)
    assert (info.height, info.width) == (H, W)
    lens = msgs["/camera/lens_state"][1][1]
    assert lens.name == ["focus_distance", "f_number", "focal_length"]
    assert lens.position.tolist() == list(seq[1].lens.as_tuple())
    assert msgs["/camera/image_raw"][0][1].encoding == "rgb8"
    assert msgs["/camera/depth_gt"][0][1].encoding == "32FC1"
    assert msgs["/camera/image_raw"][0][1].header.frame_id == "cam_optical"


# ----------------------------------------------------------------------------- hand-made bags


def header(stamp_ns: int, frame_id: str = "cam"):
    types = bagio.typestore().types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


def joint_state(stamp_ns: int, values: dict[str, float]):
    return bagio.typestore().types["sensor_msgs/msg/JointState"](
        header=header(stamp_ns), name=list(values), position=np.array(list(values.values()), dtype=np.float64),
        velocity=np.zeros(0), effort=np.zeros(0))


def camera_info(stamp_ns: int):
    types = bagio.typestore().types
    P = np.hstack([K, np.zeros((3, 1))])
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns), height=H, width=W, distortion_model="plumb_bob", d=np.zeros(5),
        k=K.ravel().copy(), r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0, roi=roi)


def image(stamp_ns: int, arr: np.ndarray, encoding: str, pad: int = 0):
    row = arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    fields = array_to_image_fields(arr, encoding, step=row + pad)
    return fields_to_rosbags(fields, header(stamp_ns), bagio.typestore())


def write_bag(path: Path, messages: list[tuple[str, int, object]], storage: str = "mcap") -> Path:
    """Write (topic, log time ns, rosbags message) records; one connection per topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = bagio.typestore()
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, log_ns, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=ts)
            writer.write(conns[topic], log_ns, ts.serialize_cdr(msg, msg.__msgtype__))
    return path


def diopters_at(t_ns: int) -> float:
    return 0.4 + 3.0 * (t_ns - T0_NS) / 1e9


def f_number_at(t_ns: int) -> float:
    return 2.0 + 4.0 * (t_ns - T0_NS) / 1e9


def recorded_messages(rgb: list[np.ndarray], encoding: str, pad: int, lens_period_ns: int = 10_000_000):
    """Images at 30 Hz, lens samples at their own rate (shuffled names, an extra joint, some in dioptres)."""
    image_stamps = [T0_NS + i * DT_NS for i in range(len(rgb))]
    msgs = []
    for i, (t, arr) in enumerate(zip(image_stamps, rgb, strict=True)):
        pixels = {"rgb8": arr, "bgr8": arr[:, :, ::-1], "mono8": arr[:, :, 0]}[encoding]
        depth = image(t, np.full((H, W), 1.0 + i, np.float32), "32FC1")
        msgs += [("/camera/camera_info", t, camera_info(t)),
                 ("/camera/image_raw", t + 5, image(t, pixels, encoding, pad)),
                 ("/camera/depth_gt", t + 40_000_000, depth)]  # depth arrives after the next image
    t = T0_NS - 7_000_000
    k = 0
    while t < image_stamps[-1] + 20_000_000:
        values = {"zoom": 99.0, "f_number": f_number_at(t), "focal_length": 0.012}
        if k % 2:
            values["focus_diopters"] = diopters_at(t)
        else:
            values["focus_distance"] = 1.0 / diopters_at(t)
        names = list(values)[::-1] if k % 3 else list(values)
        msgs.append(("/camera/lens_state", t + 2_000_000, joint_state(t, {n: values[n] for n in names})))
        t += lens_period_ns
        k += 1
    return sorted(msgs, key=lambda m: m[1]), image_stamps


@pytest.mark.parametrize("encoding, pad, storage", [("bgr8", 5, "mcap"), ("mono8", 3, "sqlite3"), ("rgb8", 0, "mcap")])
def test_recorded_style_bag_reads_correctly(tmp_path, encoding, pad, storage):
    rng = np.random.default_rng(1)
    rgb = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(5)]
    msgs, stamps = recorded_messages(rgb, encoding, pad)
    seq = read_sequence_bag(write_bag(tmp_path / "rec", msgs, storage))
    assert [f.stamp_ns for f in seq] == stamps and seq.name == "rec"
    for i, (frame, arr) in enumerate(zip(seq, rgb, strict=True)):
        expected = arr if encoding != "mono8" else np.repeat(arr[:, :, :1], 3, axis=2)
        assert np.array_equal(frame.image, expected)
        assert np.array_equal(frame.K, K) and frame.frame_id == "cam"
        assert frame.depth_m.shape == (H, W) and np.all(frame.depth_m == 1.0 + i)
        t = frame.stamp_ns
        assert frame.lens.focus_distance_m == pytest.approx(1.0 / diopters_at(t), rel=1e-9)
        assert frame.lens.f_number == pytest.approx(f_number_at(t), rel=1e-9)
        assert frame.lens.focal_length_m == pytest.approx(0.012, rel=1e-12)
    assert seq.meta["skipped_no_lens"] == 0 and seq.meta["camera_info_inexact"] == 0


def test_frames_without_lens_state_are_skipped_and_counted(tmp_path):
    rgb = [np.zeros((H, W, 3), np.uint8)] * 6
    msgs, stamps = recorded_messages(rgb, "rgb8", 0)
    cutoff = stamps[2] + 10_000_000  # lens samples stop 10 ms after frame 2
    msgs = [m for m in msgs if m[0] != "/camera/lens_state" or bagio.stamp_ns(m[2].header) <= cutoff]
    bag = write_bag(tmp_path / "gap", msgs)
    seq = read_sequence_bag(bag)  # frame 3 is 23 ms after the last sample: within the 50 ms tolerance
    assert [f.stamp_ns for f in seq] == stamps[:4]
    assert seq.meta["skipped_no_lens"] == 2
    assert len(read_sequence_bag(bag, lens_tolerance_s=0.01)) == 3
    assert len(read_sequence_bag(bag, lens_tolerance_s=math.inf)) == 6


def test_bag_lens_lookup_interpolates_in_diopters_and_falls_back_to_nearest():
    """What bagio reads a bag with: an unbounded LensHistory (the live node's, with its defaults: 1 s gap limit)."""
    track = LensHistory(tolerance_s=0.05, max_samples=None)
    samples = {0: (1.0, 2.0, 0.01), 1_000_000_000: (0.5, 4.0, 0.02), 5_000_000_000: (2.0, 4.0, 0.02)}
    for stamp, sample in samples.items():
        track.add(stamp, LensState(*sample))
    mid = track.at(500_000_000)[0]
    assert mid.focus_distance_m == pytest.approx(1 / 1.5) and mid.f_number == pytest.approx(3.0)
    assert mid.focal_length_m == pytest.approx(0.015)
    assert track.at(1_000_000_000)[0].focus_distance_m == 0.5  # exact sample: value as stored
    assert track.at(3_000_000_000)[0] is None  # samples 4 s apart: no interpolation, none near
    assert track.at(1_040_000_000)[0].focus_distance_m == 0.5
    assert track.at(-40_000_000)[0].focus_distance_m == 1.0
    assert track.at(-60_000_000)[0] is None
    assert track.at(5_049_000_000)[0].focus_distance_m == 2.0
    assert track.at(5_051_000_000)[0] is None


def test_no_usable_lens_state_at_all_is_an_error(tmp_path):
    msgs = [("/camera/camera_info", T0_NS, camera_info(T0_NS)),
            ("/camera/image_raw", T0_NS, image(T0_NS, np.zeros((H, W, 3), np.uint8), "rgb8")),
            ("/camera/lens_state", T0_NS, joint_state(T0_NS, {"focus": 1.0, "aperture": 2.0}))]
    with pytest.raises(BagError, match=r"no frame has a usable lens state \(1 frames skipped; 1 lens samples, "
                                       r"1 unusable"):
        read_sequence_bag(write_bag(tmp_path / "b", msgs))


def test_depth_topic_is_optional_unless_required(tmp_path):
    bag = write_sequence_bag(make_sequence(2), tmp_path / "nodepth", write_depth=False)
    seq = read_sequence_bag(bag)
    assert all(f.depth_m is None for f in seq) and seq.meta["frames_without_depth"] == 2
    with pytest.raises(BagError, match="no depth_gt topic '/camera/depth_gt'"):
        read_sequence_bag(bag, require_depth=True)


def test_topic_names_are_overridable(tmp_path):
    topics = BagTopics(image="/cam/img", camera_info="/cam/info", lens_state="/cam/lens", depth_gt="/cam/depth")
    bag = write_sequence_bag(make_sequence(2), tmp_path / "renamed", topics=topics)
    assert len(read_sequence_bag(bag, topics=topics)) == 2


# ----------------------------------------------------------------------------- errors


def test_missing_topic_error_lists_the_bags_topics(tmp_path):
    msgs = [("/camera/camera_info", T0_NS, camera_info(T0_NS)),
            ("/camera/image_raw", T0_NS, image(T0_NS, np.zeros((H, W, 3), np.uint8), "rgb8"))]
    bag = write_bag(tmp_path / "nolens", msgs)
    with pytest.raises(BagError) as err:
        read_sequence_bag(bag)
    text = str(err.value)
    assert "no lens_state topic '/camera/lens_state' (sensor_msgs/msg/JointState)" in text
    assert "/camera/camera_info [sensor_msgs/msg/CameraInfo], /camera/image_raw [sensor_msgs/msg/Image]" in text


def test_wrong_message_type_on_a_topic(tmp_path):
    msgs = [("/camera/camera_info", T0_NS, camera_info(T0_NS)),
            ("/camera/lens_state", T0_NS, camera_info(T0_NS)),
            ("/camera/image_raw", T0_NS, image(T0_NS, np.zeros((H, W, 3), np.uint8), "rgb8"))]
    with pytest.raises(BagError, match="'/camera/lens_state' has type sensor_msgs/msg/CameraInfo, expected "
                                       "sensor_msgs/msg/JointState"):
        read_sequence_bag(write_bag(tmp_path / "wrong", msgs))


def test_unreadable_image_encoding(tmp_path):
    bad = image(T0_NS, np.zeros((H, W, 3), np.uint8), "rgb8")
    bad.encoding = "yuv422"
    lens = joint_state(T0_NS, {"focus_distance": 1, "f_number": 2, "focal_length": 0.01})
    msgs = [("/camera/camera_info", T0_NS, camera_info(T0_NS)), ("/camera/image_raw", T0_NS, bad),
            ("/camera/lens_state", T0_NS, lens)]
    with pytest.raises(BagError, match=r"/camera/image_raw at stamp \d+ ns: unsupported image encoding 'yuv422'; "
                                       r"supported: rgb8, bgr8"):
        read_sequence_bag(write_bag(tmp_path / "yuv", msgs))


@pytest.mark.parametrize("storage, suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_or_truncated_bag(tmp_path, storage, suffix, damage):
    bag = write_sequence_bag(make_sequence(3), tmp_path / "bag", storage=storage)
    data_file = next(bag.glob(f"*{suffix}"))
    raw = data_file.read_bytes()
    if damage == "truncate":
        data_file.write_bytes(raw[: len(raw) // 2])
    else:
        data_file.write_bytes(raw[:200] + bytes(len(raw) - 200))
    with pytest.raises(BagError, match=f"cannot read bag {bag}: it is corrupt or truncated"):
        read_sequence_bag(bag)


def test_damage_inside_an_mcap_chunk_is_reported_while_reading(tmp_path):
    bag = write_sequence_bag(make_sequence(3), tmp_path / "bag")
    data_file = next(bag.glob("*.mcap"))
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 300] = b"\xff" * 300  # header and footer intact
    data_file.write_bytes(bytes(raw))
    with pytest.raises(BagError, match=f"cannot read bag {bag}: it is corrupt or truncated"):
        read_sequence_bag(bag)


def test_paths_that_are_not_bags(tmp_path):
    with pytest.raises(BagError, match="no such file or folder"):
        read_sequence_bag(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="is not a rosbag2 bag: it has no metadata.yaml"):
        read_sequence_bag(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BagError, match="is not a rosbag2 bag"):
        read_sequence_bag(tmp_path / "notes.txt")


def test_writer_refuses_to_overwrite_and_bad_input(tmp_path):
    bag = write_sequence_bag(make_sequence(1), tmp_path / "bag")
    with pytest.raises(BagError, match="exists; not overwriting"):
        write_sequence_bag(make_sequence(1), bag)
    seq = make_sequence(2)
    seq.frames[1].stamp_ns = seq.frames[0].stamp_ns
    with pytest.raises(BagError, match="strictly increasing"):
        write_sequence_bag(seq, tmp_path / "dup")
    assert not (tmp_path / "dup").exists()


# ----------------------------------------------------------------------------- make-bag


def run_make_bag(argv: list[str]) -> int:
    from dfd_depth_ros.commands import make_bag

    parser = argparse.ArgumentParser()
    make_bag.register(parser.add_subparsers())
    args = parser.parse_args(["make-bag", *argv])
    return args.func(args)


def test_make_bag_writes_a_readable_bag_and_refuses_to_overwrite(tmp_path, capsys):
    """The real generator, end to end: the options reach the bag, and existing folders are protected."""
    from dfd_depth_ros.cli import CommandError

    out = tmp_path / "bag"
    argv = ["--out", str(out), "--storage", "sqlite3", "--frames", "3", "--schedule", "rack", "--focal-length-mm",
            "8.5", "--no-noise", "--width", "64", "--height", "48"]
    assert run_make_bag(argv) == 0
    line = capsys.readouterr().out.strip()
    assert str(out) in line and "3 frames" in line and "sqlite3" in line and "f=8.5 mm" in line
    seq = read_sequence_bag(out)
    assert len(seq) == 3 and seq[0].image.shape == (48, 64, 3)
    assert all(f.lens.focal_length_m == pytest.approx(0.0085) for f in seq)
    assert seq[0].lens.focus_distance_m != seq[-1].lens.focus_distance_m  # a rack focus moves
    with pytest.raises(CommandError, match="not empty"):
        run_make_bag(argv)
    assert run_make_bag([*argv, "--force"]) == 0
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(CommandError, match="not a rosbag2 bag"):
        run_make_bag([*argv, "--force"])
    assert (out / "notes.txt").exists()
