"""LensBuffer: the lens state at an image stamp, interpolated in dioptres, within a tolerance at the ends."""

from __future__ import annotations

import pytest

from dfd_depth_ros.lens import LensBuffer, interpolate_lens
from dfd_depth_ros.optics import LensState

S = 1_000_000_000  # ns per second
A = LensState(0.5, 2.0, 8e-3)  # 2 dioptres
B = LensState(1.0, 4.0, 10e-3)  # 1 dioptre


def filled(*samples) -> LensBuffer:
    buf = LensBuffer()
    for stamp, lens in samples:
        buf.add(stamp, lens)
    return buf


def test_midpoint_is_interpolated_in_dioptres():
    lens = filled((0, A), (S, B)).at(S // 2)
    assert lens.focus_distance_m == pytest.approx(1 / 1.5)  # not (0.5 + 1.0) / 2
    assert lens.f_number == pytest.approx(3.0)
    assert lens.focal_length_m == pytest.approx(9e-3)


def test_quarter_point_and_exact_stamps():
    buf = filled((0, A), (S, B))
    assert buf.at(S // 4).focus_diopters == pytest.approx(1.75)
    assert buf.at(0) == A and buf.at(S) == B


def test_beyond_the_ends_nearest_within_tolerance_else_none():
    buf = filled((S, A), (2 * S, B))
    assert buf.at(S - S // 20, tolerance_s=0.1) == A
    assert buf.at(2 * S + S // 20, tolerance_s=0.1) == B
    assert buf.at(S - S // 5, tolerance_s=0.1) is None
    assert buf.at(3 * S, tolerance_s=0.1) is None
    assert LensBuffer().at(0) is None


def test_out_of_order_inserts_give_the_same_answers():
    samples = [(i * S // 10, LensState(0.3 + 0.1 * i, 2.0 + i, 8e-3)) for i in range(8)]
    ordered = filled(*samples)
    shuffled = filled(*[samples[i] for i in (5, 0, 7, 2, 1, 6, 4, 3)])
    for stamp in range(0, 8 * S // 10, S // 37):
        assert ordered.at(stamp) == shuffled.at(stamp)
    assert shuffled.latest == samples[-1]


def test_bounded_size_drops_the_oldest():
    buf = LensBuffer(max_samples=3)
    for i in range(5):
        buf.add(i * S, LensState(1.0 + i, 2.0, 8e-3))
    assert len(buf) == 3
    assert buf.at(0, tolerance_s=0.5) is None  # dropped
    assert buf.at(2 * S).focus_distance_m == 3.0


def test_same_stamp_replaces():
    buf = filled((S, A), (S, B))
    assert len(buf) == 1 and buf.at(S) == B


def test_interpolate_lens_endpoints():
    assert interpolate_lens(A, B, 0.0).focus_distance_m == pytest.approx(A.focus_distance_m)
    assert interpolate_lens(A, B, 1.0).f_number == pytest.approx(B.f_number)


def test_add_rejects_non_lens():
    with pytest.raises(TypeError):
        LensBuffer().add(0, (0.5, 2.0, 8e-3))


def test_max_gap_limits_interpolation_to_near_samples():
    buf = LensBuffer(max_samples=None, max_gap_s=1.0)
    for stamp, lens in ((0, A), (4 * S, B)):
        buf.add(stamp, lens)
    assert buf.at(2 * S, tolerance_s=0.1) is None  # 4 s apart: neither interpolated nor near
    assert buf.at(S // 20, tolerance_s=0.1) == A and buf.at(4 * S - S // 20, tolerance_s=0.1) == B
    assert filled((0, A), (4 * S, B)).at(2 * S).focus_diopters == pytest.approx(1.5)  # default: no limit
    with pytest.raises(ValueError):
        LensBuffer(max_gap_s=-1.0)
