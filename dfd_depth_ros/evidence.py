"""Evidence: what a frame says about depth through the thin-lens model, in numpy and as a torch graph.

The classical reference (``evaluation.focus_reference.FocusReference``, numpy) and the shipped network
(``focus_volume_network.FocusVolumeNet``, torch, exported to ONNX) read the frames the same way:

- ``linear_gray``: sRGB uint8 -> linear-light gray, where the lens blur is a convolution.
- ``focus_measure``: band-pass energy at a scale above the sensor noise, with the expected noise
  energy subtracted, divided by the squared local brightness (which blur does not change). A
  normaliser by local contrast was tried first: it falls with blur too, and by how much depends on
  the texture's spectrum, so its falloff did not transfer from the calibration texture to real scenes.
- ``falloff_table``: how that measure falls with the diameter of a uniform disc blur, calibrated once
  on a synthetic 1/f texture (the spectrum of natural images).
- ``push_pull_fill``: confidence-weighted normalised-convolution pyramid that makes a sparse map dense.
- ``FocusEvidence`` (torch): the same measure, falloff, decayed sufficient statistics of the fit
  q ~ a h(c_k) + b per inverse-depth hypothesis w_k (kept per pixel, so content that a flow warp
  brings into view starts with no evidence), its cost volume, the best hypothesis with its margin
  confidence and the push-pull fill: parameter-free, so it exports to ONNX and runs on any backend.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BAND_SIGMA_PX = 1.0  # the band is G(sigma) - G(2 sigma): above pixel noise, below the smallest blurs of interest
ENERGY_WINDOW_PX = 9  # box window of the band energy
BRIGHTNESS_SIGMA_PX = 6.0  # the normaliser: squared Gaussian-weighted local mean of this scale
BRIGHTNESS_FLOOR = 1e-4  # added to the normaliser (linear gray^2; black regions stay finite)
CALIB_MAX_BLUR_PX = 64.0
CALIB_STEP_PX = 0.25
# The estimate from the fit's cost (FocusReference in numpy and FocusEvidence in torch alike):
COST_NOISE_REL = 0.02  # cost noise floor, as a fraction of q0^2: margins below it are not evidence
ALT_GAP = 3  # hypotheses at least this far from the best count as the alternative
NEAR_SIDE_PENALTY = 0.02  # cost prior (fraction of the cost noise) against hypotheses nearer than the focus
BLUR_PRIOR = 1.0  # cost prior (fraction of the cost noise per 10 px of blur now) against large blur, in full while
GAIN_PRIOR_FRAMES = 0.05  # the fit's prior a ~ q0 (the texture gain), in frames of evidence
OFFSET_PRIOR_FRAMES = 0.5  # the fit's prior b ~ 0 (what is left of the noise floor), in frames
COST_WINDOW_PX = 11  # box window (1/2-resolution px) the cost volume is aggregated over before the best hypothesis
FILL_FULL_CONF = 0.5  # confidence from which a pixel keeps its own depth in the fill (below it, blends in the fill)
EVIDENCE_VERSION = 2  # bumped when the evidence's numbers change (2: noise median from NOISE_EDGES); caches key on it
FOCUS_SPREAD_PX = 2.0  # the focus has not moved (the two sides of the focal plane tie), fading out at this spread

_SRGB_LEVELS = np.arange(256) / 255.0
_SRGB_TO_LINEAR = np.where(_SRGB_LEVELS <= 0.04045, _SRGB_LEVELS / 12.92,
                           ((_SRGB_LEVELS + 0.055) / 1.055) ** 2.4).astype(np.float32)  # fmt: skip


def linear_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) uint8 sRGB -> (H, W) float32 linear-light gray in [0, 1]."""
    lin = _SRGB_TO_LINEAR[image]
    return lin.mean(axis=2) if lin.ndim == 3 else lin


