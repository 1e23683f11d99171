"""The variants of the classical reference that ``evidence_ablation.py`` scores (one change each; see its docstring).

Each is ``evaluation.focus_reference.FocusReference`` with one part replaced: the measure's bands or falloff, the
fit's model, the cost's aggregation, an extra cost term, or the fill.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evidence import (
    COST_NOISE_REL,
    calibrate_falloff,
    calibration_texture,
    focus_measure,
    linear_gray,
    noise_sigma,
)
from dfd_depth_ros.flow import warp

# ----------------------------------------------------------------------------- calibration of variant measures


@lru_cache(None)
def band_table(sigma: float, window: int):
    return calibrate_falloff(lambda img: focus_measure(img, 0.0, sigma, window)[0], calibration_texture())


@lru_cache(None)
def preblurred_table(s0: float):
    return calibrate_falloff(lambda img: focus_measure(img)[0], calibration_texture(s0))


# ----------------------------------------------------------------------------- variants


class MultiBand(FocusReference):
    """The fit in several bands (sigma px, window px), each with its own gain and falloff; costs summed (q0 units)."""

    def __init__(self, bands=((1.0, 9), (2.0, 13), (4.0, 21)), **kw):
        self.bands = bands
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._bands = None  # per band: [acc (h, w, K + 2), sum h_k, sum h_k^2]

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        self._begin(image, stamp_ns)
        scale, gray = lens.blur_scale_pxm(float(K[0, 0])), linear_gray(image)
        self._noise_sigma = min(self._noise_sigma, noise_sigma(gray))
        c = scale * np.abs(self.w_k - lens.focus_diopters)
        flow = self._flow(image, lens.focus_diopters, scale)  # every frame: the tracker keeps the previous one
        new_bands = []
        for i, (sigma, window) in enumerate(self.bands):
            table_c, table_h, q0 = band_table(sigma, window)
            q = focus_measure(gray, self._noise_sigma**2, sigma, window)[0] / q0
            q = cv2.resize(q, self._acc_size, interpolation=cv2.INTER_AREA)
            h = np.interp(c, table_c, table_h)
            new = np.concatenate([q[..., None] * h.astype(np.float32), q[..., None], (q * q)[..., None]], 2)
            if self._bands is None:
                new_bands.append([new, h, h * h])
            else:
                acc, sh, shh = self._bands[i]
                acc = warp(acc, flow) if flow is not None else acc
                new_bands.append([self.decay * acc + new, self.decay * sh + h, self.decay * shh + h * h])
        self._bands = new_bands
        self._count_frame(lens.focus_diopters)
        q0, self.q0 = self.q0, 1.0  # the bands' measures are in units of their own q0
        try:
            inv_depth, conf = self._estimate(lens.focus_diopters, scale)
        finally:
            self.q0 = q0
        return self._output(inv_depth, conf)

    def _cost(self):
        total = 0.0
        for acc, sh, shh in self._bands:
            self._acc, self._sh, self._shh = acc, sh, shh
            total = total + FocusReference._cost(self) / len(self._bands)
        return total


class _KeepsBlurAndFlow(FocusReference):
    """The reference that keeps this frame's blur per hypothesis (``_c_now``, (K,) px) and its flow (``_flow_now``)
    for variants that accumulate statistics of their own beside the reference's."""

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        self._c_now = lens.blur_scale_pxm(float(K[0, 0])) * np.abs(self.w_k - lens.focus_diopters)
        self._flow_now = None
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _flow(self, *args):
        self._flow_now = super()._flow(*args)
        return self._flow_now


class TextureAdaptive(_KeepsBlurAndFlow):
    """The falloff of a texture pre-blurred by s0, s0 a per-pixel nuisance: min cost over ``s0s`` per hypothesis."""

    def __init__(self, s0s=(0.0, 0.75, 1.5), **kw):
        self.s0s = s0s
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._per_s0, self._flow_now = None, None  # per s0: [sum q h_k (h, w, K), sum h_k, sum h_k^2]

    def _accumulate(self, q, h_k, focus_diopters):
        super()._accumulate(q, h_k, focus_diopters)  # sum q, sum q^2 (and the s0 = 0 slices, unused), focus sums
        hs = [np.interp(self._c_now, *preblurred_table(s)[:2]) for s in self.s0s]
        if self._per_s0 is None:
            self._per_s0 = [[q[..., None] * h.astype(np.float32), h, h * h] for h in hs]
            return
        d = self.decay
        for entry, h in zip(self._per_s0, hs, strict=True):
            acc = warp(entry[0], self._flow_now) if self._flow_now is not None else entry[0]
            entry[:] = [d * acc + q[..., None] * h.astype(np.float32), d * entry[1] + h, d * entry[2] + h * h]

    def _cost(self):
        kept = self._acc, self._sh, self._shh
        q_stats, best = self._acc[..., -2:], None
        try:
            for acc, sh, shh in self._per_s0:
                self._acc, self._sh, self._shh = np.concatenate([acc, q_stats], 2), sh, shh
                cost = FocusReference._cost(self)
                best = cost if best is None else np.minimum(best, cost)
        finally:
            self._acc, self._sh, self._shh = kept
        return best


