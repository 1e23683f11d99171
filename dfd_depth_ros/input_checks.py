"""Physical-range checks of the estimator's inputs: the one rule of the node, bag reading and DepthStream.

A value can be finite and still absurd: a focus distance of 1e-39 m, an f-number of 1e-40 or
fx = 1e42 px overflow float32 in the network's lens input (fx * D, 1 / focus) and poison its
recurrent state. Every input is therefore checked here, at the edge, before it can reach the
network:

    focus distance    FOCUS_MIN_M .. FOCUS_MAX_M (1 mm .. 1000 km), or +inf
    focus, dioptres   0 (infinity), or 1 / FOCUS_MAX_M .. 1 / FOCUS_MIN_M (1e-6 .. 1000 1/m)
    f-number          F_NUMBER_MIN .. F_NUMBER_MAX (0.5 .. 64)
    focal length      FOCAL_LENGTH_MIN_M .. FOCAL_LENGTH_MAX_M (0.1 mm .. 10 m)
    K                 finite, fx and fy in (0, FX_MAX_PX) px, |cx|, |cy| < FX_MAX_PX px
    lens input        fx * D and 1 / focus finite in float32 (implied by the bounds above; checked anyway)

Infinity is one value, however it is written: focus_distance = +inf and focus_diopters = 0 both
map to FOCUS_AT_INFINITY_M (1e6 m, i.e. 1e-6 dioptres: the same blur as infinity to within 1e-6
px per px of blur scale), which is also what a bag written by this project stores for it.
Each check raises ``InputRangeError`` (a ValueError) with one line naming the value and its range.
"""

from __future__ import annotations

import math

import numpy as np

from dfd_depth_ros.optics import LensState

FOCUS_MIN_M = 1.0e-3
FOCUS_MAX_M = 1.0e6
FOCUS_AT_INFINITY_M = FOCUS_MAX_M
F_NUMBER_MIN, F_NUMBER_MAX = 0.5, 64.0
FOCAL_LENGTH_MIN_M, FOCAL_LENGTH_MAX_M = 1.0e-4, 10.0
FX_MAX_PX = 1.0e6
_F32_MAX = float(np.finfo(np.float32).max)


class InputRangeError(ValueError):
    """An input value outside its physical range; the text is one line meant for the log."""


def _number(what: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputRangeError(f"{what} must be a number, got {value!r}") from None


def focus_m_from_distance(distance_m) -> float:
    """Focus distance in metres (+inf: infinity) -> the focus distance the estimator uses, m."""
    d = _number("lens focus_distance", distance_m)
    if d == math.inf:
        return FOCUS_AT_INFINITY_M
    if not FOCUS_MIN_M <= d <= FOCUS_MAX_M:  # also NaN, 0 and negative
        raise InputRangeError(f"lens focus_distance must be in [{FOCUS_MIN_M:g}, {FOCUS_MAX_M:g}] m or +inf "
                              f"(infinity), got {distance_m!r}")
    return d


def focus_m_from_diopters(diopters) -> float:
    """Focus in dioptres (1/m; 0: infinity) -> the focus distance the estimator uses, m."""
    v = _number("lens focus", diopters)
    if v == 0.0:
        return FOCUS_AT_INFINITY_M
    if not 1.0 / FOCUS_MAX_M <= v <= 1.0 / FOCUS_MIN_M:
        raise InputRangeError(f"lens focus must be 0 (infinity) or in [{1.0 / FOCUS_MAX_M:g}, "
                              f"{1.0 / FOCUS_MIN_M:g}] dioptres, got {diopters!r}")
    return 1.0 / v


def check_f_number(f_number) -> float:
    """The f-number, checked against [F_NUMBER_MIN, F_NUMBER_MAX]."""
    v = _number("lens f_number", f_number)
    if not F_NUMBER_MIN <= v <= F_NUMBER_MAX:
        raise InputRangeError(f"lens f_number must be in [{F_NUMBER_MIN:g}, {F_NUMBER_MAX:g}], got {f_number!r}")
    return v


def check_focal_length_m(focal_length_m) -> float:
    """The focal length in metres, checked against [FOCAL_LENGTH_MIN_M, FOCAL_LENGTH_MAX_M]."""
    v = _number("lens focal_length", focal_length_m)
    if not FOCAL_LENGTH_MIN_M <= v <= FOCAL_LENGTH_MAX_M:
        raise InputRangeError(f"lens focal_length must be in [{FOCAL_LENGTH_MIN_M:g}, {FOCAL_LENGTH_MAX_M:g}] m, "
                              f"got {focal_length_m!r}")
    return v


def checked_lens(focus_distance_m, f_number, focal_length_m) -> LensState:
    """A LensState from a focus distance (m, +inf allowed), f-number and focal length (m), every value checked."""
    return LensState(focus_m_from_distance(focus_distance_m), check_f_number(f_number),
                     check_focal_length_m(focal_length_m))


def check_lens(lens: LensState) -> LensState:
    """``lens`` itself when every value is in range; InputRangeError otherwise."""
    checked_lens(*lens.as_tuple())
    return lens


def check_intrinsics(K) -> np.ndarray:
    """3x3 (or 9 values, row-major) pinhole intrinsics -> (3, 3) float64 px; InputRangeError when unusable."""
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputRangeError("K must be 9 numbers") from None
    if K.size != 9:
        raise InputRangeError(f"K must be 3x3 (or 9 values), got shape {K.shape}")
    K = K.reshape(3, 3)
    if not np.all(np.isfinite(K)):
        raise InputRangeError("K has non-finite entries")
    if not np.any(K):
        raise InputRangeError("K is all zeros (uncalibrated camera_info?)")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not (0 < fx < FX_MAX_PX and 0 < fy < FX_MAX_PX):
        raise InputRangeError(f"K needs fx > 0 and fy > 0 px (and below {FX_MAX_PX:g} px), "
                              f"got fx={float(fx)!r}, fy={float(fy)!r}")
    if not (abs(cx) < FX_MAX_PX and abs(cy) < FX_MAX_PX):
        raise InputRangeError(f"K needs |cx|, |cy| < {FX_MAX_PX:g} px, got cx={float(cx)!r}, cy={float(cy)!r}")
    return K


def network_lens_input(lens: LensState, fx_network_px: float) -> np.ndarray:
    """(1, 2) float32 network lens input [fx * D px*m (fx in network px), 1 / focus 1/m]; InputRangeError
    unless both are finite and > 0 in float32 (the values the recurrent state is fed)."""
    blur_scale, diopters = lens.blur_scale_pxm(float(fx_network_px)), lens.focus_diopters
    if not (0 < blur_scale <= _F32_MAX and 0 < diopters <= _F32_MAX):
        raise InputRangeError(f"lens input fx*D = {blur_scale!r} px*m, 1/focus = {diopters!r} 1/m is not finite and "
                              "> 0 in float32")
    return np.array([[blur_scale, diopters]], dtype=np.float32)
