"""Thin-lens optics shared by rendering, training and inference.

One model, used everywhere in the project (see ../shared/specs/bag-contract.md):

    aperture diameter       D_m    = focal_length_m / f_number
    blur-circle diameter    c_px   = fx_px * D_m * |1/focus_distance_m - 1/z_m|

``fx_px * D_m`` is the *blur scale* (pixel-metres): the blur diameter per dioptre of
defocus. The *signed* defocus ``fx_px * D_m * (1/focus - 1/z)`` is negative in front of
the focal plane (z < focus) and positive behind it; the image alone only sees its size.

Every function accepts numpy arrays, torch tensors or Python floats and returns the same
kind. SI units inside: metres, dioptres (1/m), pixels. No ROS imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LensState",
    "aperture_diameter_m",
    "blur_scale_pxm",
    "signed_blur_px",
    "blur_diameter_px",
    "depths_for_blur_m",
    "depth_from_signed_blur_m",
    "hyperfocal_distance_m",
    "depth_of_field_m",
]


def _abs(x):
    return x.abs() if hasattr(x, "abs") and not isinstance(x, np.ndarray) else np.abs(x)


@dataclass(frozen=True)
class LensState:
    """Lens settings of one frame.

    focus_distance_m: distance of the plane in focus (object side), metres, > 0.
    f_number: N = focal_length / aperture diameter, unitless, > 0.
    focal_length_m: metres, > 0.
    """

    focus_distance_m: float
    f_number: float
    focal_length_m: float

    def __post_init__(self):
        for name in ("focus_distance_m", "f_number", "focal_length_m"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
                raise ValueError(f"LensState.{name} must be a finite number > 0, got {value!r}")

    @property
    def aperture_diameter_m(self) -> float:
        """D = focal_length / f_number, metres."""
        return self.focal_length_m / self.f_number

    @property
    def focus_diopters(self) -> float:
        """1 / focus_distance, dioptres."""
        return 1.0 / self.focus_distance_m

    @classmethod
    def from_diopters(cls, focus_diopters: float, f_number: float, focal_length_m: float) -> LensState:
        """Build a lens state from a focus given in dioptres (1/m), as camera_ros reports it."""
        if not (math.isfinite(focus_diopters) and focus_diopters > 0):
            raise ValueError(f"focus_diopters must be finite and > 0, got {focus_diopters!r}")
        return cls(1.0 / focus_diopters, f_number, focal_length_m)

    def blur_scale_pxm(self, fx_px: float) -> float:
        """fx * D, pixel-metres: blur diameter in px per dioptre of defocus."""
        return blur_scale_pxm(fx_px, self.focal_length_m, self.f_number)

    def blur_diameter_px(self, z_m, fx_px: float):
        """Blur-circle diameter in px of points at z-depth ``z_m``."""
        return blur_diameter_px(z_m, self.focus_distance_m, fx_px, self.focal_length_m, self.f_number)

    def as_tuple(self) -> tuple[float, float, float]:
        """(focus_distance_m, f_number, focal_length_m), the bag contract's JointState order."""
        return (self.focus_distance_m, self.f_number, self.focal_length_m)


def aperture_diameter_m(focal_length_m, f_number):
    """Aperture diameter D = focal_length / f_number, metres."""
    return focal_length_m / f_number


def blur_scale_pxm(fx_px, focal_length_m, f_number):
    """Blur scale fx * D in pixel-metres (blur diameter in px per dioptre of defocus)."""
    return fx_px * aperture_diameter_m(focal_length_m, f_number)


def signed_blur_px(z_m, focus_distance_m, fx_px, focal_length_m, f_number):
    """Signed blur diameter fx * D * (1/focus - 1/z), px: < 0 in front of focus, > 0 behind."""
    return blur_scale_pxm(fx_px, focal_length_m, f_number) * (1.0 / focus_distance_m - 1.0 / z_m)


def blur_diameter_px(z_m, focus_distance_m, fx_px, focal_length_m, f_number):
    """Blur-circle diameter c_px = fx * D * |1/focus - 1/z| of points at z-depth z_m, px."""
    return _abs(signed_blur_px(z_m, focus_distance_m, fx_px, focal_length_m, f_number))


def depth_from_signed_blur_m(signed_px, focus_distance_m, blur_scale):
    """Invert the signed blur: z = 1 / (1/focus - signed_px / (fx*D)), metres.

    Returns inf where the point sits at optical infinity and a negative value where the
    signed blur is beyond what any real depth can produce (behind infinity).
    """
    inv_z = 1.0 / focus_distance_m - signed_px / blur_scale
    if isinstance(inv_z, (float, int)):
        return math.inf if inv_z == 0 else 1.0 / inv_z
    with np.errstate(divide="ignore"):
        return 1.0 / inv_z


def depths_for_blur_m(c_px, focus_distance_m, fx_px, focal_length_m, f_number):
    """The two z-depths whose blur diameter is ``c_px``: (z_near_m, z_far_m).

    z_near = 1 / (1/focus + c/(fx D)) lies in front of the focal plane; z_far =
    1 / (1/focus - c/(fx D)) behind it, or inf when c is at least the blur of a point at
    infinity (no real depth behind focus then has that blur). This is the front/back
    ambiguity that a single frame cannot resolve.
    """
    scale = blur_scale_pxm(fx_px, focal_length_m, f_number)
    if isinstance(c_px, (float, int)) and c_px < 0:
        raise ValueError(f"blur diameter must be >= 0, got {c_px!r}")
    z_near = depth_from_signed_blur_m(-c_px, focus_distance_m, scale)
    z_far = depth_from_signed_blur_m(c_px, focus_distance_m, scale)
    if isinstance(z_far, float):
        z_far = z_far if z_far > 0 else math.inf
    elif isinstance(z_far, np.ndarray):
        z_far = np.where(z_far > 0, z_far, np.inf)
    else:  # torch
        z_far = z_far.where(z_far > 0, z_far.new_tensor(float("inf")))
    return z_near, z_far


def hyperfocal_distance_m(fx_px, focal_length_m, f_number, coc_px):
    """Hyperfocal distance H = fx * D / coc, metres: focused there, everything to infinity blurs <= coc_px.

    In the project's blur model c_px = fx D |1/s - 1/z|. With fx = f / pixel_pitch this is the
    textbook f^2 / (N c) without its "+ f" term (the sensor sits at ~f, valid for s >> f).
    """
    return blur_scale_pxm(fx_px, focal_length_m, f_number) / coc_px


def depth_of_field_m(focus_distance_m, fx_px, focal_length_m, f_number, coc_px):
    """Near and far limits (metres) of the depths that blur by at most ``coc_px``.

    These are the two depths of ``depths_for_blur_m(coc_px, ...)``: near = 1/(1/s + coc/(fx D)),
    far = 1/(1/s - coc/(fx D)), or inf from the hyperfocal distance on.
    """
    return depths_for_blur_m(coc_px, focus_distance_m, fx_px, focal_length_m, f_number)