class Reblur(FocusReference):
    """The fit's cost + ``lam`` cost-noise units x the re-blur residual against a per-hypothesis sharpest frame."""

    def __init__(self, lam: float = 5.0, alone: bool = False, **kw):
        self.lam, self.alone = lam, alone
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._sharp = None  # (h, w, K): per hypothesis, the frame it predicts sharpest so far; _sharp_sigma (K,)

    @staticmethod
    def _blur(x, sigma):
        return cv2.GaussianBlur(x, (0, 0), sigma) if sigma > 0.05 else x

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        self._begin(image, stamp_ns)  # a reset clears the sharp references too (``reset``); process's own is a no-op
        scale = lens.blur_scale_pxm(float(K[0, 0]))
        size = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        g = cv2.resize(linear_gray(image), size, interpolation=cv2.INTER_AREA)
        sigma = scale * np.abs(self.w_k - lens.focus_diopters) / 8.0  # disc diameter c (full res) -> sigma c/4 at 1/2
        self._flow_now = FocusReference._flow(self, image, lens.focus_diopters, scale)  # once per frame (``_flow``)
        if self._sharp is not None and self._flow_now is not None:
            flow = self._flow_now
            self._sharp, self._res = warp(self._sharp, flow), warp(self._res, flow)
            self._n = warp(self._n, flow).reshape(g.shape + (1,))
        if self._sharp is None:
            self._sharp = np.repeat(g[..., None], self.w_k.size, 2).astype(np.float32)
            self._sharp_sigma = sigma.copy()
            self._res, self._n = np.zeros_like(self._sharp), np.zeros(g.shape + (1,), np.float32)
        else:
            highpass = lambda x: x - cv2.GaussianBlur(x, (0, 0), 3.0)  # noqa: E731
            res = np.empty_like(self._sharp)
            for k in range(self.w_k.size):
                ref, s_ref = self._sharp[..., k], self._sharp_sigma[k]
                if sigma[k] >= s_ref:
                    pred, target = self._blur(ref, math.sqrt(sigma[k] ** 2 - s_ref**2)), g
                else:
                    pred, target = self._blur(g, math.sqrt(s_ref**2 - sigma[k] ** 2)), ref
                    self._sharp[..., k], self._sharp_sigma[k] = g, sigma[k]
                d, e1, e2 = highpass(pred - target), highpass(target), highpass(pred)
                box = lambda x: cv2.boxFilter(x, -1, (5, 5))  # noqa: E731
                res[..., k] = box(d * d) / (box(e1 * e1) + box(e2 * e2) + 1e-7)
            self._res, self._n = self.decay * self._res + res, self.decay * self._n + 1.0
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _flow(self, *args):
        return self._flow_now  # the reference's own warp uses the flow ``process`` computed for this frame

    def _cost(self):
        cost = super()._cost()
        if self._n.max() > 0:
            res = self._res / np.maximum(self._n, 1e-3)
            res = (res - res.min(2, keepdims=True)) * np.minimum(self._n, 3.0) / 3.0
            cost = (0.0 if self.alone else cost) + self.lam * COST_NOISE_REL * self.q0**2 * res
        return cost.astype(np.float32)


