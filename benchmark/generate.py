"""Render one benchmark sequence: plan (poses, focus, lens), ground truth, thin-lens frames, sensor noise.

Order of work for a ``SequenceSpec``:
  1. poses (``camera.camera_pose``) and focus distances (``camera.focus_schedule_m``) per frame;
  2. pinhole ground-truth z-depth of every frame (cheap: 1 ray per pixel);
  3. the lens: fx from the fov; fx * D given, or chosen so that the 99.9th percentile of
     c_px = fx D |1/focus - 1/z| over all frames and valid pixels is the spec's target; the
     focal length follows from the f-number (f = fx D N / fx);
  4. exposure (electrons per unit radiance) from a 4-spp pinhole render of frame 0;
  5. per frame: thin-lens radiance (seed = frame index), shot/read noise, 8-bit sRGB. Each
     finished frame is cached as ``<cache_dir>/frame_XXXX.npz`` (image uint8, depth float32),
     so an interrupted sequence resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark import camera, sensor
from benchmark.render import RenderSettings, SceneRenderer
from benchmark.scenes import build_scene
from benchmark.sequences import SequenceSpec
from dfd_depth_ros.frames import Frame, Sequence, intrinsics_matrix
from dfd_depth_ros.optics import LensState

__all__ = ["Plan", "plan_sequence", "plan_summary", "render_sequence", "BLUR_PERCENTILE", "STAMP_BASE_NS"]

BLUR_PERCENTILE = 99.9
STAMP_BASE_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


@dataclass
class Plan:
    """Everything about a sequence except its images. Arrays: poses (n, 4, 4), focus_m (n,), depth_m (n, H, W)."""

    spec: SequenceSpec
    poses: np.ndarray
    focus_m: np.ndarray
    depth_m: np.ndarray
    fx_px: float
    f_number: float
    focal_length_m: float
    blur_scale_pxm: float
    stamps_ns: list[int]

    @property
    def K(self) -> np.ndarray:
        s = self.spec
        return intrinsics_matrix(self.fx_px, self.fx_px, (s.width_px - 1) / 2.0, (s.height_px - 1) / 2.0)

    def lens(self, i: int) -> LensState:
        return LensState(float(self.focus_m[i]), float(self.f_number), float(self.focal_length_m))

    def blur_px(self) -> np.ndarray:
        """(n, H, W) blur-circle diameter of the ground truth, px (NaN where no depth)."""
        inv = np.abs(1.0 / self.focus_m[:, None, None] - 1.0 / self.depth_m.astype(np.float64))
        return self.blur_scale_pxm * inv

    def summary(self) -> dict:
        """Numbers for the manifest and the table (JSON-serialisable)."""
        d = self.depth_m[np.isfinite(self.depth_m)]
        blur = self.blur_px()
        blur = blur[np.isfinite(blur)]
        lo, hi = float(np.percentile(d, 1)), float(np.percentile(d, 99))
        f_lo, f_hi = float(self.focus_m.min()), float(self.focus_m.max())
        # fraction of the scene's dioptre interval [1/hi, 1/lo] that the focus dioptres [1/f_hi, 1/f_lo] cover
        overlap = max(0.0, min(1.0 / lo, 1.0 / f_lo) - max(1.0 / hi, 1.0 / f_hi))
        coverage = overlap / max(1.0 / lo - 1.0 / hi, 1e-9)
        return {
            "fx_px": round(self.fx_px, 3),
            "f_number": round(self.f_number, 3),
            "focal_length_m": round(self.focal_length_m, 6),
            "blur_scale_pxm": round(self.blur_scale_pxm, 4),
            "max_blur_px": round(float(np.percentile(blur, BLUR_PERCENTILE)), 2),
            "depth_range_m": [round(lo, 3), round(hi, 3)],
            "focus_range_m": [round(f_lo, 3), round(f_hi, 3)],
            "focus_coverage": round(coverage, 3),
            "sky_fraction": round(float(np.mean(~np.isfinite(self.depth_m))), 4),
        }


def _settings(spec: SequenceSpec, spp: int, variant: str) -> RenderSettings:
    return RenderSettings(width_px=spec.width_px, height_px=spec.height_px, spp=spp, variant=variant)


def plan_sequence(spec: SequenceSpec, renderer: SceneRenderer) -> Plan:
    """Steps 1-3 of the module docstring, with ``renderer`` loaded for ``spec``'s scene."""
    n = spec.frames
    ts = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    poses = np.stack([camera.camera_pose(spec.motion, float(t), spec.motion_params) for t in ts])
    focus = camera.focus_schedule_m(spec.schedule, n, spec.schedule_params)
    depth = np.stack([renderer.depth_m(T) for T in poses])
    fx = renderer.fx_px
    if spec.blur_scale_pxm is not None:
        blur_scale = float(spec.blur_scale_pxm)
    else:
        inv = np.abs(1.0 / focus[:, None, None] - 1.0 / depth.astype(np.float64))
        defocus = float(np.percentile(inv[np.isfinite(inv)], BLUR_PERCENTILE))
        blur_scale = float(spec.target_max_blur_px) / max(defocus, 1e-6)
    focal = camera.lens_for_blur_scale(blur_scale, fx, spec.f_number)
    dt_ns = 1e9 / spec.fps
    stamps = [STAMP_BASE_NS + spec.seed * 3_600_000_000_000 + int(round(i * dt_ns)) for i in range(n)]
    return Plan(spec, poses, focus, depth, fx, float(spec.f_number), focal, blur_scale, stamps)


