"""The classical defocus reference (FocusReference) on tiny disc-blurred plane scenes with known depth.

The scene: vertical bands of a 1/f texture, each a fronto-parallel plane at its own depth, blurred in
linear light by a uniform disc of the thin-lens diameter c = fx D |1/focus - 1/z| (cv2.filter2D),
with sensor noise, encoded as sRGB uint8.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dfd_depth_ros.evaluation.depth_from_focus import DepthFromFocus
from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evaluation.references import median_floor
from dfd_depth_ros.evidence import disc_kernel
from dfd_depth_ros.metrics import frame_metrics, gt_mask
from dfd_depth_ros.optics import LensState

W, H, FX = 192, 144, 300.0
K = np.array([[FX, 0, (W - 1) / 2], [0, FX, (H - 1) / 2], [0, 0, 1]])
FOCAL_M, F_NUMBER = 0.05, 1.4  # fx D = 10.7 px m: up to ~17 px of blur over the scenes below
PLANES_M = (0.6, 0.9, 4.0, 1.3)  # the 4 m plane (fully in view) lies outside the 0.5-1.5 m sweep
SWEEP_M = (0.5, 1.5)
NUM_FRAMES = 24


def _texture(seed: int, h: int, w: int) -> np.ndarray:
    """(h, w) float32 linear-light 1/f random texture in [0.05, 0.9]."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(w), np.fft.fftfreq(h)))
    spec = (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w))) / np.maximum(f, 1.0 / max(h, w))
    tex = np.real(np.fft.ifft2(spec))
    return (0.05 + 0.85 * (tex - tex.min()) / (tex.max() - tex.min())).astype(np.float32)


def _focus_sweep_m(n: int) -> np.ndarray:
    """(n,) focus distances, metres: a triangle sweep in dioptres across SWEEP_M."""
    lo, hi = 1.0 / SWEEP_M[1], 1.0 / SWEEP_M[0]
    phase = np.abs(((np.arange(n) / 12.0) % 2.0) - 1.0)
    return 1.0 / (lo + (hi - lo) * phase)


def render(n: int = NUM_FRAMES, shift_px_per_frame: int = 0, flat_band: bool = False, seed: int = 0):
    """Yield (image uint8 (H, W, 3), lens, stamp_ns, depth_m (H, W)) of the band scene under a focus sweep.

    shift_px_per_frame: the camera translates sideways, the whole scene moves by this many px per frame.
    flat_band: the second band is a uniform grey (no texture: no depth cue of its own).
    """
    margin = abs(shift_px_per_frame) * n + 32
    tex = _texture(seed, H + 64, W + 2 * margin)
    band_x = np.linspace(0, W + 2 * margin, len(PLANES_M) + 1).astype(int)
    depth_full = np.empty(tex.shape, np.float32)
    for i, z in enumerate(PLANES_M):
        depth_full[:, band_x[i] : band_x[i + 1]] = z
    if flat_band:
        tex[:, band_x[1] : band_x[2]] = 0.4
    rng = np.random.default_rng(seed + 1)
    for t, focus_m in enumerate(_focus_sweep_m(n)):
        lens = LensState(float(focus_m), F_NUMBER, FOCAL_M)
        img = np.zeros_like(tex)
        for z in PLANES_M:
            c = lens.blur_diameter_px(z, FX)
            blurred = cv2.filter2D(tex, -1, disc_kernel(c), borderType=cv2.BORDER_REFLECT) if c > 0.5 else tex
            img = np.where(depth_full == z, blurred, img)
        x0 = margin + shift_px_per_frame * t
        crop, depth = img[32 : 32 + H, x0 : x0 + W], depth_full[32 : 32 + H, x0 : x0 + W]
        noisy = np.clip(crop + rng.normal(0, 0.01, crop.shape), 0, 1)
        srgb = np.where(noisy <= 0.0031308, 12.92 * noisy, 1.055 * noisy ** (1 / 2.4) - 0.055)
        yield np.repeat((srgb * 255).round().astype(np.uint8)[..., None], 3, 2), lens, t * 33_000_000, depth


