"""Building blocks of the classical defocus reference (``focus_reference.FocusReference``).

- ``linear_gray``: sRGB uint8 -> linear-light gray, where the lens blur is a convolution.
- ``focus_measure``: band-pass energy at a scale above the sensor noise, with the expected noise
  energy subtracted, divided by the squared local brightness (which blur does not change). A
  normaliser by local contrast was tried first: it falls with blur too, and by how much depends on
  the texture's spectrum, so its falloff did not transfer from the calibration texture to real scenes.
- ``falloff_table``: how that measure falls with the diameter of a uniform disc blur, calibrated once
  on a synthetic 1/f texture (the spectrum of natural images).
- ``blur_equalised_flow``: DIS optical flow between two frames low-pass filtered to a common blur.
- ``push_pull_fill``: confidence-weighted normalised-convolution pyramid that makes a sparse map dense.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

BAND_SIGMA_PX = 1.0  # the band is G(sigma) - G(2 sigma): above pixel noise, below the smallest blurs of interest
ENERGY_WINDOW_PX = 9  # box window of the band energy
BRIGHTNESS_SIGMA_PX = 6.0  # the normaliser: squared Gaussian-weighted local mean of this scale
BRIGHTNESS_FLOOR = 1e-4  # added to the normaliser (linear gray^2; black regions stay finite)
CALIB_MAX_BLUR_PX = 64.0
CALIB_STEP_PX = 0.25

_SRGB_LEVELS = np.arange(256) / 255.0
_SRGB_TO_LINEAR = np.where(_SRGB_LEVELS <= 0.04045, _SRGB_LEVELS / 12.92,
                           ((_SRGB_LEVELS + 0.055) / 1.055) ** 2.4).astype(np.float32)  # fmt: skip


def linear_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) uint8 sRGB -> (H, W) float32 linear-light gray in [0, 1]."""
    lin = _SRGB_TO_LINEAR[image]
    return lin.mean(axis=2) if lin.ndim == 3 else lin


def noise_sigma(gray: np.ndarray) -> float:
    """Robust std of the pixel noise of a (H, W) image (median absolute 3x3 Laplacian, Immerkaer-style)."""
    lap = cv2.filter2D(gray, cv2.CV_32F, np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32))
    return float(np.median(np.abs(lap[1:-1, 1:-1])) * 1.4826 / 6.0)


def _band_gain_for_white_noise() -> float:
    """Fraction of a white-noise variance that survives the band-pass G(s) - G(2s)."""
    rng = np.random.default_rng(0)
    n = rng.standard_normal((256, 256)).astype(np.float32)
    b = cv2.GaussianBlur(n, (0, 0), BAND_SIGMA_PX) - cv2.GaussianBlur(n, (0, 0), 2 * BAND_SIGMA_PX)
    return float(np.var(b[16:-16, 16:-16]))


_NOISE_BAND_GAIN = _band_gain_for_white_noise()


