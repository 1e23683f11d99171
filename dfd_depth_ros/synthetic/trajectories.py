"""Per-frame camera poses and focus distances, and the seeded lens draw.

Camera motion is a bounded mixture of slow sinusoids (translation within the scene's motion
radius, small rotations), so it stays smooth and inside the layout's depth guarantees for any
sequence length. Focus schedules are built in dioptres (1/m), where blur is linear, between the
far and near ends of the scene's depth range, then returned in metres.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dfd_depth_ros.optics import blur_scale_pxm
from dfd_depth_ros.synthetic.scenes import rotation_xyz

__all__ = [
    "camera_poses",
    "focus_schedule",
    "LensDraw",
    "draw_hfov_deg",
    "draw_lens",
    "fx_from_hfov_px",
    "blur_limits_px",
]

FOCAL_LENGTH_RANGE_M = (0.004, 0.050)
F_NUMBER_RANGE = (1.2, 8.0)
HFOV_RANGE_DEG = (40.0, 80.0)
REFERENCE_WIDTH_PX = 320
MIN_CUE_BLUR_PX = 3.0  # preferred smallest "largest blur" of a sequence at the reference width
MAX_STEP_M = 0.02  # largest camera translation per frame
MAX_TURN_RAD = math.radians(0.3)  # largest rotation per frame, per axis


# ---------------------------------------------------------------- camera motion


def _smooth_signal(rng: np.random.Generator, t_s: np.ndarray, bound: float, rate_bound: float) -> np.ndarray:
    """(T,) mixture of two slow sinusoids with |x| <= bound and |dx/dt| <= rate_bound."""
    freq_hz = np.exp(rng.uniform(math.log(0.05), math.log(0.8), 2))
    amp = rng.uniform(0.2, 1.0, 2)
    phase = rng.uniform(0, 2 * math.pi, 2)
    scale = min(bound / amp.sum(), rate_bound / (2 * math.pi * freq_hz * amp).sum()) * rng.uniform(0.4, 1.0)
    return (scale * amp[None] * np.sin(2 * math.pi * freq_hz[None] * t_s[:, None] + phase[None])).sum(1)


def camera_poses(rng: np.random.Generator, motion: str, num_frames: int, fps: float, motion_radius_m: float,
                 max_rotation_rad: float, pitch_rad: float = 0.0) -> np.ndarray:  # fmt: skip
    """(T, 4, 4) float64 T_world_camera: 'static' (constant) or 'smooth' (bounded slow translation + rotation)."""
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    if motion == "static":
        poses[:, :3, :3] = rotation_xyz(-pitch_rad, 0.0, 0.0)
        return poses
    if motion != "smooth":
        raise ValueError(f"unknown motion {motion!r}")
    t_s = np.arange(num_frames) / fps
    axis_r, axis_v = motion_radius_m / math.sqrt(3), MAX_STEP_M * fps / math.sqrt(3)
    pos = np.stack([_smooth_signal(rng, t_s, axis_r, axis_v) for _ in range(3)], axis=1)
    turn = MAX_TURN_RAD * fps
    yaw = _smooth_signal(rng, t_s, max_rotation_rad, turn)
    pitch = _smooth_signal(rng, t_s, max_rotation_rad, turn)
    roll = _smooth_signal(rng, t_s, 0.5 * max_rotation_rad, turn)
    for i in range(num_frames):
        poses[i, :3, :3] = rotation_xyz(-(pitch_rad + pitch[i]), yaw[i], roll[i])
        poses[i, :3, 3] = pos[i]
    return poses


# ---------------------------------------------------------------- focus schedules (dioptres inside, metres out)


def _sweep(rng, n, fps, lo, hi):
    """Sinusoid between far (lo) and near (hi) dioptres, 1-3 cycles per sequence, period 8 frames to 6 s."""
    period = max(n / rng.uniform(1.0, 3.0), min(8.0, n))
    period = min(period, max(6.0 * fps, 8.0))
    t = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi)), {
        "period_frames": period}  # fmt: skip


def _focal_stack(rng, n, fps, lo, hi):
    """N = 3-7 evenly spaced dioptre positions visited in order, each held 1-3 frames, repeated."""
    num = int(rng.integers(3, 8))
    hold = int(min(rng.integers(1, 4), max(1, n // num)))
    stops = np.linspace(lo, hi, num)[:: 1 if rng.random() < 0.5 else -1]
    return stops[(np.arange(n) // hold) % num], {"num_positions": num, "hold_frames": hold}


def _rack(rng, n, fps, lo, hi):
    """Hold at one end of the range, one smoothstep transition to the other end, hold."""
    a, b = lo + (hi - lo) * rng.uniform(0.0, 0.3), hi - (hi - lo) * rng.uniform(0.0, 0.3)
    if rng.random() < 0.5:
        a, b = b, a
    start, length = rng.uniform(0.1, 0.35) * (n - 1), max(rng.uniform(0.2, 0.45) * (n - 1), 1.0)
    x = np.clip((np.arange(n) - start) / length, 0.0, 1.0)
    return a + (b - a) * x * x * (3 - 2 * x), {"start_frame": start, "transition_frames": length}


def _af_hunt(rng, n, fps, lo, hi):
    """Damped oscillations (overshoot) around a target, restarted by re-hunts every ~1.5 s (new target or kick)."""
    out, hunts = np.empty(n), []
    current, target, next_hunt = rng.uniform(lo, hi), 0.0, 0
    for i in range(n):
        if i == next_hunt:
            if not hunts or rng.random() < 0.6:
                target = rng.uniform(lo, hi)
            freq_hz, tau_s = rng.uniform(1.0, 3.0), rng.uniform(0.15, 0.6)
            start, kick = current, (hi - lo) * rng.uniform(-0.3, 0.3)
            hunts.append(i)
            next_hunt = i + max(2, int(rng.exponential(1.5) * fps))
        dt_s = (i - hunts[-1]) / fps
        w = 2 * math.pi * freq_hz * dt_s
        current = target + math.exp(-dt_s / tau_s) * ((start - target) * math.cos(w) + kick * math.sin(w))
        out[i] = current
    return np.clip(out, lo, hi), {"hunt_frames": hunts}


def _fixed(rng, n, fps, lo, hi):
    """One focus distance, uniform in dioptres."""
    return np.full(n, rng.uniform(lo, hi)), {}


_SCHEDULES = {"fixed": _fixed, "sweep": _sweep, "focal_stack": _focal_stack, "rack": _rack, "af_hunt": _af_hunt}


def focus_schedule(rng: np.random.Generator, schedule: str, num_frames: int, fps: float, near_m: float,
                   far_m: float) -> tuple[np.ndarray, dict]:  # fmt: skip
    """(T,) float64 focus distances in metres within [near_m, far_m], plus a dict describing the schedule."""
    if schedule not in _SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}")
    far_dpt, near_dpt = 1.0 / far_m, 1.0 / near_m
    margin = 0.02 * (near_dpt - far_dpt)
    lo, hi = far_dpt + margin, near_dpt - margin
    dpt, info = _SCHEDULES[schedule](rng, num_frames, fps, lo, hi)
    info = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info.items()}
    return 1.0 / np.clip(dpt, far_dpt, near_dpt), {"schedule": schedule, **info}


# ---------------------------------------------------------------- lens


@dataclass(frozen=True)
class LensDraw:
    """Lens of one sequence: focal length (m), f-number, horizontal FOV (deg), fx (px), fx*D (px m).

    max_blur_px: the largest blur over the sequence; limit_lo_px, limit_hi_px: the accepted range for it;
    tries: candidates drawn until one was accepted (-1: none was, the closest was taken).
    """

    focal_length_m: float
    f_number: float
    hfov_deg: float
    fx_px: float
    blur_scale_pxm: float
    max_blur_px: float
    limit_lo_px: float
    limit_hi_px: float
    tries: int

    def as_dict(self) -> dict:
        return asdict(self)


def fx_from_hfov_px(width_px: int, hfov_deg: float) -> float:
    """Focal length in pixels of an image ``width_px`` wide spanning ``hfov_deg`` horizontally."""
    return width_px / (2.0 * math.tan(math.radians(hfov_deg) / 2))


def draw_hfov_deg(rng: np.random.Generator, fixed_deg: float | None = None) -> float:
    """Horizontal FOV in degrees: ``fixed_deg`` if given, else uniform in HFOV_RANGE_DEG."""
    return float(fixed_deg) if fixed_deg is not None else float(rng.uniform(*HFOV_RANGE_DEG))


def blur_limits_px(width_px: int, max_blur_px: float, min_blur_px: float | None = None) -> tuple[float, float]:
    """(min, max) accepted 'largest blur' of a lens draw, px: (3, max_blur_px) at >= 320 px wide, scaled down below.

    ``min_blur_px`` raises the lower limit from 3 px (e.g. 8 for a set of strong-cue lenses).

    Blur in px scales with the image width (fx). Scaling both limits below REFERENCE_WIDTH_PX makes the
    draw resolution-independent there (same seed, same lens at 160 and 320 px wide), never exceeds
    max_blur_px, and keeps the cue requirement reachable on small images.
    """
    scale = min(1.0, width_px / REFERENCE_WIDTH_PX)
    hi = max_blur_px * scale
    lo = (MIN_CUE_BLUR_PX if min_blur_px is None else min_blur_px) * scale
    return min(lo, hi if min_blur_px is not None else 0.5 * hi), hi


def _log_uniform(rng, lo, hi, n):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def draw_lens(rng: np.random.Generator, width_px: int, hfov_deg: float, focus_m: np.ndarray, near_m: float,
              far_m: float, max_blur_px: float, focal_length_m: float | None = None, f_number: float | None = None,
              candidates: int = 2000, min_blur_px: float | None = None) -> LensDraw:  # fmt: skip
    """Draw focal length (log-uniform 4-50 mm) and f-number (log-uniform f/1.2-f/8), independently of the FOV.

    Rejection: the largest blur over depths [near_m, far_m] and all focus distances ``focus_m`` must lie
    in ``blur_limits_px``; among those, the draw closest to a log-uniform target blur in that range is
    taken. Fixed values are used as given; if no candidate passes, the one closest to
    the allowed blur range is taken (``tries`` = -1).
    """
    fx = fx_from_hfov_px(width_px, hfov_deg)
    inv_f = 1.0 / np.asarray(focus_m, float)
    max_defocus_dpt = float(max(np.abs(inv_f - 1.0 / near_m).max(), np.abs(inv_f - 1.0 / far_m).max()))
    f = np.full(candidates, focal_length_m) if focal_length_m else _log_uniform(rng, *FOCAL_LENGTH_RANGE_M, candidates)
    n = np.full(candidates, f_number) if f_number else _log_uniform(rng, *F_NUMBER_RANGE, candidates)
    blur = blur_scale_pxm(fx, f, n) * max_defocus_dpt
    lo_px, hi_px = blur_limits_px(width_px, max_blur_px, min_blur_px)
    violation = 10 * np.maximum(blur - hi_px, 0) + np.maximum(lo_px - blur, 0)
    ok = np.flatnonzero(violation == 0)
    # Realistic lenses mostly give blur near the lower limit; aim at a log-uniform target instead,
    # so sequences cover weak to strong defocus cues evenly.
    target_px = float(_log_uniform(rng, lo_px, hi_px, 1)[0])
    i = int(ok[np.argmin(np.abs(np.log(blur[ok] / target_px)))]) if ok.size else int(np.argmin(violation))
    return LensDraw(float(f[i]), float(n[i]), float(hfov_deg), fx, float(blur_scale_pxm(fx, f[i], n[i])),
                    float(blur[i]), lo_px, hi_px, i + 1 if ok.size else -1)  # fmt: skip
