"""A fuzz matrix over real DDS: every class of bad input, each followed by good frames.

After each bad input the node must be alive, the next good frames must get finite depth (the plane model:
depth = focus distance, so a poisoned temporal state would show as NaN), and /diagnostics must report the
problem (a WARN status naming it, or the counter / reset reason that belongs to it). The node process,
client and plane model are in depth_node_harness.py / conftest.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from depth_node_harness import FRAME_ID, NS, PERIOD_NS, H, K, W, assert_plane, log_has

from dfd_depth_ros.msgs import convert as rm

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")

DOMAIN = 121  # this module's node and client
WARN = b"\x01"


def image(**fields):
    msg = rm.image_msg(np.zeros((H, W, 3), np.uint8), "rgb8", None)
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def bad_image(client, **fields):
    return client.frame(image=image(**fields))


def bad_info(client, k):
    stamp = client.next_stamp()
    client.send_lens(stamp, 2.0)
    client.send_info(stamp, k=k)
    client.spin_until(lambda: False, 0.15)
    client.send_image(stamp)
    return stamp


def bad_lens(client, names=None, positions=None):
    from sensor_msgs.msg import JointState

    client.stamp_ns += 10 * PERIOD_NS  # no good sample within lens_tolerance_s stands in for this one
    stamp = client.next_stamp()
    client.lens_pub.publish(JointState(header=rm.make_header(stamp, FRAME_ID),
                                       name=list(rm.LENS_JOINTS) if names is None else names, position=positions))
    client.send_info(stamp)
    client.spin_until(lambda: False, 0.15)
    client.send_image(stamp)
    return stamp


def unstamped_image(client):
    stamp = client.frame()
    client.send_image(0)
    return stamp


def duplicate(client):
    stamp = client.frame(focus_m=1.3)
    assert_plane(client, stamp, 1.3)
    client.send_image(stamp)  # the same frame again
    return stamp


LENS3 = list(rm.LENS_JOINTS)
# (case id, bad input, text the node's WARN status (or log) must carry)
CASES = [
    ("encoding_yuv422", lambda c: bad_image(c, encoding="yuv422"), "frame skipped: image"),
    ("encoding_32FC1", lambda c: bad_image(c, encoding="32FC1"), "frame skipped: image"),
    ("buffer_short", lambda c: bad_image(c, data=bytes(H * W * 3 - 7)), "frame skipped: image"),
    ("buffer_empty", lambda c: bad_image(c, data=b""), "frame skipped: image"),
    ("step_too_small", lambda c: bad_image(c, step=W * 3 - 1), "frame skipped: image"),
    ("step_odd_padding", lambda c: bad_image(c, step=W * 3 + 1, data=bytes((W * 3 + 1) * H)), None),  # valid: padded
    ("huge_claim", lambda c: bad_image(c, height=100_000, width=100_000, step=300_000), "frame skipped: image"),
    ("height_times_step_overflows", lambda c: bad_image(c, height=2**31 - 1, step=2**31 - 1), "frame skipped: image"),
    ("zero_size", lambda c: bad_image(c, height=0, width=0, step=0, data=b""), "frame skipped: image"),
    ("K_fx_1e42", lambda c: bad_info(c, [1e42, 0, 31.5, 0, 61, 23.25, 0, 0, 1]), "camera_info refused"),
    ("K_nan", lambda c: bad_info(c, [math.nan, 0, 31.5, 0, 61, 23.25, 0, 0, 1]), "camera_info refused"),
    ("K_zero", lambda c: bad_info(c, [0.0] * 9), "camera_info refused"),
    ("K_negative_fy", lambda c: bad_info(c, [60, 0, 31.5, 0, -61, 23.25, 0, 0, 1]), "camera_info refused"),
    ("focus_1e-39", lambda c: bad_lens(c, positions=[1e-39, 2.0, 0.008]), "lens_sample refused"),
    ("focus_5e-324", lambda c: bad_lens(c, positions=[5e-324, 2.0, 0.008]), "lens_sample refused"),
    ("focus_nan", lambda c: bad_lens(c, positions=[math.nan, 2.0, 0.008]), "lens_sample refused"),
    ("focus_negative", lambda c: bad_lens(c, positions=[-2.0, 2.0, 0.008]), "lens_sample refused"),
    ("diopters_1e39", lambda c: bad_lens(c, ["focus_diopters", "f_number", "focal_length"], [1e39, 2.0, 0.008]),
     "lens_sample refused"),
    ("f_number_1e-40", lambda c: bad_lens(c, positions=[2.0, 1e-40, 0.008]), "lens_sample refused"),
    ("focal_length_1e37", lambda c: bad_lens(c, positions=[2.0, 2.0, 1e37]), "lens_sample refused"),
    ("joint_names_missing", lambda c: bad_lens(c, names=[], positions=[2.0, 2.0, 0.008]), "lens_sample refused"),
    ("joint_length_mismatch", lambda c: bad_lens(c, positions=[2.0, 2.0]), "lens_sample refused"),
    ("joint_extra_position", lambda c: bad_lens(c, positions=[2.0, 2.0, 0.008, 1.0]), "lens_sample refused"),
    ("joint_no_focus", lambda c: bad_lens(c, names=["f_number", "focal_length"], positions=[2.0, 0.008]),
     "lens_sample refused"),
    ("stamp_zero", unstamped_image, "frame skipped: unstamped"),
    ("stamp_duplicate", duplicate, "frame skipped: duplicate_stamp"),
]


def warn_with(client, text: str, since: int, timeout: float = 5.0) -> bool:
    """Whether a depth_node WARN status naming ``text`` arrives on /diagnostics (messages from ``since`` on)."""
    def found():
        for msg in client.received["/diagnostics"][since:]:
            for status in msg.status:
                if "depth_node" in status.name and status.level == WARN and text in status.message:
                    return True
        return False

    return client.spin_until(found, timeout)


@pytest.mark.parametrize("case, send_bad, problem", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_reported_and_never_poisons_the_state(client, node_log, case, send_bad, problem):
    since = len(client.received["/diagnostics"])
    send_bad(client)
    if problem is not None:
        assert warn_with(client, problem, since), f"{case}: no WARN status with {problem!r}:\n{node_log.read_text()}"
    for focus_m in (0.9, 1.7, 2.6):  # three good frames after it: all finite, all the right depth
        stamp = client.frame(focus_m=focus_m)
        assert_plane(client, stamp, focus_m)


def test_infinity_as_metres_and_as_dioptres_is_the_same_frame(client):
    """focus_distance = +inf and focus_diopters = 0 are both accepted, as the same focus."""
    from sensor_msgs.msg import JointState

    depths = []
    for names, focus in ((LENS3, math.inf), (["focus_diopters", "f_number", "focal_length"], 0.0)):
        stamp = client.next_stamp()
        client.lens_pub.publish(JointState(header=rm.make_header(stamp, FRAME_ID), name=names,
                                           position=[focus, 2.0, 0.008]))
        client.send_info(stamp)
        client.spin_until(lambda: False, 0.15)
        client.send_image(stamp)
        msg = client.output("depth/image", stamp)
        assert msg is not None, f"no depth for focus {names[0]} = {focus}"
        depths.append(np.asarray(msg.data))
    assert bytes(depths[0]) == bytes(depths[1])


def test_reversed_stamp_and_gap_right_after_it_both_reset(client, node_log):
    client.frame()
    client.stamp_ns -= 10 * NS
    back = client.frame(focus_m=1.2)
    assert_plane(client, back, 1.2)
    assert client.diagnostics()["last_reset_reason"] == "time_backwards"
    client.stamp_ns += 20 * PERIOD_NS  # a gap right after the reversal
    gap = client.frame(focus_m=1.4)
    assert_plane(client, gap, 1.4)
    assert client.diagnostics()["last_reset_reason"] == "gap"


@pytest.mark.parametrize("change, reason", [("frame_id", "frame_id"), ("resolution", "resolution")])
def test_frame_id_and_resolution_changes_reset_and_go_on(client, node_log, change, reason):
    assert_plane(client, client.frame(focus_m=1.1), 1.1)
    if change == "frame_id":
        stamp = client.next_stamp()
        client.send_lens(stamp, 1.6)
        client.send_info(stamp)
        client.spin_until(lambda: False, 0.15)
        msg = client.send_image(stamp)
        msg.header.frame_id = "other_camera_optical_frame"
        client.image_pub.publish(msg)  # the same stamp again, another frame: a duplicate, skipped
        stamp = client.next_stamp()
        client.send_lens(stamp, 1.6)
        client.send_info(stamp)
        client.spin_until(lambda: False, 0.15)
        msg = rm.image_msg(np.zeros((H, W, 3), np.uint8), "rgb8", rm.make_header(stamp, "other_camera_optical_frame"))
        client.image_pub.publish(msg)
        assert_plane(client, stamp, 1.6)
    else:
        small_k = K.copy()
        small_k[:2] /= 2
        stamp = client.frame(focus_m=1.6, width=W // 2, height=H // 2, k=small_k)
        assert client.output("depth/image", stamp) is not None, node_log.read_text()[-3000:]
        assert_plane(client, stamp, 1.6, shape=(H // 2, W // 2))
    assert client.diagnostics()["last_reset_reason"] == reason
    back = client.frame(focus_m=2.1)
    assert_plane(client, back, 2.1)


def test_counters_name_what_was_refused(client, node_log):
    diag = client.diagnostics()
    assert int(diag["refused_lens_samples"]) >= 11 and int(diag["refused_camera_infos"]) >= 4
    assert int(diag["duplicate_stamps"]) >= 1
    assert "unstamped=" in diag["skipped_by_reason"] and "image=" in diag["skipped_by_reason"]
    assert log_has(node_log, "lens focal_length must be in [0.0001, 10] m, got 1e+37")
    assert "RuntimeWarning" not in node_log.read_text()  # no raw numpy warning: every problem is a message