def plan_summary(spec: SequenceSpec, variant: str) -> dict:
    """Steps 1-3 only (lens, depth and focus ranges, max blur): the numbers of the manifest, no images."""
    scene = build_scene(spec.scene, spec.fov_deg, spec.width_px, spec.height_px)
    renderer = SceneRenderer(scene, _settings(spec, 1, variant), spec.fov_deg)
    return plan_sequence(spec, renderer).summary()


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_cached(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        with np.load(path) as z:
            img = z["image"]
    except (OSError, KeyError, ValueError, EOFError):
        return None
    return img if img.shape == (*shape, 3) and img.dtype == np.uint8 else None


def render_sequence(spec: SequenceSpec, spp: int, variant: str, cache_dir: Path | None = None,
                    progress: bool = True) -> tuple[Sequence, dict]:
    """Render ``spec`` into a Sequence (frames with image, K, lens, stamp, depth, pose) and a stats dict.

    cache_dir: per-frame cache (finished frames are reused); None: no cache.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    scene = build_scene(spec.scene, spec.fov_deg, spec.width_px, spec.height_px)
    renderer = SceneRenderer(scene, _settings(spec, spp, variant), spec.fov_deg)
    plan = plan_sequence(spec, renderer)
    model = sensor.LOW_LIGHT if spec.low_light else sensor.NORMAL_LIGHT
    exposure_e = sensor.auto_exposure(renderer.radiance(plan.poses[0], None, seed=0, spp=4), model)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    frames, rendered, render_s = [], 0, 0.0
    bar = tqdm(range(spec.frames), desc=spec.name, unit="frame", disable=not progress, leave=True)
    for i in bar:
        cached = cache_dir / f"frame_{i:04d}.npz" if cache_dir is not None else None
        image = _load_cached(cached, (spec.height_px, spec.width_px)) if cached is not None else None
        if image is None:
            t = time.perf_counter()
            linear = renderer.radiance(plan.poses[i], plan.lens(i), seed=i)
            image = sensor.apply_sensor(linear, exposure_e, model, np.random.default_rng([spec.seed, i, 5150]))
            render_s += time.perf_counter() - t
            rendered += 1
            if cached is not None:
                _save_npz(cached, image=image, depth=plan.depth_m[i])
        frames.append(Frame(image=image, K=plan.K, lens=plan.lens(i), stamp_ns=plan.stamps_ns[i],
                            depth_m=plan.depth_m[i].astype(np.float32), pose=plan.poses[i].copy()))
    summary = plan.summary()
    stats = {
        **summary,
        "exposure_e_per_unit": round(exposure_e, 3),
        "sensor": model.as_dict(),
        "frames_rendered": rendered,
        "seconds_per_frame": round(render_s / rendered, 3) if rendered else None,
        "seconds_total": round(time.perf_counter() - t0, 2),
    }
    meta = {
        "schedule": spec.schedule,
        "motion": spec.motion,
        "lens_regime": spec.lens_regime,
        "low_light": bool(spec.low_light),
        "scene_layout": spec.scene.layout,
        "has_sky": bool(scene.has_sky),
        "encoding": spec.encoding,
        "storage": spec.storage,
        "generator": "benchmark (Mitsuba 3 thinlens, path-traced)",
        "mitsuba_variant": variant,
        "spp": int(spp),
        "spec_hash": spec.spec_hash(),
        "notes": spec.notes,
        **summary,
        "T_world_camera": [[round(float(v), 7) for v in T.reshape(16)] for T in plan.poses],
        **spec.extra_meta,
    }
    if not math.isfinite(stats["max_blur_px"]):
        raise RuntimeError(f"{spec.name}: no valid ground-truth depth")
    return Sequence(frames=frames, name=spec.name, meta=meta), stats
