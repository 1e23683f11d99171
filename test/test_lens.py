"""The one lens rule (LensHistory), the one camera_info rule (CameraInfoHistory) and the one frame-period
estimator (FramePeriod), shared by the live node and bag reading: interpolation in dioptres across gaps up to
1 s, the nearest sample within the tolerance otherwise, a restart when stamps go back, a static fallback, a
wait for a sample still on its way; camera_info by stamp, else the newest before, else the newest, of the
image's size."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dfd_depth_ros.calibration import CameraInfoHistory
from dfd_depth_ros.lens import DEFAULT_MAX_GAP_S, DEFAULT_RESTART_S, DEFAULT_TOLERANCE_S, LensHistory, interpolate_lens
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.stamps import FramePeriod

S = 1_000_000_000  # ns per second
A = LensState(0.5, 2.0, 8e-3)  # 2 dioptres
B = LensState(1.0, 4.0, 10e-3)  # 1 dioptre


def filled(*samples, **kwargs) -> LensHistory:
    history = LensHistory(**kwargs)
    for stamp, lens in samples:
        history.add(stamp, lens)
    return history


def lens_at(history: LensHistory, stamp_ns: int) -> LensState | None:
    return history.at(stamp_ns)[0]


# ----------------------------------------------------------------------------- LensHistory


def test_midpoint_is_interpolated_in_dioptres():
    lens, source = filled((0, A), (S // 2, B)).at(S // 4)
    assert source == "samples"
    assert lens.focus_distance_m == pytest.approx(1 / 1.5)  # not (0.5 + 1.0) / 2
    assert lens.f_number == pytest.approx(3.0)
    assert lens.focal_length_m == pytest.approx(9e-3)


def test_quarter_point_and_exact_stamps():
    history = filled((0, A), (S, B))
    assert lens_at(history, S // 4).focus_diopters == pytest.approx(1.75)
    assert lens_at(history, 0) == A and lens_at(history, S) == B


def test_beyond_the_ends_nearest_within_tolerance_else_none():
    history = filled((S, A), (2 * S, B), tolerance_s=0.1)
    assert lens_at(history, S - S // 20) == A
    assert lens_at(history, 2 * S + S // 20) == B
    assert history.at(S - S // 5) == (None, "none")
    assert lens_at(history, 3 * S) is None
    assert LensHistory().at(0) == (None, "none")


def test_gaps_up_to_one_second_are_interpolated_longer_ones_are_not():
    """The rule that used to differ: the node interpolated across any gap, bags only across 1 s."""
    assert DEFAULT_MAX_GAP_S == 1.0 and DEFAULT_RESTART_S == 1.0 and DEFAULT_TOLERANCE_S == 0.05
    near = filled((0, A), (S, B))  # exactly max_gap_s apart: interpolated
    assert lens_at(near, S // 2).focus_diopters == pytest.approx(1.5)
    far = filled((0, A), (4 * S, B), tolerance_s=0.1)  # 4 s apart: neither interpolated nor near
    assert lens_at(far, 2 * S) is None
    assert lens_at(far, S // 20) == A and lens_at(far, 4 * S - S // 20) == B
    assert lens_at(filled((0, A), (4 * S, B), max_gap_s=10.0), 2 * S).focus_diopters == pytest.approx(1.5)


def test_out_of_order_inserts_give_the_same_answers():
    samples = [(i * S // 10, LensState(0.3 + 0.1 * i, 2.0 + i, 8e-3)) for i in range(8)]
    ordered = filled(*samples)
    shuffled = filled(*[samples[i] for i in (5, 0, 7, 2, 1, 6, 4, 3)])  # reordered by < restart_s
    for stamp in range(0, 8 * S // 10, S // 37):
        assert ordered.at(stamp) == shuffled.at(stamp)
    assert shuffled.newest_ns == samples[-1][0] and len(shuffled) == 8


def test_a_stamp_far_back_restarts_the_history():
    history = filled((10 * S, A), (10 * S + S // 10, B))
    assert not history.add(10 * S - S // 2, A)  # 0.5 s back: sorted in
    assert history.add(2 * S, B)  # 8 s back: a replay from the start, a restarted driver
    assert len(history) == 1 and history.newest_ns == 2 * S
    assert lens_at(history, 10 * S) is None  # the old "future" is gone
    assert lens_at(history, 2 * S) == B


def test_bounded_size_drops_the_oldest_and_same_stamp_replaces():
    history = LensHistory(tolerance_s=0.05, max_samples=3)
    for i in range(5):
        history.add(i * S // 10, LensState(1.0 + i, 2.0, 8e-3))
    assert len(history) == 3
    assert lens_at(history, 0) is None  # dropped
    assert lens_at(history, 2 * S // 10).focus_distance_m == 3.0
    history.add(4 * S // 10, A)
    assert len(history) == 3 and lens_at(history, 4 * S // 10) == A


def test_static_fallback_and_its_source():
    fallback = LensState(2.0, 2.0, 0.01)
    history = LensHistory(fallback=fallback)
    assert history.at(S) == (fallback, "static")
    history.add(S, A)
    assert history.at(S) == (A, "samples")
    assert history.at(5 * S) == (fallback, "static")


def test_tolerance_can_change_at_run_time():
    history = filled((0, A))
    assert lens_at(history, S // 10) is None
    history.tolerance_s = 0.2  # the node's dynamic lens_tolerance_s
    assert lens_at(history, S // 10) == A


def test_at_waits_for_a_sample_on_its_way():
    history = filled((0, A))
    threading.Timer(0.05, history.add, (S // 30, B)).start()
    t0 = time.monotonic()
    lens, _ = history.at(S // 30, wait_s=2.0)
    assert lens == B and time.monotonic() - t0 < 1.5  # woken by the sample, not by the timeout
    t0 = time.monotonic()
    assert history.at(S, wait_s=0.05)[0] is None and time.monotonic() - t0 >= 0.04  # gave up after wait_s


def test_interpolate_lens_endpoints_and_bad_input():
    assert interpolate_lens(A, B, 0.0).focus_distance_m == pytest.approx(A.focus_distance_m)
    assert interpolate_lens(A, B, 1.0).f_number == pytest.approx(B.f_number)
    with pytest.raises(TypeError):
        LensHistory().add(0, (0.5, 2.0, 8e-3))
    with pytest.raises(ValueError):
        LensHistory(max_gap_s=-1.0)


# ----------------------------------------------------------------------------- CameraInfoHistory

K1 = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
K2 = np.array([[200.0, 0, 32], [0, 200.0, 24], [0, 0, 1]])
K_SMALL = np.array([[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]])


def test_camera_info_of_the_stamp_else_newest_before_else_newest():
    infos = CameraInfoHistory()
    infos.add(10 * S, K1, 64, 48, payload="a")
    infos.add(20 * S, K2, 64, 48, payload="b")
    calib, exact = infos.at(20 * S, 64, 48)
    assert exact and calib.payload == "b"
    calib, exact = infos.at(15 * S, 64, 48)  # between: the one in force when the image was taken
    assert not exact and calib.payload == "a"
    np.testing.assert_array_equal(calib.K, K1)
    calib, exact = infos.at(5 * S, 64, 48)  # before all: the newest (a camera_info late for its image)
    assert not exact and calib.payload == "b"


def test_camera_info_must_fit_the_image_size():
    infos = CameraInfoHistory()
    infos.add(10 * S, K1, 64, 48)
    infos.add(20 * S, K_SMALL, 32, 24)
    calib, _ = infos.at(25 * S, 64, 48)  # the newest is for 32x24: skipped
    np.testing.assert_array_equal(calib.K, K1)
    assert infos.at(25 * S, 640, 480) == (None, False)
    infos.add(30 * S, K2, 0, 0)  # a camera_info without a size fits any image
    assert infos.at(35 * S, 640, 480)[0].stamp_ns == 30 * S
    assert infos.newest.stamp_ns == 30 * S


def test_camera_info_history_is_bounded_and_replaces_a_stamp():
    infos = CameraInfoHistory(max_entries=2)
    for i in range(4):
        infos.add(i * S, K1 * (i + 1), 64, 48)
    assert len(infos) == 2 and infos.at(2 * S, 64, 48) == (infos.at(2 * S, 64, 48)[0], True)
    assert infos.at(S + S // 2, 64, 48)[0].stamp_ns == 3 * S  # 1 s was dropped: nothing before, so the newest
    infos.add(3 * S, K2, 64, 48)
    assert len(infos) == 2 and infos.at(3 * S, 64, 48)[0].K[0, 0] == 200.0


# ----------------------------------------------------------------------------- FramePeriod


def test_frame_period_is_the_median_step():
    period = FramePeriod(history=5, min_steps=3)
    period.add_step(33)
    period.add_step(34)
    assert period.median_ns() is None  # two steps: not yet
    period.add_step(-5)  # a backwards stamp is no step
    period.add_step(0)
    period.add_step(100)  # one late frame does not move the median
    assert period.median_ns() == 34.0 and period.period_s() == pytest.approx(34e-9)
    for _ in range(5):
        period.add_step(50)
    assert period.median_ns() == 50.0  # only the last ``history`` steps count
    period.clear()
    assert period.median_ns() is None


def test_camera_info_history_restarts_when_stamps_jump_back():
    """A bounded live history whose stamps jump back (a replayed bag) keeps the new calibrations: without the
    restart the oldest-first eviction would drop each new (older-stamped) entry at once."""
    history = CameraInfoHistory(max_entries=3, restart_s=1.0)
    for i in range(3):
        history.add(100 * S + i, K1, 64, 48)
    history.add(10 * S, K_SMALL, 32, 24)  # 90 s back
    calib, exact = history.at(10 * S, 32, 24)
    assert calib is not None and exact and len(history) == 1


def test_wait_budget_follows_the_lens_streams_own_latency():
    """An image waits for its lens sample only as long as the lens stream's latency (+ 5 ms) needs, capped."""
    history = LensHistory()
    assert history.wait_budget_s(10 * S, 10 * S, cap_s=0.2) == 0.2  # latency unknown yet: the cap
    for i in range(5):  # lens samples arrive 10 ms after their stamps (20 ms once)
        history.add(i * S // 30, A, arrival_ns=i * S // 30 + (20 if i == 2 else 10) * 1_000_000)
    assert history.lens_latency_s() == pytest.approx(0.020)
    stamp = S
    assert history.wait_budget_s(stamp, stamp + 2_000_000, cap_s=0.2) == pytest.approx(0.023)  # image 2 ms late
    assert history.wait_budget_s(stamp, stamp + 40_000_000, cap_s=0.2) == 0.0  # the image itself came late
    assert history.wait_budget_s(stamp, stamp, cap_s=0.01) == 0.01
