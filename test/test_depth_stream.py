"""DepthStream: any image size in, input-sized metric depth out; the temporal state is reset exactly when it should."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfd_depth_ros.backends import ModelLoadError
from dfd_depth_ros.backends.base import Backend
from dfd_depth_ros.depth_stream import RESET_REASONS, DepthStream
from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.network import DfDNet
from dfd_depth_ros.optics import LensState
from training.export import export_onnx

LENS = LensState(0.8, 2.0, 8e-3)
PERIOD_NS = 33_333_333


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    return export_onnx(DfDNet(), tmp_path_factory.mktemp("model") / "dfd.onnx", height=48, width=64)


class FakeBackend(Backend):
    """Records every reset and lens input; depth = 1 + channel mean, confidence = the red channel."""

    name = "fake"

    def __init__(self):
        super().__init__()
        self.model_path = "fake"
        self.resets: list[tuple[int, int]] = []
        self.lens_inputs: list[np.ndarray] = []
        self.image_shapes: list[tuple[int, ...]] = []

    def load(self, model_path):
        self.model_path = model_path

    def _zero_state(self, height, width):
        self.resets.append((height, width))

    def _run(self, image, lens):
        self.lens_inputs.append(lens.copy())
        self.image_shapes.append(image.shape)
        return 1.0 + image[0].mean(0), image[0, 0].copy()


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def K_for(w: int, h: int, fx: float = 300.0) -> np.ndarray:
    return intrinsics_matrix(fx, fx, w / 2, h / 2)


def run_frames(stream, image, stamps_ns, K=None, frame_id="cam"):
    K = K_for(image.shape[1], image.shape[0]) if K is None else K
    return [stream.process(image, K, LENS, s, frame_id) for s in stamps_ns]


# -- sizes, units, validity ------------------------------------------------------------------------
@pytest.mark.parametrize("w, h", [(97, 61), (321, 239)])
def test_odd_sizes_give_input_sized_metric_depth(model_path, w, h):
    stream = DepthStream(model_path, backend="onnxruntime", min_depth_m=0.0, max_depth_m=1e9)
    results = run_frames(stream, textured(h, w), [0, PERIOD_NS])
    for r in results:
        assert r.depth_m.shape == (h, w) and r.depth_m.dtype == np.float32
        assert r.confidence.shape == (h, w) and r.confidence.dtype == np.float32
        assert np.all(np.isfinite(r.depth_m))
        assert 0.1 - 1e-6 <= r.depth_m.min() and r.depth_m.max() <= 20.0 + 1e-4  # the model's range, metres
        assert set(r.timings_ms) == {"convert", "preprocess", "inference", "postprocess"}


def test_nan_exactly_where_outside_range_or_unconfident(model_path):
    image = textured(61, 97, seed=1)
    wide = run_frames(DepthStream(model_path, "onnxruntime", min_depth_m=0.0, max_depth_m=1e9), image, [0])[0]
    lo, hi = np.percentile(wide.depth_m, [30, 70])
    conf_min = float(np.percentile(wide.confidence, 20))
    narrow = run_frames(DepthStream(model_path, "onnxruntime", min_depth_m=lo, max_depth_m=hi,
                                    min_confidence=conf_min), image, [0])[0]
    invalid = (wide.depth_m < lo) | (wide.depth_m > hi) | (wide.confidence < conf_min)
    assert 0 < invalid.mean() < 1
    np.testing.assert_array_equal(np.isnan(narrow.depth_m), invalid)
    np.testing.assert_array_equal(narrow.depth_m[~invalid], wide.depth_m[~invalid])


def test_mono_image_equals_grey_rgb(model_path):
    grey = textured(40, 56)[:, :, 0]
    stream_a, stream_b = (DepthStream(model_path, "onnxruntime") for _ in range(2))
    a = run_frames(stream_a, grey, [0])[0]
    b = run_frames(stream_b, np.repeat(grey[:, :, None], 3, axis=2), [0])[0]
    np.testing.assert_array_equal(a.depth_m, b.depth_m)


def test_bgr_to_rgb_view_is_accepted():
    """image_codec.to_rgb8 returns a reversed-channel view for bgr8; it must give the same result as a copy."""
    bgr = textured(32, 40)
    view = bgr[:, :, ::-1]
    a, b = (run_frames(DepthStream(backend=FakeBackend()), image, [0])[0] for image in (view, view.copy()))
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    np.testing.assert_array_equal(a.confidence, b.confidence)


# -- temporal state ---------------------------------------------------------------------------------
def test_state_matters_unless_reset(model_path):
    h, w = 48, 64
    probe, history_a, history_b = textured(h, w, 10), textured(h, w, 11), textured(h, w, 12)
    K = K_for(w, h)

    def probe_after(history, reset=False):
        stream = DepthStream(model_path, "onnxruntime", min_depth_m=0.0, max_depth_m=1e9)
        for i in range(3):
            stream.process(history, K, LensState(0.4 + 0.3 * i, 2.0, 8e-3), i * PERIOD_NS, "cam")
        if reset:
            stream.reset()
        return stream.process(probe, K, LENS, 3 * PERIOD_NS, "cam").depth_m

    # an untrained model leans on its state only weakly; round-off is ~1e-7 m
    assert np.abs(probe_after(history_a) - probe_after(history_b)).max() > 1e-4
    np.testing.assert_allclose(probe_after(history_a, reset=True), probe_after(history_b, reset=True), atol=1e-6)


def test_normal_sequence_does_not_reset():
    backend = FakeBackend()
    stream = DepthStream(backend=backend)
    jitter = np.random.default_rng(0).integers(-3_000_000, 3_000_000, 30)
    results = run_frames(stream, textured(30, 40), [i * PERIOD_NS + int(j) for i, j in enumerate(jitter)])
    assert results[0].reset_reason == "start"
    assert [r.reset_reason for r in results[1:]] == [None] * 29
    assert backend.resets == [(32, 40)]


def reason_after_warmup(change: str) -> tuple[str | None, int]:
    """Run 10 steady frames, then one frame with ``change``; (its reset reason, resets seen by the backend)."""
    backend = FakeBackend()
    stream = DepthStream(backend=backend)
    image, K = textured(30, 40), K_for(40, 30)
    run_frames(stream, image, [i * PERIOD_NS for i in range(10)], K)
    stamp, frame_id = 10 * PERIOD_NS, "cam"
    if change == "time_backwards":
        stamp = 5 * PERIOD_NS
    elif change == "gap":
        stamp = 9 * PERIOD_NS + 6 * PERIOD_NS
    elif change == "resolution":
        image = textured(32, 40)
    elif change == "frame_id":
        frame_id = "other_cam"
    elif change == "intrinsics":
        K = K_for(40, 30, fx=310.0)
    elif change == "request":
        stream.reset()
    result = stream.process(image, K, LENS, stamp, frame_id)
    return result.reset_reason, len(backend.resets)


@pytest.mark.parametrize("change", ["time_backwards", "gap", "resolution", "frame_id", "intrinsics", "request"])
def test_each_reset_reason_fires(change):
    assert change in RESET_REASONS
    reason, resets = reason_after_warmup(change)
    assert reason == change
    assert resets == 2  # start + this one


def test_short_gap_does_not_reset():
    backend = FakeBackend()
    stream = DepthStream(backend=backend, max_gap_periods=5.0)
    results = run_frames(stream, textured(30, 40), [i * PERIOD_NS for i in range(10)] + [13 * PERIOD_NS])
    assert results[-1].reset_reason is None


def test_slower_camera_stops_resetting():
    """A frame-rate drop resets once or a few times, then the period estimate follows it."""
    backend = FakeBackend()
    stream = DepthStream(backend=backend)
    stamps = [i * PERIOD_NS for i in range(10)] + [9 * PERIOD_NS + k * 500_000_000 for k in range(1, 21)]
    reasons = [r.reset_reason for r in run_frames(stream, textured(30, 40), stamps)]
    assert reasons[10] == "gap"
    assert reasons[-8:] == [None] * 8


# -- preprocessing ----------------------------------------------------------------------------------
def test_padding_keeps_blur_scale_and_crops_back():
    backend = FakeBackend()
    stream = DepthStream(backend=backend)
    result = run_frames(stream, textured(61, 97), [0])[0]
    assert backend.image_shapes == [(1, 3, 64, 104)]
    assert result.depth_m.shape == (61, 97)
    np.testing.assert_allclose(backend.lens_inputs[0], [[LENS.blur_scale_pxm(300.0), 1 / 0.8]], rtol=1e-6)


def test_resize_scales_blur_scale():
    """Halving the resolution halves every blur in px, so fx*D fed to the network must halve too."""
    backend = FakeBackend()
    stream = DepthStream(backend=backend, network_width=320, network_height=240)
    result = run_frames(stream, textured(480, 640), [0])[0]
    assert backend.image_shapes == [(1, 3, 240, 320)]
    assert result.depth_m.shape == (480, 640) and result.confidence.shape == (480, 640)
    np.testing.assert_allclose(backend.lens_inputs[0][0, 0], LENS.blur_scale_pxm(300.0) * 0.5, rtol=1e-6)
    np.testing.assert_allclose(backend.lens_inputs[0][0, 1], 1 / 0.8, rtol=1e-6)


def test_upsampled_depth_matches_network_output():
    """A constant image gives a constant network output, which must survive the resize back."""
    backend = FakeBackend()
    stream = DepthStream(backend=backend, network_width=64, network_height=48)
    image = np.full((61, 97, 3), 102, dtype=np.uint8)
    depth = run_frames(stream, image, [0])[0].depth_m
    np.testing.assert_allclose(depth, 1.4, rtol=1e-5)


# -- input validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("image, K, message", [
    (np.zeros((0, 10, 3), np.uint8), K_for(10, 10), "zero size"),
    (np.zeros((10, 10, 4), np.uint8), K_for(10, 10), "shape"),
    (np.zeros((10, 10, 3), np.float32), K_for(10, 10), "uint8"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((3, 3)), "all zeros"),
    (np.zeros((10, 10, 3), np.uint8), intrinsics_matrix(-5.0, 5.0, 5, 5), "fx > 0"),
    (np.zeros((10, 10, 3), np.uint8), np.eye(2), "3x3"),
])
def test_bad_inputs_raise_clear_errors(image, K, message):
    stream = DepthStream(backend=FakeBackend())
    with pytest.raises(ValueError, match=message):
        stream.process(image, K, LENS, 0, "cam")


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="both"):
        DepthStream(backend=FakeBackend(), network_width=320)
    with pytest.raises(ValueError, match="min_depth_m"):
        DepthStream(backend=FakeBackend(), min_depth_m=5.0, max_depth_m=1.0)


def test_missing_model_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        DepthStream(tmp_path / "nope.onnx", backend="onnxruntime")


def test_bench_reports_every_stage():
    from dfd_depth_ros.commands.bench import STAGE_NAMES, benchmark

    report = benchmark(DepthStream(backend=FakeBackend()), 40, 30, frames=3, warmup=1)
    assert set(report["stages_ms_p50"]) == set(STAGE_NAMES)
    assert report["ms_per_frame_p50"] >= sum(report["stages_ms_p50"].values()) * 0.5
    assert report["backend"] == "fake"
