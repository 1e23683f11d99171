"""Camera trajectories, focus schedules and lens draws of the benchmark (numpy only).

Poses are 4x4 float64 T_world_camera of the optical frame (x right, y down, z forward) in the
world frame of ``benchmark.scenes`` (x right, y down, z forward, metres). Focus schedules are
per-frame focus distances in metres, built in dioptres (1/m), where a lens moves linearly.

Motions (``MOTIONS``), t in [0, 1] over the sequence:
    static  the base pose
    slide   translation along the camera's x axis, ``travel_m`` in total, centred on the base pose
    pan     yaw about the camera's y axis, ``yaw_deg`` in total
    dolly   translation along the optical axis, ``travel_m`` in total (> 0: forward)
    arc     orbit about a pivot ``pivot_m`` ahead, ``angle_deg`` in total, always facing the pivot
Every motion may add a small smooth "hand-held" wobble (``wobble_m``, ``wobble_deg``).

Focus schedules (``SCHEDULES``), frame index i = 0..n-1:
    fixed        focus_m constant
    sweep        sinusoid in dioptres between near_m and far_m, period_frames (not an integer)
    focal_stack  cycles through 3 focus distances, one frame each
    rack         holds from_m, pulls to to_m over pull_frames (smoothstep in dioptres), holds
    af_hunt      contrast-AF hunting: damped oscillation (period_frames 7, decay_frames 3) from
                 start_m about target_m, overshooting it by about 30 % of the step; at
                 retarget_frame it hunts again, from where it is, towards target2_m
"""

from __future__ import annotations

import math

import numpy as np

from dfd_depth_ros import optics

__all__ = [
    "MOTIONS",
    "SCHEDULES",
    "camera_pose",
    "focus_schedule_m",
    "fov_from_fx_deg",
    "fx_from_fov_px",
    "lens_for_blur_scale",
    "RPI_CM3_FOCAL_LENGTH_M",
    "RPI_CM3_F_NUMBER",
    "rpi_cm3_blur_scale_pxm",
]

MOTIONS = ("static", "slide", "pan", "dolly", "arc")
SCHEDULES = ("fixed", "sweep", "focal_stack", "rack", "af_hunt")
F_STOPS = (1.0, 1.2, 1.4, 1.8, 2.0, 2.8, 4.0, 5.6)

# Raspberry Pi Camera Module 3 (Sony IMX708): f = 4.74 mm, f/1.8, 66 deg horizontal fov.
RPI_CM3_FOCAL_LENGTH_M = 4.74e-3
RPI_CM3_F_NUMBER = 1.8
RPI_CM3_FOV_X_DEG = 66.0


def rpi_cm3_blur_scale_pxm(width_px: int = 640) -> float:
    """fx * D (px m) of the Camera Module 3 scaled to ``width_px``: about 1.3 px m at 640x480."""
    fx = fx_from_fov_px(RPI_CM3_FOV_X_DEG, width_px)
    return optics.blur_scale_pxm(fx, RPI_CM3_FOCAL_LENGTH_M, RPI_CM3_F_NUMBER)


def fx_from_fov_px(fov_x_deg: float, width_px: int) -> float:
    """fx = W / (2 tan(fov_x / 2)), px."""
    return width_px / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))


def fov_from_fx_deg(fx_px: float, width_px: int) -> float:
    """Horizontal field of view (deg) of a camera with focal length fx_px and width_px columns."""
    return math.degrees(2.0 * math.atan(width_px / (2.0 * fx_px)))


def lens_for_blur_scale(blur_scale_pxm: float, fx_px: float, f_number: float) -> float:
    """Focal length (m) that gives fx * D = blur_scale at this f-number: f = blur_scale * N / fx."""
    return blur_scale_pxm * f_number / fx_px