# The noise estimate's median is read off a fixed histogram of |Laplacian| (log-spaced bin edges), not a sort: the
# same arithmetic in numpy and in the graph, only elementwise ops and means (a sort of every pixel exports as a TopK
# over ~19k values at 320x240, beyond TensorRT's limit of 3840), and any image size.
NOISE_EDGES = np.geomspace(1e-6, 1.0, 97)  # |Laplacian| bin edges; a bin spans 15 %


def histogram_median(cdf: np.ndarray) -> float:
    """Median from the fractions ``cdf`` (len(NOISE_EDGES),) of the samples below each edge: log-linear in the bin."""
    prev, cur = cdf[:-1], cdf[1:]
    frac = np.clip((0.5 - prev) / np.maximum(cur - prev, 1e-12), 0.0, 1.0).sum()
    log_edges = np.log(NOISE_EDGES)
    return float(np.exp(log_edges[0] + frac * (log_edges[1] - log_edges[0])))


def noise_sigma(gray: np.ndarray) -> float:
    """Robust std of the pixel noise of a (H, W) image (median absolute 3x3 Laplacian, Immerkaer-style).

    The median is taken over every second row and column of the interior (a quarter of the pixels, as
    robust and four times cheaper), read off the NOISE_EDGES histogram (``histogram_median``): FocusEvidence's rule.
    """
    lap = cv2.filter2D(gray, cv2.CV_32F, np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32))
    sample = np.abs(lap[1:-1:2, 1:-1:2]).ravel()
    cdf = (sample[None, :] < NOISE_EDGES.astype(np.float32)[:, None]).mean(axis=1)
    return histogram_median(cdf) * 1.4826 / 6.0


@cache
def band_gain_for_white_noise(band_sigma_px: float = BAND_SIGMA_PX) -> float:
    """Fraction of a white-noise variance that survives the band-pass G(s) - G(2s)."""
    rng = np.random.default_rng(0)
    n = rng.standard_normal((256, 256)).astype(np.float32)
    b = cv2.GaussianBlur(n, (0, 0), band_sigma_px) - cv2.GaussianBlur(n, (0, 0), 2 * band_sigma_px)
    return float(np.var(b[16:-16, 16:-16]))


_NOISE_BAND_GAIN = band_gain_for_white_noise()


def focus_measure(gray: np.ndarray, noise_var: float = 0.0, band_sigma_px: float = BAND_SIGMA_PX,
                  window_px: int = ENERGY_WINDOW_PX) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(H, W) linear gray -> (q, brightness2), both (H, W) float32.

    q = (box energy (``window_px``) of the band G(s) - G(2 s), s = ``band_sigma_px``, less the band's share of
    ``noise_var``) / brightness2; brightness2 = (local mean at BRIGHTNESS_SIGMA_PX)^2 + BRIGHTNESS_FLOOR (linear
    gray^2). The defaults are the shipped measure (s = 1 px, 9 px window); others are for ablations.
    """
    band = cv2.GaussianBlur(gray, (0, 0), band_sigma_px) - cv2.GaussianBlur(gray, (0, 0), 2 * band_sigma_px)
    energy = cv2.boxFilter(band * band, -1, (window_px, window_px))
    energy = np.maximum(energy - band_gain_for_white_noise(band_sigma_px) * noise_var, 0.0)
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


def calibration_texture(pre_blur_sigma_px: float = 0.0, n: int = 256) -> np.ndarray:
    """(n, n) float32 1/f random field in [0.2, 0.8] (the average spectrum of natural images), seeded.

    ``pre_blur_sigma_px`` > 0: the field Gaussian-blurred by that sigma first (a texture without fine detail).
    """
    rng = np.random.default_rng(1)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.maximum(f, 1.0 / n)
    if pre_blur_sigma_px > 0:
        spec = spec * np.exp(-2 * (np.pi * f * pre_blur_sigma_px) ** 2)
    tex = np.real(np.fft.ifft2(spec)).astype(np.float32)
    return 0.2 + 0.6 * (tex - tex.min()) / (tex.max() - tex.min())


def calibrate_falloff(measure, texture: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(c_px (N,), h (N,) with h(0) = 1, q0): the mean of ``measure(image) -> (H, W)`` over ``texture`` under
    periodic uniform-disc blur of each diameter c_px (0..CALIB_MAX_BLUR_PX), away from the borders, over q0 (c = 0)."""
    n = texture.shape[0]
    c_px = np.arange(0.0, CALIB_MAX_BLUR_PX + 1e-9, CALIB_STEP_PX)
    tex_spec, q = np.fft.fft2(texture), []
    for c in c_px:
        k = disc_kernel(c)
        pad = np.zeros((n, n))
        pad[: k.shape[0], : k.shape[1]] = k
        pad = np.roll(pad, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))  # centre at (0, 0): no shift
        img = np.real(np.fft.ifft2(tex_spec * np.fft.fft2(pad))).astype(np.float32)  # periodic disc blur
        q.append(float(np.mean(measure(img)[32:-32, 32:-32])))
    q = np.asarray(q)
    return c_px, (q / q[0]).astype(np.float64), float(q[0])


