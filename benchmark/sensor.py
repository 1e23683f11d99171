"""Camera sensor model applied on top of the path-traced (noise-free, linear) radiance.

Per pixel and colour channel (no Bayer mosaic, channels independent):

    electrons  e   ~ Poisson(radiance * exposure_e)            photon shot noise
    signal     s   = e + Normal(0, read_noise_e)               read noise (with analog gain
                                                               it is referred to the input)
    raw        r   = clip(gain * s / full_well_e, 0, 1)        gain (ISO) and saturation
    output     q   = round(255 * srgb_oetf(r))                 8-bit sRGB quantisation

``exposure_e`` (electrons per unit of linear radiance) is set once per sequence by
``auto_exposure`` (a camera with locked AE after it converged), so the brightness does not
flicker. The default numbers are those of a small-pixel (1.4-2 um) CMOS phone/RPi sensor:
full well 6000 e-, 2.5 e- rms read noise. Low light: the same sensor at 1/24 of the light
with 16x analog gain: the highlights hold about 210 e- (shot noise dominates) and the image is
about a third darker than in normal light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SensorModel", "NORMAL_LIGHT", "LOW_LIGHT", "srgb_oetf", "auto_exposure", "apply_sensor"]


@dataclass(frozen=True)
class SensorModel:
    """full_well_e: saturation charge (e-); read_noise_e: rms (e-); gain: analog gain;
    highlight_fill: fraction of the full well that AE fills at the scene's 99th percentile (normal light);
    light_fraction: scene light relative to the normal-light exposure (1: normal)."""

    full_well_e: float = 6000.0
    read_noise_e: float = 2.5
    gain: float = 1.0
    highlight_fill: float = 0.85
    light_fraction: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


NORMAL_LIGHT = SensorModel()
LOW_LIGHT = SensorModel(gain=16.0, light_fraction=1.0 / 24.0)


def srgb_oetf(x: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def auto_exposure(linear_rgb: np.ndarray, model: SensorModel, percentile: float = 99.0) -> float:
    """Electrons per unit radiance: in normal light the ``percentile`` of the image holds highlight_fill
    of the full well; low light collects light_fraction of that (the gain then amplifies it)."""
    level = float(np.percentile(np.asarray(linear_rgb, dtype=np.float64), percentile))
    level = max(level, 1e-6)
    return model.highlight_fill * model.full_well_e / level * model.light_fraction


def apply_sensor(linear_rgb: np.ndarray, exposure_e: float, model: SensorModel,
                 rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) linear radiance -> (H, W, 3) uint8 sRGB image with shot, read and quantisation noise."""
    lam = np.clip(np.asarray(linear_rgb, dtype=np.float64), 0.0, None) * exposure_e
    electrons = rng.poisson(lam).astype(np.float64)
    signal = electrons + rng.normal(0.0, model.read_noise_e, lam.shape)
    raw = np.clip(model.gain * signal / model.full_well_e, 0.0, 1.0)
    return np.round(255.0 * srgb_oetf(raw)).astype(np.uint8)