def _down(x):
    h, w = x.shape[:2]
    hh, ww = (h + 1) // 2, (w + 1) // 2
    p = np.pad(x, ((0, 2 * hh - h), (0, 2 * ww - w)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    return p.reshape(hh, 2, ww, 2, *x.shape[2:]).mean((1, 3))


def guided_fill(value, weight, guide, full_weight=0.5, sigma_g=0.05, levels=8):
    """push_pull_fill whose upsampling is a joint-bilateral step: coarse 3x3 neighbours weighted by guide similarity."""
    num, den, gd = [value * weight], [weight.astype(np.float32)], [guide]
    for _ in range(levels):
        if min(num[-1].shape[:2]) <= 2:
            break
        num.append(_down(num[-1]))
        den.append(_down(den[-1]))
        gd.append(_down(gd[-1]))
    total = float(den[0].sum())
    filled = np.where(den[-1] > 1e-9 * total, num[-1] / np.maximum(den[-1], 1e-30),
                      float(num[0].sum() / max(total, 1e-30)))  # fmt: skip
    density = den[-1]
    for lvl in range(len(num) - 2, -1, -1):
        h, w = den[lvl].shape
        coarse_g = gd[lvl + 1]
        acc, wsum = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        ys, xs = np.arange(h) // 2, np.arange(w) // 2
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = np.clip(ys + dy, 0, coarse_g.shape[0] - 1), np.clip(xs + dx, 0, coarse_g.shape[1] - 1)
                cy, cx = (np.arange(h) + 0.5) / 2 - (yy + 0.5), (np.arange(w) + 0.5) / 2 - (xx + 0.5)
                spatial = np.exp(-(cy[:, None] ** 2 + cx[None, :] ** 2) / 0.5)
                similar = np.exp(-((coarse_g[yy][:, xx] - gd[lvl]) ** 2).sum(-1) / (2 * sigma_g**2))
                wt = spatial * similar * np.minimum(density[yy][:, xx] + 1e-6, 1.0)
                acc += wt * filled[yy][:, xx]
                wsum += wt
        alpha = np.clip(den[lvl] / full_weight, 0.0, 1.0)
        filled = alpha * (num[lvl] / np.maximum(den[lvl], 1e-12)) + (1 - alpha) * acc / np.maximum(wsum, 1e-12)
        density = np.maximum(den[lvl] / full_weight,
                             0.5 * cv2.resize(density, (w, h), interpolation=cv2.INTER_NEAREST))  # fmt: skip
    return filled.astype(np.float32), np.clip(den[0] / full_weight, 0.0, 1.0)


class GuidedFill(FocusReference):
    """The reference with ``guided_fill`` (Lab colour of the half-resolution frame) in place of push_pull_fill."""

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        half = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        self._lab = cv2.cvtColor(cv2.resize(image, half, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB) / 255.0
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _fill(self, inv_depth, conf):
        return guided_fill(inv_depth, conf * conf, self._lab.astype(np.float32), self.fill_full_conf)[0]


# ----------------------------------------------------------------------------- falloff of a mixture of spectra


def power_law_texture(beta: float, n: int = 256) -> np.ndarray:
    """(n, n) float32 random field with power spectrum 1/f^beta in [0.2, 0.8], seeded (beta 2: calibration_texture)."""
    rng = np.random.default_rng(1)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.maximum(f, 1.0 / n) ** (beta / 2)
    tex = np.real(np.fft.ifft2(spec)).astype(np.float32)
    return 0.2 + 0.6 * (tex - tex.min()) / (tex.max() - tex.min())


@lru_cache(None)
def power_law_table(beta: float):
    return calibrate_falloff(lambda img: focus_measure(img)[0], power_law_texture(beta))


class TwoSpectra(_KeepsBlurAndFlow):
    """q ~ a1 h_2(c) + a2 h_beta(c) + b with a1, a2 >= 0: the falloffs of 1/f^2 (shipped) and 1/f^beta power spectra.

    The expected band energy is linear in the texture's power spectrum, so a texture whose spectrum is a positive
    mix of the two is fitted exactly: beta 4 falls more slowly and with a longer tail (h 0.08 at 18 px of blur,
    h_2 0.01), like coarse checker and brick walls. Non-negative
    least squares by active sets ({a1, a2, b}, {a1, b}, {a2, b}, {b}: the least cost among the feasible ones);
    the priors a1 ~ q0, a2 ~ 0 with the reference's weight.
    """

    def __init__(self, beta: float = 4.0, **kw):
        self.beta = beta
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._acc2, self._flow_now = None, None  # sum q h2_k (h, w, K); scalars below
        self._s2 = self._s22 = self._s12 = 0.0

    def _accumulate(self, q, h_k, focus_diopters):
        fresh = self._acc is None
        super()._accumulate(q, h_k, focus_diopters)
        h2 = np.interp(self._c_now, *power_law_table(self.beta)[:2])
        new = q[..., None] * h2.astype(np.float32)
        if fresh or self._acc2 is None:
            self._acc2, self._s2, self._s22, self._s12 = new, h2, h2 * h2, h_k * h2
            return
        d = self.decay
        acc = warp(self._acc2, self._flow_now) if self._flow_now is not None else self._acc2
        self._acc2 = d * acc + new
        self._s2, self._s22, self._s12 = d * self._s2 + h2, d * self._s22 + h2 * h2, d * self._s12 + h_k * h2

    def _cost(self):
        la, lb, q0 = self.prior_a, self.prior_b, self.q0
        s_q, s_qq = self._acc[..., -2:-1], self._acc[..., -1:]
        rhs = [self._acc[..., :-2] + np.float32(la * q0), self._acc2, np.broadcast_to(s_q, self._acc2.shape)]
        a = np.zeros((self.w_k.size, 3, 3))
        a[:, 0, 0], a[:, 1, 1], a[:, 2, 2] = self._shh + la, self._s22 + la, self._sw + lb
        a[:, 0, 1] = a[:, 1, 0] = self._s12
        a[:, 0, 2] = a[:, 2, 0] = self._sh
        a[:, 1, 2] = a[:, 2, 1] = self._s2
        base = s_qq + np.float32(la * q0 * q0)
        best = None
        for sub in ((0, 1, 2), (0, 2), (1, 2), (2,)):
            inv = np.linalg.inv(a[:, sub][:, :, sub]).astype(np.float32)  # (K, n, n): the lens is global
            x = [sum(inv[:, i, j] * rhs[v] for j, v in enumerate(sub)) for i in range(len(sub))]
            feasible = np.ones(self._acc2.shape, bool)
            for i, v in enumerate(sub):
                if v < 2:
                    feasible &= x[i] > 0
            cost = np.where(feasible, base - sum(xi * rhs[v] for xi, v in zip(x, sub, strict=True)), np.inf)
            best = cost if best is None else np.minimum(best, cost)
        return (np.maximum(best, 0.0) / np.float32(self._sw + la + lb)).astype(np.float32)


# ----------------------------------------------------------------------------- where the cost and confidence come from


def guided_filter(guide: np.ndarray, src: np.ndarray, radius_px: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter of every channel of src (h, w, K) with a gray guide (h, w) (box windows)."""
    size = (2 * radius_px + 1, 2 * radius_px + 1)
    box = lambda x: cv2.boxFilter(x, -1, size)  # noqa: E731
    g = guide[..., None]
    m_i, m_p = box(guide)[..., None], box(src)
    var_i = box(guide * guide)[..., None] - m_i * m_i
    a = (box(g * src) - m_i * m_p) / (var_i + eps)
    b = m_p - a * m_i
    return box(a) * g + box(b)


class GuidedCost(FocusReference):
    """The cost volume aggregated by a guided filter of the frame (gray, half resolution) instead of the 11 px box:
    stereo's cost-volume filtering, so that a cost does not cross an edge of the image."""

    def __init__(self, radius_px: int = 5, eps: float = 1e-3, **kw):
        self.radius_px, self.eps = radius_px, eps
        super().__init__(cost_window_px=1, **kw)

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        half = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        gray = np.sqrt(linear_gray(image))  # about perceptual
        self._guide = cv2.resize(gray, half, interpolation=cv2.INTER_AREA).astype(np.float32)
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _cost(self):
        return np.maximum(guided_filter(self._guide, super()._cost(), self.radius_px, self.eps), 0.0)


class OwnEnergy(FocusReference):
    """The margin confidence times (the pixel's accumulated measure / its maximum within ``size_px``)^2: a pixel whose
    measure comes from a stronger edge nearby (a nearer pole's texture inside its window) gives way in the fill."""

    def __init__(self, size_px: int = 9, **kw):
        self.size_px = size_px
        super().__init__(**kw)

    def _estimate(self, focus_diopters, scale_pxm):
        inv_depth, conf = super()._estimate(focus_diopters, scale_pxm)
        energy = self._acc[..., -2]  # decayed sum q
        peak = cv2.dilate(energy, np.ones((self.size_px, self.size_px), np.uint8))
        return inv_depth, conf * np.clip(energy / np.maximum(peak, 1e-12), 0.0, 1.0) ** 2
