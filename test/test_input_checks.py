"""Physical-range checks at the edge (dfd_depth_ros.input_checks): absurd but finite lens values and K are refused
by the node's parsers and by the bag reader alike; +inf metres and 0 dioptres are one infinity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfd_depth_ros import input_checks as ic
from dfd_depth_ros.frames import Frame, Sequence, intrinsics_matrix
from dfd_depth_ros.optics import LensState


@pytest.mark.parametrize("distance_m", [1e-39, 5e-324, 0.0, -1.0, math.nan, -math.inf, 1e-4, 2e6])
def test_absurd_focus_distances_are_refused(distance_m):
    with pytest.raises(ic.InputRangeError, match="focus_distance must be in"):
        ic.focus_m_from_distance(distance_m)


@pytest.mark.parametrize("diopters", [1e39, math.inf, math.nan, -0.5, 1e-9, 2000.0])
def test_absurd_focus_diopters_are_refused(diopters):
    with pytest.raises(ic.InputRangeError, match="dioptres"):
        ic.focus_m_from_diopters(diopters)


def test_infinity_is_one_value_however_written():
    assert ic.focus_m_from_distance(math.inf) == ic.focus_m_from_diopters(0.0) == ic.FOCUS_AT_INFINITY_M
    assert ic.focus_m_from_distance(ic.FOCUS_AT_INFINITY_M) == ic.FOCUS_AT_INFINITY_M  # what our bags store
    assert ic.focus_m_from_diopters(4.0) == 0.25 and ic.focus_m_from_distance(0.25) == 0.25


@pytest.mark.parametrize("f_number, focal_length_m, match", [
    (1e-40, 0.008, "f_number"), (0.0, 0.008, "f_number"), (65.0, 0.008, "f_number"), (math.nan, 0.008, "f_number"),
    (2.0, 1e37, "focal_length"), (2.0, 1e-6, "focal_length"), (2.0, -0.008, "focal_length"),
])
def test_absurd_apertures_and_focal_lengths_are_refused(f_number, focal_length_m, match):
    with pytest.raises(ic.InputRangeError, match=match):
        ic.checked_lens(2.0, f_number, focal_length_m)


def test_every_sane_lens_gives_a_finite_float32_network_input():
    """The bounds imply a finite fx * D: the extreme corners of the box still fit in float32."""
    for focus in (ic.FOCUS_MIN_M, ic.FOCUS_AT_INFINITY_M):
        for n in (ic.F_NUMBER_MIN, ic.F_NUMBER_MAX):
            for f in (ic.FOCAL_LENGTH_MIN_M, ic.FOCAL_LENGTH_MAX_M):
                for fx in (1e-3, ic.FX_MAX_PX):
                    x = ic.network_lens_input(ic.checked_lens(focus, n, f), fx)
                    assert x.dtype == np.float32 and np.all(np.isfinite(x)) and np.all(x > 0)


def test_network_lens_input_refuses_what_overflows_float32():
    lens = LensState(2.0, 2.0, 0.008)  # a LensState itself only asks for finite > 0
    with pytest.raises(ic.InputRangeError, match="float32"):
        ic.network_lens_input(lens, 1e42)
    with pytest.raises(ic.InputRangeError, match="float32"):
        ic.network_lens_input(LensState(1e-39, 2.0, 0.008), 100.0)


@pytest.mark.parametrize("fx, fy, match", [(1e42, 50.0, "fx=1e\\+42"), (50.0, 2e6, "below"), (0.0, 50.0, "fx=0.0")])
def test_absurd_intrinsics_are_refused(fx, fy, match):
    with pytest.raises(ic.InputRangeError, match=match):
        ic.check_intrinsics(intrinsics_matrix(fx, fy, 32, 24))
    assert ic.check_intrinsics(intrinsics_matrix(500.0, 500.0, 32, 24)).shape == (3, 3)


def test_bag_reader_refuses_the_same_absurd_lens_and_K(tmp_path):
    """Bags use the node's parsers (msgs.convert), so the same checks: the frame whose only lens sample is
    absurd has no lens state, the frame with fx = 1e42 has no camera_info; both are skipped and counted."""
    pytest.importorskip("rosbags")
    from dfd_depth_ros.evaluation.bagio.read import read_sequence_bag
    from dfd_depth_ros.evaluation.bagio.write import write_sequence_bag

    rgb = np.zeros((16, 24, 3), np.uint8)
    K = intrinsics_matrix(30.0, 30.0, 12, 8)
    bad_K = intrinsics_matrix(1e42, 30.0, 12, 8)
    lenses = [LensState(1.0, 2.0, 0.008), LensState(1e-39, 2.0, 0.008), LensState(1.0, 2.0, 0.008)]
    period = 2_000_000_000  # 2 s apart: no neighbour stands in for a refused sample
    frames = [Frame(rgb, K, lenses[i], (i + 1) * period) for i in range(3)]
    frames.append(Frame(rgb, bad_K, LensState(1.0, 2.0, 0.008), 4 * period))
    frames[3] = Frame(rgb, bad_K, frames[3].lens, frames[3].stamp_ns, frame_id="other")
    write_sequence_bag(Sequence(frames, name="absurd"), tmp_path / "absurd")
    seq = read_sequence_bag(tmp_path / "absurd")
    assert [f.stamp_ns for f in seq] == [period, 3 * period, 4 * period]  # frame 2: no lens state
    assert seq.meta["lens_samples_ignored"] == 1 and seq.meta["skipped_no_lens"] == 1
    np.testing.assert_array_equal(seq[-1].K, K)  # the absurd camera_info was refused; the last good one applies