# ------------------------------------------------------------------------------ poses


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def camera_pose(motion: str, t: float, params: dict | None = None) -> np.ndarray:
    """T_world_camera (4, 4) at normalised time t in [0, 1].

    params: pitch_down_deg (base pitch, > 0 looks down), position_m (base position, 3),
    and the motion's own parameters (see module docstring), plus wobble_m / wobble_deg / seed.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    p = dict(params or {})
    base_pos = np.asarray(p.get("position_m", (0.0, 0.0, 0.0)), dtype=np.float64)
    R_base = _rot_x(-math.radians(p.get("pitch_down_deg", 0.0)))
    s = float(t) - 0.5  # centred: the base pose is mid-sequence
    R_motion = np.eye(3)
    offset = np.zeros(3)
    if motion == "slide":
        offset = R_base @ np.array([p.get("travel_m", 0.3) * s, 0.0, 0.0])
    elif motion == "dolly":
        offset = R_base @ np.array([0.0, 0.0, p.get("travel_m", 0.5) * (float(t))])  # starts at the base pose
    elif motion == "pan":
        R_motion = _rot_y(math.radians(p.get("yaw_deg", 15.0)) * s)
    elif motion == "arc":
        d = float(p.get("pivot_m", 1.5))
        R_motion = _rot_y(math.radians(p.get("angle_deg", 20.0)) * s)
        offset = np.array([0.0, 0.0, d]) + R_motion @ np.array([0.0, 0.0, -d])
    wob_m, wob_deg = float(p.get("wobble_m", 0.0)), float(p.get("wobble_deg", 0.0))
    if wob_m or wob_deg:
        rng = np.random.default_rng([int(p.get("seed", 0)), 99])
        freq, phase = rng.uniform(0.7, 2.3, 6), rng.uniform(0, 2 * math.pi, 6)
        w = np.sin(2 * math.pi * freq * t + phase)
        offset = offset + wob_m * w[:3]
        R_motion = R_motion @ _rot_y(math.radians(wob_deg) * w[3]) @ _rot_x(math.radians(wob_deg) * w[4])
    return _pose(R_motion @ R_base, base_pos + offset)


# ------------------------------------------------------------------------------ focus


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _hunt_dpt(i: np.ndarray, start_dpt: float, target_dpt: float, period_frames: float, decay_frames: float):
    """Damped oscillation from start to target (dioptres): overshoots by exp(-period / (2 decay))."""
    env = np.exp(-i / decay_frames)
    return target_dpt + (start_dpt - target_dpt) * env * np.cos(2.0 * math.pi * i / period_frames)


def focus_schedule_m(schedule: str, n_frames: int, params: dict) -> np.ndarray:
    """(n_frames,) float64 focus distance per frame, metres (see the module docstring for params)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    i = np.arange(n_frames, dtype=np.float64)
    p = params
    if schedule == "fixed":
        dpt = np.full(n_frames, 1.0 / p["focus_m"])
    elif schedule == "sweep":
        period = float(p["period_frames"])
        if abs(period - round(period)) < 1e-6:
            raise ValueError(f"sweep period must not be a whole number of frames, got {period}")
        d_near, d_far = 1.0 / p["near_m"], 1.0 / p["far_m"]
        mid, amp = (d_near + d_far) / 2.0, (d_near - d_far) / 2.0
        dpt = mid + amp * np.sin(2.0 * math.pi * i / period + p.get("phase_rad", 0.0))
    elif schedule == "focal_stack":
        stack = np.array([1.0 / z for z in p["stack_m"]])
        if len(stack) != 3:
            raise ValueError("focal_stack needs 3 focus distances")
        dpt = stack[(i.astype(int) + int(p.get("offset", 0))) % 3]
    elif schedule == "rack":
        d0, d1 = 1.0 / p["from_m"], 1.0 / p["to_m"]
        x = (i - p["start_frame"]) / max(float(p["pull_frames"]), 1e-9)
        dpt = d0 + (d1 - d0) * _smoothstep(x)
    else:  # af_hunt
        period, decay = float(p.get("period_frames", 7.0)), float(p.get("decay_frames", 3.0))
        d_start, d_t1 = 1.0 / p["start_m"], 1.0 / p["target_m"]
        dpt = _hunt_dpt(i, d_start, d_t1, period, decay)
        if "retarget_frame" in p and 0 < int(p["retarget_frame"]) < n_frames:
            k = int(p["retarget_frame"])
            dpt[k:] = _hunt_dpt(i[k:] - k, float(dpt[k - 1]), 1.0 / p["target2_m"], period, decay)
    dpt = np.clip(dpt, 1.0 / 50.0, 1.0 / 0.1)  # a real lens: 0.1 m to 50 m
    return 1.0 / dpt