def run(est, frames):
    """Feed all frames; return the last (depth, confidence, gt) and the mean abs_rel over the last third."""
    out, scores = None, []
    frames = list(frames)
    for t, (img, lens, stamp, gt) in enumerate(frames):
        result = est.process(img, K, lens, stamp, "cam")
        depth = result[0] if isinstance(result, tuple) else result
        if t >= 2 * len(frames) // 3:
            scores.append(frame_metrics(depth, gt)["abs_rel"])
        out = (*result, gt) if isinstance(result, tuple) else (result, None, gt)
    return out, float(np.mean(scores))


@pytest.fixture(scope="module")
def sweep_frames():
    return list(render())


def test_sweep_beats_the_floor_and_the_sliding_window_baseline(sweep_frames):
    (depth, conf, gt), abs_rel = run(FocusReference(), sweep_frames)
    assert depth.shape == (H, W) and depth.dtype == np.float32 and np.isfinite(depth).all()
    assert conf.dtype == np.float32 and conf.min() >= 0 and conf.max() <= 1
    floor = frame_metrics(median_floor(gt), gt)["abs_rel"]
    _, dff_abs_rel = run(DepthFromFocus(), sweep_frames)
    assert abs_rel < 0.6 * floor, (abs_rel, floor)
    assert abs_rel < dff_abs_rel, (abs_rel, dff_abs_rel)


@pytest.mark.xfail(strict=True, reason="the falloff-rate cue is too weak against sensor noise here: the 4 m plane "
                   "comes out near 1.4 m; a per-pixel texture gain leaves too little of the falloff shape")
def test_depth_outside_the_sweep_is_recovered(sweep_frames):
    (depth, _, gt), _ = run(FocusReference(), sweep_frames)
    far = gt == PLANES_M[2]
    inner = far & (cv2.erode(far.astype(np.uint8), np.ones((15, 15))) > 0)  # away from the band edge
    assert abs(np.median(depth[inner]) / PLANES_M[2] - 1) < 0.25, np.median(depth[inner])


def test_camera_translation_is_followed_by_flow_alignment():
    frames = list(render(shift_px_per_frame=2))  # 48 px over the clip: a quarter of the view is new content
    (_, _, gt), aligned = run(FocusReference(), frames)
    _, unaligned = run(FocusReference(align=False), frames)
    floor = frame_metrics(median_floor(gt), gt)["abs_rel"]
    assert aligned < 0.95 * unaligned, (aligned, unaligned)  # measured: 0.31 vs 0.33 (the gain is small, see report)
    assert aligned < 0.8 * floor, (aligned, floor)


def test_confidence_ranks_errors_and_flat_regions_are_filled():
    (depth, conf, gt), _ = run(FocusReference(), render(flat_band=True))
    assert np.isfinite(depth).all()
    valid = gt_mask(gt)
    err = np.abs(depth - gt)[valid] / gt[valid]
    order = np.argsort(-conf[valid], kind="stable")
    top, rest = err[order[: order.size // 2]].mean(), err[order[order.size // 2 :]].mean()
    assert top < 0.75 * rest, (top, rest)
    x = np.arange(W)
    flat = (gt == PLANES_M[1]) & (np.abs(x - x[(gt == PLANES_M[1])[0]].mean()) < 8)[None, :]
    assert conf[flat].mean() < 0.5 * conf[valid].mean()  # the flat band has no evidence of its own


def test_resets_on_resolution_change_and_stamp_going_back(sweep_frames):
    est = FocusReference()
    for img, lens, stamp, _ in sweep_frames[:6]:
        est.process(img, K, lens, stamp, "cam")
    img, lens, stamp, _ = sweep_frames[0]
    fresh = FocusReference().process(img, K, lens, stamp, "cam")[0]
    np.testing.assert_array_equal(est.process(img, K, lens, stamp, "cam")[0], fresh)  # stamp went back
    small = cv2.resize(img, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    depth, conf = est.process(small, K, lens, stamp + 10**9, "cam")
    assert depth.shape == conf.shape == (H // 2, W // 2)


@pytest.mark.parametrize("sigma", [0.002, 0.02, 0.1])
def test_noise_estimate_reads_the_sensor_noise_of_a_flat_grey_frame(sigma):
    from dfd_depth_ros.evidence import noise_sigma

    rng = np.random.default_rng(0)
    gray = (0.4 + sigma * rng.standard_normal((240, 320))).astype(np.float32)
    assert abs(noise_sigma(gray) / sigma - 1.0) < 0.03
