"""depth_node over real DDS, its inputs and resets: the temporal state resets on a backwards stamp, on request
and on a change of image size (which follows the camera_info of that size); every kind of bad input (image
encoding, short buffer, zero size, uncalibrated camera_info, invalid lens values, missing lens samples) is
logged and skipped while the next good frame still gets its depth.

See depth_node_harness.py for the node process, the client and the plane model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from depth_node_harness import (
    NS,
    PERIOD_NS,
    H,
    K,
    W,
    assert_plane,
    log_has,
    skipped_for_lens,
)

from dfd_depth_ros.msgs import convert as rm

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")

DOMAIN = 148  # this module's node and client


def test_backwards_stamp_resets_the_state(client):
    client.frame()
    resets = int(client.diagnostics()["state_resets"])
    client.stamp_ns -= 10 * NS  # e.g. a bag replayed from its start
    stamp = client.frame(focus_m=3.0)
    assert_plane(client, stamp, 3.0)
    diag = client.diagnostics()
    assert int(diag["state_resets"]) == resets + 1 and diag["last_reset_reason"] == "time_backwards"
    assert int(diag["stamp_reversals"]) >= 1


def test_reset_service_resets_once(client):
    from std_srvs.srv import Trigger

    assert client.reset.wait_for_service(timeout_sec=5.0)
    resets = int(client.diagnostics()["state_resets"])
    future = client.reset.call_async(Trigger.Request())
    assert client.spin_until(future.done, 5.0) and future.result().success
    stamp = client.frame(focus_m=2.5)
    assert_plane(client, stamp, 2.5)
    diag = client.diagnostics()
    assert int(diag["state_resets"]) == resets + 1 and diag["last_reset_reason"] == "request"


def bad_image(kind: str):
    from sensor_msgs.msg import Image

    good = rm.image_msg(np.zeros((H, W, 3), np.uint8), "rgb8", None)
    if kind == "encoding":
        good.encoding = "yuv422"
    elif kind == "short":
        good.data = bytes(H * W * 3 - 10)
    elif kind == "zero":
        return Image(height=0, width=0, encoding="rgb8", step=0, data=b"")
    return good


@pytest.mark.parametrize("kind, logged", [
    ("encoding", "unsupported image encoding 'yuv422'"),
    ("short", "fewer than height * step"),
    ("zero", "zero size (0x0)"),
])
def test_bad_image_is_skipped_and_the_next_frame_works(client, node_log, kind, logged):
    bad = client.frame(image=bad_image(kind))
    client.spin_until(lambda: False, 0.15)
    good = client.frame(focus_m=1.5)
    assert_plane(client, good, 1.5)
    assert client.output("depth/image", bad, timeout=0.0) is None
    assert log_has(node_log, logged)


def test_uncalibrated_camera_info_is_ignored(client, node_log):
    stamp = client.next_stamp()
    client.send_lens(stamp, 2.0)
    client.send_info(stamp, k=np.zeros(9))
    client.spin_until(lambda: False, 0.1)
    client.send_image(stamp)
    assert_plane(client, stamp, 2.0)  # the last good K (the newest before this stamp) still applies
    assert log_has(node_log, "camera_info K is all zeros (uncalibrated camera_info?); camera_info ignored")
    good = client.frame(focus_m=1.75)
    assert_plane(client, good, 1.75)


@pytest.mark.parametrize("positions, logged", [
    ([0.0, 2.0, 0.008], "lens focus_distance must be in [0.001, 1e+06] m or +inf (infinity), got 0.0"),
    ([-2.0, 2.0, 0.008], "lens focus_distance must be in [0.001, 1e+06] m or +inf (infinity), got -2.0"),
    ([math.nan, 2.0, 0.008], "lens focus_distance must be in [0.001, 1e+06] m or +inf (infinity), got nan"),
    ([2.0, 0.0, 0.008], "lens f_number must be in [0.5, 64], got 0.0"),
])
def test_bad_lens_sample_is_ignored(client, node_log, positions, logged):
    client.stamp_ns += 10 * PERIOD_NS  # so no older good sample is within tolerance of the next frame
    stamp = client.next_stamp()
    client.send_lens(stamp, positions=positions)
    client.send_info(stamp)
    client.spin_until(lambda: False, 0.1)
    client.send_image(stamp)
    assert log_has(node_log, logged)
    assert log_has(node_log, skipped_for_lens(stamp))  # its only lens sample was refused
    good = client.frame(focus_m=0.75)
    assert_plane(client, good, 0.75)
    assert client.output("depth/image", stamp, timeout=0.0) is None


def test_missing_lens_samples_skip_frames_until_they_return(client, node_log):
    skipped = int(client.diagnostics()["skipped_frames"])
    client.stamp_ns += 10 * PERIOD_NS
    silent = []
    for _ in range(3):  # one at a time: while the node waits lens_wait_s, a newer image would replace it
        silent.append(client.frame(lens=False))
        assert log_has(node_log, skipped_for_lens(silent[-1]))
    assert log_has(node_log, "no lens state within lens_tolerance_s = 0.05 s")
    good = client.frame(focus_m=2.25)
    assert_plane(client, good, 2.25)
    assert all(client.output("depth/image", s, timeout=0.0) is None for s in silent)
    diag = client.diagnostics()
    assert int(diag["skipped_frames"]) == skipped + 3 and diag["last_skip_reason"] == "no_lens"


def test_image_size_change_resets_and_follows_camera_info(client, node_log):
    small_k = K.copy()
    small_k[:2] /= 2
    mismatch = client.frame(width=W // 2, height=H // 2, info=False)  # camera_info still says 64x48
    # Wait for the node to reject it before the matching camera_info goes out (a loaded machine may lag).
    assert log_has(node_log, f"camera_info is for {W}x{H} but the image is {W // 2}x{H // 2}", timeout=10.0)
    stamp = client.frame(focus_m=1.1, width=W // 2, height=H // 2, k=small_k)
    assert_plane(client, stamp, 1.1, shape=(H // 2, W // 2))
    assert client.output("depth/image", mismatch, timeout=0.0) is None
    assert client.diagnostics()["last_reset_reason"] == "resolution"
    back = client.frame(focus_m=1.9)
    assert_plane(client, back, 1.9)
