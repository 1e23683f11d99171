"""Procedural, seeded reflectance textures for the benchmark scenes (numpy only).

Every texture is an (N, N, 3) float32 array of *linear* diffuse reflectance in [0.03, 0.9],
periodic in both axes (it tiles seamlessly with Mitsuba's ``wrap_mode: repeat``), and a pure
function of ``(kind, seed, size_px)``. Nothing here is shared with the training renderer's
textures: the set of patterns, their statistics and the seeds are the benchmark's own.

Kinds (``KINDS``):
    pink      1/f^beta noise (beta 1.4-2.2), the statistics of natural images
    checker   a checkerboard with 2-16 cells per tile, slightly noisy
    stripes   sinusoidal stripes of random orientation and frequency, plus fine noise
    blobs     overlapping random discs ("gravel", "pebbles")
    bricks    a running-bond brick pattern with mortar lines and per-brick tone
    grain     anisotropic 1/f noise stretched along one axis ("wood", "brushed")
    flat      a nearly uniform colour (texture contrast about 1 %): the low-texture case
    step      black | white halves (reflectance 0.03 | 0.9, edge at u = 0.5): the optics check only
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "make_texture", "pink_noise", "colourise"]

KINDS = ("pink", "checker", "stripes", "blobs", "bricks", "grain", "flat", "step")
REFLECTANCE_MIN = 0.03
REFLECTANCE_MAX = 0.9


def _unit(a: np.ndarray) -> np.ndarray:
    """Rescale ``a`` to [0, 1] (a constant array becomes 0.5)."""
    lo, hi = float(a.min()), float(a.max())
    return np.full_like(a, 0.5) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def pink_noise(rng: np.random.Generator, n: int, beta: float = 1.8, stretch: float = 1.0) -> np.ndarray:
    """(n, n) periodic noise with power spectrum ~ 1/f^beta, in [0, 1].

    stretch > 1 compresses the spectrum along x (structures elongated along x).
    """
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.fftfreq(n)[None, :] * stretch
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    phase = rng.uniform(0.0, 2.0 * np.pi, (n, n))
    field = np.real(np.fft.ifft2(amp * np.exp(1j * phase)))
    return _unit(field)


def colourise(gray: np.ndarray, rng: np.random.Generator, contrast: float = 1.0) -> np.ndarray:
    """Map a [0, 1] pattern between two random colours: (n, n) -> (n, n, 3) reflectance.

    contrast: relative difference between the two colours; 1 spans dark (0.03-0.25) to bright
    (0.55-0.9) whatever the hues, small values (0.02) give a nearly flat surface.
    """
    hue0, hue1 = rng.uniform(0.3, 1.0, 3), rng.uniform(0.3, 1.0, 3)
    if contrast >= 0.5:
        c0 = hue0 / hue0.max() * rng.uniform(0.03, 0.25)
        c1 = hue1 / hue1.max() * rng.uniform(0.55, 0.9)
    else:
        c0 = hue0 / hue0.max() * rng.uniform(0.2, 0.6)
        c1 = c0 * (1.0 + contrast)
    rgb = c0[None, None, :] + gray[..., None] * (c1 - c0)[None, None, :]
    return np.clip(rgb, REFLECTANCE_MIN, REFLECTANCE_MAX).astype(np.float32)


def _checker(rng: np.random.Generator, n: int) -> np.ndarray:
    cells = int(rng.choice([2, 4, 8, 16]))
    idx = (np.arange(n) * cells // n) % 2
    board = (idx[:, None] ^ idx[None, :]).astype(np.float64)
    return _unit(board + 0.15 * pink_noise(rng, n, 2.0))


def _stripes(rng: np.random.Generator, n: int) -> np.ndarray:
    k = int(rng.integers(3, 20))  # periods per tile along the stripe normal (keeps the tile periodic)
    kx, ky = (k, int(rng.integers(0, 6))) if rng.random() < 0.5 else (int(rng.integers(0, 6)), k)
    y, x = np.mgrid[0:n, 0:n] / n
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (kx * x + ky * y))
    if rng.random() < 0.5:
        wave = (wave > 0.5).astype(np.float64)  # hard-edged stripes
    return _unit(wave + 0.2 * pink_noise(rng, n, 1.2))


def _blobs(rng: np.random.Generator, n: int) -> np.ndarray:
    img = 0.3 * pink_noise(rng, n, 1.5)
    y, x = np.mgrid[0:n, 0:n]
    for _ in range(int(rng.integers(40, 120))):
        cx, cy = rng.uniform(0, n, 2)
        r = rng.uniform(0.01, 0.08) * n
        dx = (x - cx + n / 2) % n - n / 2  # periodic distance
        dy = (y - cy + n / 2) % n - n / 2
        img = np.where(dx**2 + dy**2 < r * r, rng.uniform(0.0, 1.0), img)
    return _unit(img)


def _bricks(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = int(rng.choice([4, 8]))
    cols = rows // 2
    bh, bw = n // rows, n // cols
    y, x = np.mgrid[0:n, 0:n]
    row = y // bh
    xs = (x + (row % 2) * (bw // 2)) % n
    col = xs // bw
    tone = rng.uniform(0.4, 1.0, (rows, cols + 1))[row, col]
    mortar = max(1, n // 128)
    joint = ((y % bh) < mortar) | ((xs % bw) < mortar)
    img = np.where(joint, 0.1, tone) + 0.15 * pink_noise(rng, n, 1.6)
    return _unit(img)


def make_texture(kind: str, seed: int, size_px: int = 256) -> np.ndarray:
    """(size_px, size_px, 3) float32 linear reflectance texture of ``kind`` (see module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"texture kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng([int(seed), KINDS.index(kind), 20261203])
    n = int(size_px)
    if kind == "pink":
        return colourise(pink_noise(rng, n, rng.uniform(1.4, 2.2)), rng)
    if kind == "checker":
        return colourise(_checker(rng, n), rng)
    if kind == "stripes":
        return colourise(_stripes(rng, n), rng)
    if kind == "blobs":
        return colourise(_blobs(rng, n), rng)
    if kind == "bricks":
        return colourise(_bricks(rng, n), rng)
    if kind == "grain":
        return colourise(pink_noise(rng, n, 1.6, stretch=rng.uniform(4.0, 10.0)), rng)
    if kind == "step":
        img = np.full((n, n, 3), REFLECTANCE_MIN, dtype=np.float32)
        img[:, n // 2:] = REFLECTANCE_MAX
        return img
    return colourise(pink_noise(rng, n, 2.0), rng, contrast=0.02)  # flat
