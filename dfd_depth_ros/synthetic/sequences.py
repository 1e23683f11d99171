"""Seeded defocused-video generator: scene + camera motion + focus schedule + lens -> Sequence.

This module holds the configuration and the top-level generator (``plan_clip``, ``render_clip``,
``generate_sequence``); textures, scenes, ray casting, camera motion, focus schedules and the lens
draw live in their own modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from dfd_depth_ros.frames import Frame, Sequence, intrinsics_matrix
from dfd_depth_ros.optics import LensState
from dfd_depth_ros.synthetic import MOTIONS, SCHEDULES
from dfd_depth_ros.synthetic.raycast import render_depth, render_views
from dfd_depth_ros.synthetic.render import apply_sensor, render_defocus, vignette
from dfd_depth_ros.synthetic.scenes import Scene, random_scene
from dfd_depth_ros.synthetic.trajectories import (
    LensDraw,
    camera_poses,
    draw_hfov_deg,
    draw_lens,
    focus_schedule,
    fx_from_hfov_px,
)


@dataclass(frozen=True)
class SequenceConfig:
    """Everything that defines one generated sequence; the same config and seed give the same frames.

    width_px, height_px: image size (any positive size, not only multiples of 8).
    num_frames, fps: length and frame rate (stamps are num_frames / fps apart in time).
    schedule: focus schedule, one of SCHEDULES.
    motion: camera motion, one of MOTIONS.
    seed: seeds the scene, the motion, the lens draw and the sensor noise.
    focal_length_m, f_number: fixed lens settings, or None to draw them (4-50 mm, f/1.2-f/8).
    hfov_deg: horizontal field of view, or None to draw it.
    max_blur_px: lens draws whose largest blur over the scene and schedule exceeds this are rejected.
    min_blur_px: ... and those whose largest blur is below this (None: 3 px at 320 px wide).
    min_depth_m, max_depth_m: depth range the scene spans.
    noise: add shot and read noise.
    randomise: domain randomisation of the camera beyond the lens draw (for training data; ``VARIATION``): a PSF
        between a disc and a Gaussian, vignetting, a tone curve off sRGB, and sensor noise down to low light.
    """

    width_px: int = 320
    height_px: int = 240
    num_frames: int = 30
    fps: float = 30.0
    schedule: str = "sweep"
    motion: str = "smooth"
    seed: int = 0
    focal_length_m: float | None = None
    f_number: float | None = None
    hfov_deg: float | None = None
    max_blur_px: float = 25.0
    min_blur_px: float | None = None
    min_depth_m: float = 0.3
    max_depth_m: float = 10.0
    noise: bool = True
    randomise: bool = False

    def __post_init__(self):
        if self.width_px < 1 or self.height_px < 1:
            raise ValueError(f"image size must be positive, got {self.width_px}x{self.height_px}")
        if self.num_frames < 1 or not self.fps > 0:
            raise ValueError("num_frames must be >= 1 and fps > 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, got {self.motion!r}")
        if not 0 < self.min_depth_m < self.max_depth_m:
            raise ValueError("need 0 < min_depth_m < max_depth_m")


# ---------------------------------------------------------------- generator (everything above is the frozen config)

BASE_STAMP_NS = 1_700_000_000 * 10**9
SUPERSAMPLE = 2  # colour is cast at 2 x 2 sub-pixels per pixel and area-averaged
RENDER_BATCH_FRAMES = 8  # frames per render_defocus call; fixed, since its layer count depends on the batch
PROBE_WIDTH_PX = 64  # depth probe used to find the depth range of the sequence
MAX_SCENE_TRIES = 20
MAX_FOV_TRIES = 8
GENERATOR_VERSION = 1
# SequenceConfig.randomise: what is drawn per clip, beyond the lens. gauss_mix: PSF shape (render.psf_kernels), 0
# (a disc) with probability disc_share, else uniform in [0, 1]; vignette: render.vignette's strength, 0 with
# probability no_vignette_share, else uniform in [0, vignette_max]; tone_power: apply_sensor's, log-uniform in the
# range; noise: full well log-uniform (the default draw starts at 2000 electrons), read noise uniform.
VARIATION = {"disc_share": 0.4, "no_vignette_share": 0.4, "vignette_max": 0.5, "tone_power": (0.8, 1.25),
             "full_well_e": (300.0, 20000.0), "read_noise_e": (1.0, 8.0)}


@dataclass(frozen=True)
class ClipPlan:
    """Everything about a sequence except its pixels.

    K: (3, 3) intrinsics; poses: (T, 4, 4) T_world_camera; focus_m: (T,) focus distances (m);
    depth_range_m: (near, far) depths the camera sees over the sequence; stamps_ns: (T,) int64;
    noise: (full_well_e, read_noise_e), full_well_e = 0 without noise; noise_seed: base seed of the sensor noise.
    """

    cfg: SequenceConfig
    scene: Scene
    K: np.ndarray
    poses: np.ndarray
    focus_m: np.ndarray
    lens: LensDraw
    depth_range_m: tuple[float, float]
    schedule_info: dict
    stamps_ns: np.ndarray
    noise: tuple[float, float]
    noise_seed: int
    scene_tries: int
    variation: dict = field(default_factory=dict)  # with cfg.randomise: gauss_mix, vignette, tone_power (VARIATION)

    @property
    def name(self) -> str:
        return f"{self.cfg.schedule}_{self.cfg.motion}_s{self.cfg.seed}"

    def lens_state(self, i: int) -> LensState:
        """Lens state of frame i."""
        return LensState(float(self.focus_m[i]), self.lens.f_number, self.lens.focal_length_m)


def _probe_range_m(scene: Scene, poses: np.ndarray, K: np.ndarray, cfg: SequenceConfig) -> tuple[float, float]:
    """(min, max) z-depth over a low-resolution render of up to 16 frames (inf if some ray misses)."""
    pw = min(cfg.width_px, PROBE_WIDTH_PX)
    ph = max(2, round(cfg.height_px * pw / cfg.width_px))
    fx = K[0, 0] * pw / cfg.width_px
    k_probe = intrinsics_matrix(fx, fx, (pw - 1) / 2, (ph - 1) / 2)
    idx = np.unique(np.linspace(0, len(poses) - 1, min(len(poses), 16)).round().astype(int))
    depth = render_depth(scene, poses[idx], k_probe, pw, ph)
    if not torch.isfinite(depth).all():
        return 0.0, float("inf")
    return float(depth.min()), float(depth.max())


def _scene_and_motion(cfg: SequenceConfig, streams, K: np.ndarray, hfov_deg: float):
    """Draw scene + poses until the probed depths fit [min_depth_m, max_depth_m] -> scene, poses, range, tries."""
    rng_scene, rng_motion = streams
    aspect = cfg.height_px / cfg.width_px
    tries = 0
    while tries < MAX_SCENE_TRIES:
        tries += 1
        scene = random_scene(rng_scene, hfov_deg, aspect, cfg.min_depth_m, cfg.max_depth_m)
        poses = camera_poses(rng_motion, cfg.motion, cfg.num_frames, cfg.fps, scene.motion_radius_m,
                             scene.max_rotation_rad, scene.camera_pitch_rad)  # fmt: skip
        lo, hi = _probe_range_m(scene, poses, K, cfg)
        if lo >= 1.02 * cfg.min_depth_m and hi <= 0.98 * cfg.max_depth_m:
            break
    near = max(lo / 1.03, cfg.min_depth_m)
    far = min(hi * 1.03, cfg.max_depth_m) if np.isfinite(hi) else cfg.max_depth_m
    return scene, poses, (near, far), tries


def plan_clip(cfg: SequenceConfig) -> ClipPlan:
    """Draw FOV, scene, motion, focus schedule, lens and noise from independent streams of ``cfg.seed``.

    When no lens of the drawn FOV gives a blur within ``trajectories.blur_limits_px`` (wide FOVs limit the
    focal length, hence the aperture), the FOV and everything after it are drawn again (up to MAX_FOV_TRIES).
    """
    s_fov, s_scene, s_motion, s_focus, s_lens, s_noise, s_var = (
        np.random.default_rng(s) for s in np.random.SeedSequence([cfg.seed, 0xDFD]).spawn(7))  # fmt: skip
    for _ in range(MAX_FOV_TRIES):
        hfov = draw_hfov_deg(s_fov, cfg.hfov_deg)
        fx = fx_from_hfov_px(cfg.width_px, hfov)
        K = intrinsics_matrix(fx, fx, (cfg.width_px - 1) / 2, (cfg.height_px - 1) / 2)
        scene, poses, (near, far), tries = _scene_and_motion(cfg, (s_scene, s_motion), K, hfov)
        focus_m, info = focus_schedule(s_focus, cfg.schedule, cfg.num_frames, cfg.fps, near, far)
        lens = draw_lens(s_lens, cfg.width_px, hfov, focus_m, near, far, cfg.max_blur_px, cfg.focal_length_m,
                         cfg.f_number, min_blur_px=cfg.min_blur_px)  # fmt: skip
        if lens.tries > 0 or cfg.hfov_deg is not None:
            break
    noise = (float(np.exp(s_noise.uniform(np.log(2000), np.log(20000)))), float(s_noise.uniform(1.0, 5.0)))
    variation = {}
    if cfg.randomise:
        v = VARIATION
        variation = {"gauss_mix": 0.0 if s_var.random() < v["disc_share"] else float(s_var.uniform(0.0, 1.0)),
                     "vignette": 0.0 if s_var.random() < v["no_vignette_share"] else float(
                         s_var.uniform(0.0, v["vignette_max"])),
                     "tone_power": float(np.exp(s_var.uniform(*np.log(v["tone_power"]))))}
        noise = (float(np.exp(s_var.uniform(*np.log(v["full_well_e"])))), float(s_var.uniform(*v["read_noise_e"])))
    stamps = BASE_STAMP_NS + np.round(np.arange(cfg.num_frames) * 1e9 / cfg.fps).astype(np.int64)
    return ClipPlan(cfg, scene, K, poses, focus_m, lens, (near, far), info, stamps,
                    noise if cfg.noise else (0.0, 0.0), int(s_noise.integers(2**62)), tries, variation)  # fmt: skip


def _sensor_u8(img_linear: torch.Tensor, plan: ClipPlan, frames: range, stream: int) -> torch.Tensor:
    """(B, 3, H, W) linear -> uint8 sRGB, noise seeded per frame and stream (0 defocused, 1 all-in-focus)."""
    out = []
    for j, i in enumerate(frames):
        gen = torch.Generator().manual_seed(plan.noise_seed + 2 * i + stream)
        out.append(apply_sensor(img_linear[j : j + 1], plan.noise[0], plan.noise[1], generator=gen,
                                tone_power=plan.variation.get("tone_power", 1.0)))
    return (torch.cat(out) * 255).round().clamp(0, 255).to(torch.uint8)


def _render_batches(plan: ClipPlan, with_aif: bool, supersample: int, progress: bool):
    """Yield (frames range, image uint8 (B,3,H,W), depth (B,1,H,W) m, all-in-focus uint8 or None) per batch."""
    cfg = plan.cfg
    bar = tqdm(total=cfg.num_frames, desc=plan.name, unit="frame", disable=not progress)
    for start in range(0, cfg.num_frames, RENDER_BATCH_FRAMES):
        frames = range(start, min(start + RENDER_BATCH_FRAMES, cfg.num_frames))
        aif, depth = render_views(plan.scene, plan.poses[frames.start : frames.stop], plan.K, cfg.width_px,
                                  cfg.height_px, supersample)  # fmt: skip
        depth = depth.clamp(cfg.min_depth_m, cfg.max_depth_m)  # guard only: the layout keeps depths in range
        focus = torch.tensor(plan.focus_m[frames.start : frames.stop], dtype=torch.float32)
        blurred = render_defocus(aif, depth, torch.full((len(frames),), plan.lens.blur_scale_pxm), focus,
                                 gauss_mix=plan.variation.get("gauss_mix", 0.0))
        if plan.variation.get("vignette", 0.0) > 0:
            aif, blurred = (vignette(x, plan.variation["vignette"]) for x in (aif, blurred))
        aif_u8 = _sensor_u8(aif, plan, frames, 1) if with_aif else None
        yield frames, _sensor_u8(blurred, plan, frames, 0), depth, aif_u8
        bar.update(len(frames))
    bar.close()


def render_clip(cfg: SequenceConfig, with_aif: bool = False, supersample: int = SUPERSAMPLE,
                progress: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
    """Render a sequence as tensors: image (T,3,H,W) sRGB in [0,1] (uint8 levels), depth_m (T,1,H,W),
    focus_distance_m, f_number, focal_length_m, blur_scale_pxm (T,), K (3,3), pose (T,4,4), stamp_ns (T,);
    with ``with_aif`` also aif (T,3,H,W): the all-in-focus frames through the same sensor (own noise draw)."""
    plan = plan_clip(cfg)
    parts = list(_render_batches(plan, with_aif, supersample, progress))
    t = cfg.num_frames
    out = {
        "image": torch.cat([p[1] for p in parts]).float() / 255.0,
        "depth_m": torch.cat([p[2] for p in parts]),
        "focus_distance_m": torch.tensor(plan.focus_m, dtype=torch.float32),
        "f_number": torch.full((t,), plan.lens.f_number),
        "focal_length_m": torch.full((t,), plan.lens.focal_length_m),
        "blur_scale_pxm": torch.full((t,), plan.lens.blur_scale_pxm),
        "K": torch.from_numpy(plan.K),
        "pose": torch.from_numpy(plan.poses),
        "stamp_ns": torch.from_numpy(plan.stamps_ns),
    }
    if with_aif:
        out["aif"] = torch.cat([p[3] for p in parts]).float() / 255.0
    return out


def sequence_meta(plan: ClipPlan, supersample: int = SUPERSAMPLE) -> dict:
    """JSON-friendly description of a plan: config, lens draw, schedule, scene summary, depth range, noise."""
    return {
        "config": asdict(plan.cfg),
        "lens": plan.lens.as_dict(),
        "schedule": plan.schedule_info,
        "scene": {**plan.scene.info, "num_solids": plan.scene.num_solids, "tries": plan.scene_tries},
        "depth_range_m": list(plan.depth_range_m),
        "noise": {"full_well_e": plan.noise[0], "read_noise_e": plan.noise[1]},
        **({"variation": plan.variation} if plan.variation else {}),
        "supersample": supersample,
        "generator_version": GENERATOR_VERSION,
    }


def generate_sequence(cfg: SequenceConfig, progress: bool = False, supersample: int = SUPERSAMPLE) -> Sequence:
    """Render a full Sequence of Frames (uint8 RGB, K, lens state, stamp, z-depth, pose) from ``cfg``."""
    plan = plan_clip(cfg)
    frames = []
    for idx, image, depth, _ in _render_batches(plan, False, supersample, progress):
        for j, i in enumerate(idx):
            frames.append(Frame(
                image=image[j].permute(1, 2, 0).contiguous().numpy(), K=plan.K.copy(), lens=plan.lens_state(i),
                stamp_ns=int(plan.stamps_ns[i]), depth_m=depth[j, 0].numpy().astype(np.float32),
                pose=plan.poses[i].copy(),
            ))  # fmt: skip
    return Sequence(frames, name=plan.name, meta=sequence_meta(plan, supersample))