def focus_measure(gray: np.ndarray, noise_var: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) linear gray -> (q, brightness2), both (H, W) float32.

    q = (box energy of the band G(1 px) - G(2 px), less the band's share of ``noise_var``) / brightness2;
    brightness2 = (local mean at BRIGHTNESS_SIGMA_PX)^2 + BRIGHTNESS_FLOOR (linear gray^2).
    """
    band = cv2.GaussianBlur(gray, (0, 0), BAND_SIGMA_PX) - cv2.GaussianBlur(gray, (0, 0), 2 * BAND_SIGMA_PX)
    energy = cv2.boxFilter(band * band, -1, (ENERGY_WINDOW_PX, ENERGY_WINDOW_PX))
    energy = np.maximum(energy - _NOISE_BAND_GAIN * noise_var, 0.0)
    mean = cv2.GaussianBlur(gray, (0, 0), BRIGHTNESS_SIGMA_PX)
    brightness2 = mean * mean + BRIGHTNESS_FLOOR
    return energy / brightness2, brightness2


def disc_kernel(diameter_px: float) -> np.ndarray:
    """Anti-aliased uniform disc PSF of ``diameter_px`` (8x8 supersampled), normalised to sum 1."""
    r = max(diameter_px, 1e-3) / 2.0
    half = int(np.ceil(r)) + 1
    s = (np.arange(-half * 8, half * 8 + 8) + 0.5) / 8.0 - 0.5  # sub-pixel centres
    xx, yy = np.meshgrid(s, s)
    inside = (xx * xx + yy * yy <= r * r).astype(np.float32)
    k = inside.reshape(2 * half + 1, 8, 2 * half + 1, 8).mean(axis=(1, 3))
    return k / k.sum() if k.sum() > 0 else np.pad(np.ones((1, 1), np.float32), half)


@lru_cache(maxsize=1)
def falloff_table() -> tuple[np.ndarray, np.ndarray, float]:
    """Calibrated falloff of ``focus_measure`` with disc blur: (c_px (N,), h (N,) with h(0) = 1, q0).

    q0 is the measure of the sharp calibration texture (a 1/f random field, the average spectrum of
    natural images), h(c) the mean measure of the same texture disc-blurred by c over q0.
    """
    rng = np.random.default_rng(1)
    n = 256
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.maximum(f, 1.0 / n)
    tex = np.real(np.fft.ifft2(spec)).astype(np.float32)
    tex = 0.2 + 0.6 * (tex - tex.min()) / (tex.max() - tex.min())
    c_px = np.arange(0.0, CALIB_MAX_BLUR_PX + 1e-9, CALIB_STEP_PX)
    tex_spec, q = np.fft.fft2(tex), []
    for c in c_px:
        k = disc_kernel(c)
        pad = np.zeros((n, n))
        pad[: k.shape[0], : k.shape[1]] = k
        pad = np.roll(pad, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))  # centre at (0, 0): no shift
        img = np.real(np.fft.ifft2(tex_spec * np.fft.fft2(pad))).astype(np.float32)  # periodic disc blur
        q.append(float(np.mean(focus_measure(img)[0][32:-32, 32:-32])))  # the very measure, away from borders
    q = np.asarray(q)
    return c_px, (q / q[0]).astype(np.float64), float(q[0])


def falloff(c_px: np.ndarray) -> np.ndarray:
    """h(c): expected focus measure at blur diameter ``c_px`` relative to the sharp one (1 at c = 0)."""
    table_c, table_h, _ = falloff_table()
    return np.interp(np.abs(c_px), table_c, table_h)


def flow_gray_u8(image: np.ndarray, blur_sigma_px: float) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/2, W/2) uint8 gray, low-passed by ``blur_sigma_px`` (full-res px) and halved."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    half = cv2.pyrDown(gray.astype(np.float32))
    if blur_sigma_px / 2 > 0.3:
        half = cv2.GaussianBlur(half, (0, 0), blur_sigma_px / 2)
    return np.clip(half, 0, 255).astype(np.uint8)


def blur_equalised_flow(dis, prev_u8: np.ndarray, cur_u8: np.ndarray) -> np.ndarray:
    """Dense flow (H/2, W/2, 2) float32 in half-resolution px, with cur(x) ~ prev(x + flow(x)).

    ``prev_u8`` / ``cur_u8`` come from ``flow_gray_u8`` with the same (the larger) blur, so focus changes
    between the two frames do not pull the flow towards the sharper one. It is computed at half resolution
    (the images are smooth anyway), the resolution the evidence is kept at.
    """
    return dis.calc(cur_u8, prev_u8, None)


def warp(stack: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Resample a (H, W) or (H, W, C) float32 map at x + flow(x) (bilinear, border replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(stack, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def push_pull_fill(value: np.ndarray, weight: np.ndarray, full_weight: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Fill a (H, W) map from its confident pixels: normalised convolution over an image pyramid.

    value, weight: (H, W) float32, weight >= 0 (0 = no evidence). A pixel keeps its own value in
    proportion to min(1, weight / full_weight) and takes the rest from the coarser level.
    Returns (filled (H, W) float32, density (H, W) float32 in [0, 1]: the local evidence at level 0).
    """
    num, den = [value * weight], [weight.astype(np.float32)]
    while min(num[-1].shape[:2]) > 4:
        num.append(cv2.pyrDown(num[-1]))
        den.append(cv2.pyrDown(den[-1]))
    total = float(den[-1].sum())
    top = num[-1] / np.maximum(den[-1], 1e-12)
    filled = np.where(den[-1] > 1e-9 * max(total, 1e-30), top, float(num[-1].sum() / max(total, 1e-30)))
    for n_l, d_l in zip(reversed(num[:-1]), reversed(den[:-1]), strict=True):
        up = cv2.pyrUp(filled, dstsize=(n_l.shape[1], n_l.shape[0]))
        alpha = np.clip(d_l / full_weight, 0.0, 1.0)
        filled = alpha * (n_l / np.maximum(d_l, 1e-12)) + (1.0 - alpha) * up
    return filled.astype(np.float32), np.clip(den[0] / full_weight, 0.0, 1.0).astype(np.float32)