@lru_cache(maxsize=1)
def falloff_table() -> tuple[np.ndarray, np.ndarray, float]:
    """Calibrated falloff of ``focus_measure`` with disc blur: (c_px (N,), h (N,) with h(0) = 1, q0).

    q0 is the measure of the sharp calibration texture (``calibration_texture``), h(c) the mean measure of the
    same texture disc-blurred by c over q0.
    """
    return calibrate_falloff(lambda img: focus_measure(img)[0], calibration_texture())


def falloff(c_px: np.ndarray) -> np.ndarray:
    """h(c): expected focus measure at blur diameter ``c_px`` relative to the sharp one (1 at c = 0)."""
    table_c, table_h, _ = falloff_table()
    return np.interp(np.abs(c_px), table_c, table_h)


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


# ---------------------------------------------------------------------------------------------------------------
# The same evidence as a torch graph (FocusEvidence); numerically the numpy functions above
# (test/test_focus_volume_network.py checks it against evaluation/focus_reference.py).

FILL_LEVELS = 7  # pyramid levels of the torch push-pull fill (1/2 of the state resolution each)
_LAPLACIAN = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def cv2_gaussian_taps(sigma_px: float) -> torch.Tensor:
    """The 1-D kernel cv2.GaussianBlur(float image, (0, 0), sigma) uses: size round(8 sigma + 1) | 1."""
    size = int(round(sigma_px * 8 + 1)) | 1
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    return (k / k.sum()).float()


def separable_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter x (B, 1, H, W) with taps (N,) along both axes, mirrored borders (cv2's BORDER_REFLECT_101)."""
    r = (taps.numel() - 1) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), taps.reshape(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), taps.reshape(1, 1, -1, 1))


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised box filter of odd ``size`` over every channel of x (B, C, H, W), mirrored borders (cv2.boxFilter)."""
    r = size // 2
    x = F.avg_pool2d(F.pad(x, (r, r, 0, 0), mode="reflect"), (1, size), 1)  # separable: rows, then columns
    return F.avg_pool2d(F.pad(x, (0, 0, r, r), mode="reflect"), (size, 1), 1)


def srgb_to_linear_gray(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> (B, 1, H, W) linear-light gray (mean of the three channels)."""
    lin = torch.where(image <= 0.04045, image / 12.92, ((image.clamp_min(0.0) + 0.055) / 1.055) ** 2.4)
    return lin.mean(1, keepdim=True)


