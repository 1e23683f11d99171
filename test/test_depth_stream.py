"""DepthStream: any image size in, input-sized metric depth out; the temporal state is reset exactly when it should."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_models import affine_channel_model

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
        if getattr(self, "nan_once", False):  # a poisoned state: NaN out until the state is reset
            self.nan_once = False
            return np.full(image.shape[2:], np.nan, np.float32), image[0, 0].copy()
        return 1.0 + image[0].mean(0), image[0, 0].copy()


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def K_for(w: int, h: int, fx: float = 300.0) -> np.ndarray:
    return intrinsics_matrix(fx, fx, w / 2, h / 2)


def run_frames(stream, image, stamps_ns, K=None, frame_id="cam"):
    K = K_for(image.shape[1], image.shape[0]) if K is None else K
    return [stream.process(image, K, LENS, s, frame_id) for s in stamps_ns]


# -- sizes, units, validity ------------------------------------------------------------------------
def model_by_hand(model_path, image: np.ndarray, fx_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The exported model run directly in ONNX Runtime on the first frame of a stream: the image mirrored
    (reflect-101) to multiples of 8 at the bottom and right, RGB / 255, lens [fx * D, 1 / focus], zero state;
    the outputs cropped back -> (depth_m, confidence), (H, W)."""
    import json

    import onnxruntime as ort

    h, w = image.shape[:2]
    padded = np.pad(image, ((0, -h % 8), (0, -w % 8), (0, 0)), mode="reflect")  # numpy reflect = reflect-101
    x = (padded.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None].copy()
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    channels = json.loads(sess.get_modelmeta().custom_metadata_map["dfd_model_config"])["state_channels"]
    state = np.zeros((1, channels, padded.shape[0] // 8, padded.shape[1] // 8), np.float32)
    lens = np.array([[LENS.aperture_diameter_m * fx_px, 1.0 / LENS.focus_distance_m]], np.float32)
    depth, confidence, _ = sess.run(None, {"image": x, "lens": lens, "state": state})
    return depth[0, 0, :h, :w], confidence[0, 0, :h, :w]


@pytest.mark.parametrize("w, h", [(97, 61), (321, 239)])
def test_odd_sizes_give_input_sized_metric_depth(model_path, w, h):
    """The stream's first frame is the model's output on that image, pixel for pixel, at the input size."""
    stream = DepthStream(model_path, backend="onnxruntime", min_depth_m=0.0, max_depth_m=1e9)
    image = textured(h, w)
    results = run_frames(stream, image, [0, PERIOD_NS])
    for r in results:
        assert r.depth_m.shape == (h, w) and r.depth_m.dtype == np.float32
        assert r.confidence.shape == (h, w) and r.confidence.dtype == np.float32
        assert np.all(np.isfinite(r.depth_m))
        assert set(r.timings_ms) == {"convert", "preprocess", "inference", "postprocess"}
    depth, confidence = model_by_hand(model_path, image, fx_px=300.0)
    np.testing.assert_allclose(results[0].depth_m, depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0].confidence, confidence, rtol=1e-5, atol=1e-6)
    assert np.abs(results[1].depth_m - results[0].depth_m).max() > 1e-5  # the second frame carries the state


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


def reason_after_warmup(change: str) -> tuple[str | None, int, str | None]:
    """Run 10 steady frames, then one frame with ``change``, then one more frame like it one period later;
    (the changed frame's reset reason, resets seen by the backend up to it, the next frame's reset reason)."""
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
    elif change == "non_finite":
        backend.nan_once = True
    result = stream.process(image, K, LENS, stamp, frame_id)
    resets = len(backend.resets)
    following = stream.process(image, K, LENS, stamp + PERIOD_NS, frame_id)
    return result.reset_reason, resets, following.reset_reason


@pytest.mark.parametrize("change", [r for r in RESET_REASONS if r != "start"])  # a new reason needs a case above
def test_each_reset_reason_fires(change):
    reason, resets, following = reason_after_warmup(change)
    assert reason == change
    assert resets == 2  # start + this one
    assert following is None  # the new situation is the steady one now: no reset on every later frame



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


# -- pixel alignment: output pixel (y, x) is the estimate of input pixel (y, x) --------------------------
@pytest.fixture(scope="module")
def channel_model(tmp_path_factory):
    """depth = 1 + 10 * red m, confidence = green (red, green in [0, 1]): each output pixel shows its source."""
    return affine_channel_model(tmp_path_factory.mktemp("toy") / "channels.onnx", depth_offset_m=1.0,
                                depth_scale_m=10.0, depth_channel=0, conf_offset=0.0, conf_scale=1.0, conf_channel=1)


@pytest.mark.parametrize("h, w", [(29, 37), (3, 5), (61, 97), (40, 64)])  # (3, 5): smaller than the padding
def test_padding_and_cropping_keep_every_pixel_in_place(channel_model, h, w):
    image = textured(h, w, seed=h)  # random: a shift by one pixel changes almost every value
    r = DepthStream(channel_model, "onnxruntime").process(image, K_for(w, h), LENS, 0, "cam")
    red, green = (image[:, :, c].astype(np.float32) * np.float32(1.0 / 255.0) for c in (0, 1))
    np.testing.assert_allclose(r.depth_m, 1.0 + 10.0 * red, rtol=1e-6)
    np.testing.assert_allclose(r.confidence, green, atol=1e-6)


LEVELS = 250  # the ramps run 0..250 across the image


def ramp_image(h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: red = round(250 x / (w - 1)), green = round(250 y / (h - 1)), blue constant."""
    y, x = np.mgrid[0:h, 0:w]
    image = np.full((h, w, 3), 77, np.uint8)
    image[:, :, 0] = np.rint(x * LEVELS / (w - 1))
    image[:, :, 1] = np.rint(y * LEVELS / (h - 1))
    return image


@pytest.mark.parametrize("h, w, nh, nw", [
    (61, 97, 48, 64),  # both axes shrink (INTER_AREA)
    (29, 37, 48, 64),  # both axes grow (INTER_LINEAR)
    (41, 61, 48, 32),  # x shrinks, y grows
])
def test_resize_maps_each_output_pixel_to_its_input_pixel(channel_model, h, w, nh, nw):
    """Through the resize to the network size and back, a linear ramp stays put: pixel centres map onto pixel
    centres (half-pixel convention). Area averaging and linear interpolation reproduce a ramp exactly, so the
    only error allowed is rounding: the ramp's own (0.5 level) and the uint8 network image's (0.5 level)."""
    stream = DepthStream(channel_model, "onnxruntime", network_width=nw, network_height=nh)
    r = stream.process(ramp_image(h, w), K_for(w, h), LENS, 0, "cam")
    levels_per_px_x, levels_per_px_y = LEVELS / (w - 1), LEVELS / (h - 1)
    x_seen = (r.depth_m - 1.0) / 10.0 * 255.0 / levels_per_px_x  # the input column each output pixel came from
    y_seen = r.confidence * 255.0 / levels_per_px_y
    y, x = np.mgrid[0:h, 0:w]
    inner = (slice(2, -2), slice(2, -2))  # at the border the upsampling clamps instead of extrapolating
    err_x, err_y = (x_seen - x)[inner], (y_seen - y)[inner]
    assert np.abs(err_x).max() <= 1.05 / levels_per_px_x and np.abs(err_y).max() <= 1.05 / levels_per_px_y
    assert abs(err_x.mean()) < 0.1 and abs(err_y.mean()) < 0.1  # px: no systematic shift
    assert np.abs(x_seen - x).max() < 0.75 and np.abs(y_seen - y).max() < 0.75  # px, border included


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
