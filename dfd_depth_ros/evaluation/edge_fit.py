"""Measuring blur: the analytic edge spread function (ESF) of a uniform disc and a least-squares edge fit.

    fit = fit_edge(profile)        # a 1-D step-edge profile (mean over rows) -> fit.c_px, the blur diameter

The disc ESF is integrated over the 1-px pixel footprint (a box filter), with free edge position and
black/white levels. Used to check renderers against the thin-lens model (training/validate_mitsuba.py,
the benchmark's own test): c_px = fx * D * |1/focus - 1/z|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def disc_esf(x, c_px: float):
    """Fraction of a uniform disc of diameter ``c_px`` centred at 0 that lies left of ``x`` (px).

    The edge spread function of a disc PSF: a unit step at 0 blurred by the disc. c = 0 is the step.
    """
    x = np.asarray(x, dtype=np.float64)
    r = c_px / 2.0
    if r <= 1e-9:
        return (x >= 0).astype(np.float64)
    t = np.clip(x / r, -1.0, 1.0)
    return 0.5 + (t * np.sqrt(1.0 - t * t) + np.arcsin(t)) / math.pi


def _disc_esf_antiderivative(x, r: float):
    """G(x) = integral of disc_esf from -inf to x, for radius r (G = 0 left of -r, x right of r)."""
    if r <= 1e-9:
        return np.maximum(x, 0.0)
    t = np.clip(x / r, -1.0, 1.0)
    s = np.sqrt(1.0 - t * t)
    inner = 0.5 * x + r / math.pi * (t * np.arcsin(t) + s - s**3 / 3.0)
    return np.where(x >= r, x, np.where(x <= -r, 0.0, inner))


def disc_esf_pixel(x, c_px: float):
    """disc_esf averaged over a 1-px box centred at ``x``: what a pixel centred at x records."""
    x = np.asarray(x, dtype=np.float64)
    r = c_px / 2.0
    return _disc_esf_antiderivative(x + 0.5, r) - _disc_esf_antiderivative(x - 0.5, r)


def disc_esf_10_90_ratio() -> float:
    """(x90 - x10) / c of the disc ESF (about 0.687): the 10-90 % rise in units of the diameter."""
    from scipy.optimize import brentq

    x10 = brentq(lambda x: disc_esf(x, 1.0) - 0.1, -0.5, 0.5, xtol=1e-14)
    x90 = brentq(lambda x: disc_esf(x, 1.0) - 0.9, -0.5, 0.5, xtol=1e-14)
    return float(x90 - x10)


@dataclass(frozen=True)
class EdgeFit:
    """Least-squares fit of lo + (hi - lo) * disc_esf_pixel(x - edge_px, diameter_px) to a profile."""

    diameter_px: float
    edge_px: float
    lo: float
    hi: float
    rms: float


def pixel_centres(n: int) -> np.ndarray:
    """(n,) centres of n 1-px pixels, px: 0.5, 1.5, ..."""
    return np.arange(n, dtype=np.float64) + 0.5


def width_10_90_px(profile: np.ndarray) -> float:
    """10-90 % rise distance (px) of a monotone edge profile, levels from 6 px at each end."""
    p = np.asarray(profile, dtype=np.float64)
    lo, hi = p[:6].mean(), p[-6:].mean()
    q = (p - lo) / (hi - lo)  # rising 0 -> 1 whatever the polarity
    x = pixel_centres(len(p))

    def crossing(level: float) -> float:
        i = int(np.argmax(q >= level))
        if i == 0:
            return float(x[0])
        return float(x[i - 1] + (level - q[i - 1]) / (q[i] - q[i - 1]) * (x[i] - x[i - 1]))

    return crossing(0.9) - crossing(0.1)


def fit_edge(profile: np.ndarray, pixel_integrated: bool = True) -> EdgeFit:
    """Fit diameter, edge position and the two levels of a step edge blurred by a disc.

    pixel_integrated: model pixels as 1-px boxes (True: what a sensor with a box filter
    records) or as point samples of the ESF (False).
    """
    from scipy.optimize import least_squares

    p = np.asarray(profile, dtype=np.float64)
    x = pixel_centres(len(p))
    esf = disc_esf_pixel if pixel_integrated else disc_esf
    lo0, hi0 = p[:4].mean(), p[-4:].mean()
    q = (p - lo0) / (hi0 - lo0) if hi0 != lo0 else np.zeros_like(p)
    edge0 = float(x[int(np.argmin(np.abs(q - 0.5)))])
    c0 = max(1.0, width_10_90_px(p) / disc_esf_10_90_ratio()) if hi0 != lo0 else 1.0

    def residual(theta):
        c, e, lo, hi = theta
        return lo + (hi - lo) * esf(x - e, c) - p

    best = None
    for c_start in (c0, 0.5 * c0, 1.5 * c0):  # a few starts: the residual is flat in c near c = 0
        sol = least_squares(
            residual,
            x0=[c_start, edge0, lo0, hi0],
            bounds=([0.0, x[0], -np.inf, -np.inf], [float(len(p)), x[-1], np.inf, np.inf]),
            x_scale=[1.0, 1.0, 0.1, 0.1],
            xtol=1e-12,
            ftol=1e-12,
        )
        if best is None or sol.cost < best.cost:
            best = sol
    c, e, lo, hi = best.x
    return EdgeFit(float(c), float(e), float(lo), float(hi), float(np.sqrt(np.mean(best.fun**2))))