def push_pull_fill_torch(value: torch.Tensor, weight: torch.Tensor, full_weight: float = 0.5,
                         levels: int = FILL_LEVELS) -> torch.Tensor:  # fmt: skip
    """``push_pull_fill`` as a graph: value, weight (B, 1, h, w) -> filled (B, 1, h, w).

    Down: 2x2 means (a fixed number of levels, so the graph exports with any size); up: bilinear. Where the
    coarsest level has no weight at all, the weighted mean of the whole map stands in.
    """
    num, den = [value * weight], [weight]
    for _ in range(levels):
        num.append(F.avg_pool2d(num[-1], 2, ceil_mode=True))
        den.append(F.avg_pool2d(den[-1], 2, ceil_mode=True))
    total_num = num[0].sum((2, 3), keepdim=True)
    total_den = den[0].sum((2, 3), keepdim=True)
    mean = total_num / total_den.clamp_min(1e-30)
    filled = torch.where(den[-1] > 1e-9 * total_den, num[-1] / den[-1].clamp_min(1e-30), mean)
    for n_l, d_l in zip(reversed(num[:-1]), reversed(den[:-1]), strict=True):
        up = F.interpolate(filled, size=n_l.shape[-2:], mode="bilinear", align_corners=False)
        alpha = (d_l / full_weight).clamp(0.0, 1.0)
        filled = alpha * (n_l / d_l.clamp_min(1e-12)) + (1.0 - alpha) * up
    return filled


