"""DepthStream's state guard: an absurd lens never reaches the state, and a non-finite output resets it
("non_finite") and is computed again from the fresh state, so no NaN stream follows one bad sample."""

from __future__ import annotations

import numpy as np
import pytest

from dfd_depth_ros.backends.base import Backend
from dfd_depth_ros.depth_stream import DepthStream, NonFiniteOutput
from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.optics import LensState

K = intrinsics_matrix(40.0, 40.0, 20, 15)
GOOD = LensState(2.0, 2.0, 0.008)
PERIOD_NS = 33_333_333


class AccumulatingBackend(Backend):
    """A recurrent model in miniature: state += lens input; depth = 1 + tanh(state); so a NaN or an
    overflow in the lens input stays in the state (and in every later depth) until the state is reset."""

    name = "accumulating"

    def __init__(self, poison_on_run: int | None = None):
        super().__init__()
        self.model_path = "accumulating"
        self.state = np.zeros(1, np.float64)
        self.runs = 0
        self.poison_on_run = poison_on_run

    def load(self, model_path):
        self.model_path = model_path

    def _zero_state(self, height, width):
        self.state = np.zeros(1, np.float64)

    def _run(self, image, lens):
        self.runs += 1
        if self.runs == self.poison_on_run:
            self.state[:] = np.nan  # e.g. a numerical blow-up inside the network
        with np.errstate(invalid="ignore", over="ignore"):
            self.state = self.state + 1e-3 * lens.astype(np.float64).sum()
            depth = np.full(image.shape[2:], 1.0 + np.tanh(self.state[0]), np.float32)
        return depth, np.full(image.shape[2:], 0.5, np.float32)


def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def test_absurd_lens_is_refused_before_the_state_and_the_next_frame_is_finite():
    backend = AccumulatingBackend()
    stream = DepthStream(backend=backend)
    stream.process(image(), K, GOOD, 0, "cam")
    state_before = backend.state.copy()
    for absurd in (LensState(1e-39, 2.0, 0.008), LensState(2.0, 1e-40, 0.008), LensState(2.0, 2.0, 1e37)):
        with pytest.raises(ValueError, match="lens"):
            stream.process(image(), K, absurd, PERIOD_NS, "cam")
    with pytest.raises(ValueError, match="fx"):
        stream.process(image(), intrinsics_matrix(1e42, 40.0, 20, 15), GOOD, PERIOD_NS, "cam")
    np.testing.assert_array_equal(backend.state, state_before)  # untouched
    result = stream.process(image(), K, GOOD, PERIOD_NS, "cam")
    assert np.all(np.isfinite(result.depth_m)) and result.reset_reason is None


def test_non_finite_output_resets_the_state_and_recomputes_the_frame():
    backend = AccumulatingBackend(poison_on_run=3)
    stream = DepthStream(backend=backend)
    reasons = []
    for i in range(12):
        result = stream.process(image(), K, GOOD, i * PERIOD_NS, "cam")
        assert np.all(np.isfinite(result.depth_m)), f"frame {i} is not finite"
        reasons.append(result.reset_reason)
    assert reasons[0] == "start" and reasons[2] == "non_finite"
    assert reasons[3:] == [None] * 9  # one reset, then the stream goes on from the fresh state
    assert backend.runs == 13  # frame 2 ran twice


def test_output_that_stays_non_finite_is_refused_and_leaves_a_fresh_state():
    class AlwaysNaN(AccumulatingBackend):
        def _run(self, image, lens):
            self.runs += 1
            return np.full(image.shape[2:], np.nan, np.float32), np.zeros(image.shape[2:], np.float32)

    stream = DepthStream(backend=AlwaysNaN())
    with pytest.raises(NonFiniteOutput, match="not finite even from a fresh state"):
        stream.process(image(), K, GOOD, 0, "cam")
    stream.backend = AccumulatingBackend()
    assert stream.process(image(), K, GOOD, PERIOD_NS, "cam").reset_reason == "non_finite"


def test_a_gap_right_after_a_stamp_reversal_is_seen():
    stream = DepthStream(backend=AccumulatingBackend())
    for i in range(10):
        stream.process(image(), K, GOOD, (100 + i) * PERIOD_NS, "cam")
    assert stream.process(image(), K, GOOD, 0, "cam").reset_reason == "time_backwards"
    assert stream.process(image(), K, GOOD, 20 * PERIOD_NS, "cam").reset_reason == "gap"