class FocusEvidence(nn.Module):
    """The classical reference's evidence and estimate as a parameter-free torch graph, at 1/2 resolution.

    w_k: (K,) inverse-depth hypotheses (1/m, uniform). Per frame:
        q, noise_var = measure(image)                      focus measure (B,1,H/2,W/2), pixel noise variance (B,)
        state = accumulate(state, q, noise_var, lens)      decayed per-pixel sufficient statistics (STATE layout)
        cost = cost(state)                                 (B,K,h,w) mean squared residual of q ~ a h_k + b
        estimate(state, lens) -> dict                      the reference's best hypothesis, margin confidence,
                                                           fill, and the features a learned readout needs
    State channels (``channels(K)`` = 3K + 6) per pixel: sum q h_k (K), sum q, sum q^2, sum h_k (K), sum h_k^2 (K),
    sum 1, sum focus, sum focus^2 (dioptres), and the smallest pixel noise variance seen (constant over the map).
    All sums decay by ``decay`` per frame. Zeros = no evidence (a reset, or content a warp brought into view).
    """

    def __init__(self, w_k: torch.Tensor, decay: float = 0.95, gain_prior_frames: float = GAIN_PRIOR_FRAMES,
                 offset_prior_frames: float = OFFSET_PRIOR_FRAMES, cost_window_px: int = COST_WINDOW_PX,
                 fill_full_conf: float = FILL_FULL_CONF):  # fmt: skip
        super().__init__()
        table_c, table_h, q0 = falloff_table()
        if not np.allclose(np.diff(table_c), CALIB_STEP_PX):
            raise ValueError("the falloff table must be uniform in blur")
        self.register_buffer("w_k", w_k.float().clone(), persistent=False)
        self.register_buffer("table_h", torch.from_numpy(table_h).float(), persistent=False)
        self.register_buffer("g_band1", cv2_gaussian_taps(BAND_SIGMA_PX), persistent=False)
        self.register_buffer("g_band2", cv2_gaussian_taps(2 * BAND_SIGMA_PX), persistent=False)
        self.register_buffer("g_bright", cv2_gaussian_taps(BRIGHTNESS_SIGMA_PX), persistent=False)
        self.register_buffer("laplacian", torch.tensor(_LAPLACIAN).reshape(1, 1, 3, 3), persistent=False)
        self.register_buffer("noise_edges", torch.from_numpy(NOISE_EDGES.astype(np.float32)), persistent=False)
        self.q0 = float(q0)
        self.decay = float(decay)
        self.prior_a, self.prior_b = float(gain_prior_frames), float(offset_prior_frames)
        self.cost_window_px = int(cost_window_px)
        self.fill_full_conf = float(fill_full_conf)

    @staticmethod
    def channels(num_hypotheses: int) -> int:
        return 3 * num_hypotheses + 6

    @property
    def cost_noise(self) -> float:
        """The cost noise floor (the unit of the normalised cost)."""
        return COST_NOISE_REL * self.q0 * self.q0

    def falloff(self, c_px: torch.Tensor) -> torch.Tensor:
        """h(c) of ``falloff`` (the calibrated table, linear interpolation, clamped at its ends), any shape."""
        n = self.table_h.numel()
        x = (c_px.abs() / CALIB_STEP_PX).clamp(0.0, n - 1.0)
        i0 = x.floor().clamp(max=n - 2.0)
        frac = x - i0
        i0 = i0.long()
        return self.table_h[i0] * (1.0 - frac) + self.table_h[i0 + 1] * frac

    def measure(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,H,W) sRGB in [0,1] -> ((B,2,H,W) [band energy, brightness^2], pixel noise variance (B,)).

        The noise is subtracted from the energy in ``accumulate``, with the smallest noise of the history.
        """
        gray = srgb_to_linear_gray(image)
        lap = F.conv2d(gray, self.laplacian)[..., ::2, ::2].abs().flatten(1)  # as noise_sigma: interior, 1 in 4
        cdf = (lap[:, None, :] < self.noise_edges.reshape(1, -1, 1)).to(lap.dtype).mean(2)  # (B, len(NOISE_EDGES))
        prev, cur = cdf[:, :-1], cdf[:, 1:]
        frac = ((0.5 - prev) / (cur - prev).clamp_min(1e-12)).clamp(0.0, 1.0).sum(1)  # as histogram_median
        log0, step = math.log(NOISE_EDGES[0]), math.log(NOISE_EDGES[1]) - math.log(NOISE_EDGES[0])
        sigma = torch.exp(log0 + frac * step) * (1.4826 / 6.0)
        band = separable_filter(gray, self.g_band1) - separable_filter(gray, self.g_band2)
        energy = box_mean(band * band, ENERGY_WINDOW_PX)
        mean = separable_filter(gray, self.g_bright)
        brightness2 = mean * mean + BRIGHTNESS_FLOOR
        return torch.cat([energy, brightness2], 1), sigma * sigma

    def accumulate(self, state: torch.Tensor, measured: torch.Tensor, noise_var: torch.Tensor,
                   lens: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """New state from the previous (aligned) one, ``measure``'s output and the lens (B,2) [fx*D, 1/focus]."""
        k = self.w_k.numel()
        b, _, h, w = state.shape
        noise_prev = state[:, 3 * k + 5].amax((1, 2))
        noise = torch.where(noise_prev > 0, torch.minimum(noise_prev, noise_var), noise_var)  # (B,)
        energy = (measured[:, :1] - _NOISE_BAND_GAIN * noise.reshape(-1, 1, 1, 1)).clamp_min(0.0)
        q = F.avg_pool2d(energy / measured[:, 1:2], 2)  # (B,1,h,w): INTER_AREA halving
        h_k = self.falloff(lens[:, :1] * (self.w_k[None, :] - lens[:, 1:2])).reshape(b, k, 1, 1)
        ones = torch.ones_like(q)
        focus = lens[:, 1].reshape(b, 1, 1, 1) * ones
        new = torch.cat([q * h_k, q, q * q, h_k * ones, h_k * h_k * ones, ones, focus, focus * focus], 1)
        return torch.cat([self.decay * state[:, : 3 * k + 5] + new, noise.reshape(b, 1, 1, 1) * ones], 1)

    def cost(self, state: torch.Tensor) -> torch.Tensor:
        """(B,K,h,w) mean squared residual of the best ridge fit q ~ a h_k + b per hypothesis (a >= 0)."""
        k = self.w_k.numel()
        s_qh, s_q, s_qq = state[:, :k], state[:, k : k + 1], state[:, k + 1 : k + 2]
        s_h, s_hh, s_w = state[:, k + 2 : 2 * k + 2], state[:, 2 * k + 2 : 3 * k + 2], state[:, 3 * k + 2 : 3 * k + 3]
        la, lb, q0 = self.prior_a, self.prior_b, self.q0
        a11, a12, a22 = s_hh + la, s_h, s_w + lb
        det = a11 * a22 - a12 * a12
        m11, m12, m22 = a22 / det, -a12 / det, a11 / det
        r1 = s_qh + la * q0
        gain = m11 * r1 + m12 * s_q
        explained = r1 * (m11 * r1 + 2 * m12 * s_q) + m22 * s_q * s_q
        base = s_qq + la * q0 * q0
        cost = torch.where(gain > 0, base - explained, base - s_q * s_q / a22)  # a < 0 is unphysical: a = 0 there
        return cost.clamp_min(0.0) / (s_w + la + lb)

    def focus_spread_px(self, state: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """(B,1,h,w) standard deviation of the history's focus, in px of blur (fx*D times dioptres)."""
        k = self.w_k.numel()
        s_w, s_f, s_ff = (state[:, 3 * k + 2 + i : 3 * k + 3 + i] for i in range(3))
        mean = s_f / s_w.clamp_min(1e-6)
        var = (s_ff / s_w.clamp_min(1e-6) - mean * mean).clamp_min(0.0)
        return lens[:, :1].reshape(-1, 1, 1, 1) * var.sqrt()

    def estimate(self, state: torch.Tensor, lens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference's estimate from a state (B,C,h,w) and the current lens (B,2); all maps (B,1,h,w) but cost.

        cost: (B,K,h,w) in units of the cost noise, window-averaged, with the priors; inv_best: refined best
        hypothesis (1/m); conf: margin confidence in [0,1]; inv_filled: the push-pull fill of inv_best weighted by
        conf^2; spread_px: focus spread of the history; evidence: log(1 + frames of evidence).
        """
        k = self.w_k.numel()
        cost = self.cost(state)
        if self.cost_window_px > 1:
            cost = box_mean(cost, self.cost_window_px)
        noise = self.cost_noise
        w = self.w_k.reshape(1, k, 1, 1)
        focus = lens[:, 1].reshape(-1, 1, 1, 1)
        scale = lens[:, 0].reshape(-1, 1, 1, 1)
        spread_px = self.focus_spread_px(state, lens)
        fixed_focus = (1.0 - spread_px / FOCUS_SPREAD_PX).clamp_min(0.0)
        prior = NEAR_SIDE_PENALTY * (w > focus).to(cost.dtype)
        prior = prior + BLUR_PRIOR * fixed_focus * scale * (w - focus).abs() / 10
        cost = cost + prior * noise
        idx = torch.arange(k, device=cost.device, dtype=cost.dtype).reshape(1, k, 1, 1)
        best = torch.argmin(cost, dim=1, keepdim=True)
        c_best = torch.gather(cost, 1, best)
        bestf = best.to(cost.dtype)
        c_alt = torch.where((idx - bestf).abs() >= ALT_GAP, cost, torch.full_like(cost, float("inf"))).amin(1, True)
        conf = ((c_alt - c_best) / (c_alt + noise)).clamp(0.0, 1.0)
        k0 = best.clamp(1, k - 2)
        c_m, c_0, c_p = (torch.gather(cost, 1, k0 + d) for d in (-1, 0, 1))
        curv = c_m - 2 * c_0 + c_p
        offset = torch.where(curv > 0, 0.5 * (c_m - c_p) / torch.where(curv > 0, curv, torch.ones_like(curv)),
                             torch.zeros_like(curv))  # fmt: skip
        offset = torch.where(best == k0, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))
        step = (self.w_k[-1] - self.w_k[0]) / (k - 1)
        inv_best = self.w_k[0] + (bestf + offset) * step
        filled = push_pull_fill_torch(inv_best, conf * conf, self.fill_full_conf)
        s_w = state[:, 3 * k + 2 : 3 * k + 3]
        return {"cost": (cost - c_best) / noise, "inv_best": inv_best, "conf": conf, "inv_filled": filled,
                "spread_px": spread_px, "evidence": torch.log1p(s_w)}
