"""Mitsuba 3 rendering for the benchmark: thin-lens radiance and pinhole ground-truth z-depth.

Radiance: Mitsuba's ``thinlens`` sensor (aperture radius D/2 with D = focal_length / f_number,
planar focus at ``focus_distance``, horizontal ``fov`` so that fx = W / (2 tan(fov / 2))), a box
reconstruction filter (each pixel integrates its 1 px footprint: no extra filter blur), a
stratified sampler and the ``path`` integrator (``max_depth`` 3: direct light plus one
bounce). The result is linear RGB radiance, (H, W, 3) float32.

Ground truth: the same pose through a ``perspective`` (pinhole) sensor, one sample exactly at
each pixel centre (stratified sampler, 1 spp, no jitter), ``aov`` integrator ``dd.y:depth``.
Mitsuba's aov depth t is the distance along the ray from the near-clip plane (the sensor moves
the ray origin forward by near_clip / cos(theta)), so the z-depth along the optical axis is
z = t cos(theta) + near_clip, theta the angle of the pixel-centre ray to the axis. Rays that
hit nothing (sky) have t = 0 and get NaN. (H, W) float32 metres. This is the depth of the
surface seen through the pixel centre, not the aperture-averaged depth of a thin-lens aov.

Camera convention: poses are T_world_camera of the optical frame (x right, y down, z
forward). Mitsuba's camera looks along local +z with local +x to the image's left and +y up,
so its to_world is T_world_camera @ diag(-1, -1, 1, 1).

Variant: ``select_variant`` tries ``llvm_ad_rgb`` (needs a libLLVM that drjit accepts, found
through DRJIT_LIBLLVM_PATH; each candidate is probed in a subprocess because an unsuitable
libLLVM aborts the process) and falls back to ``scalar_rgb`` with a message.
"""

from __future__ import annotations

import glob
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from benchmark.scenes import Scene, to_mitsuba
from dfd_depth_ros.optics import LensState

__all__ = ["RenderSettings", "SceneRenderer", "select_variant", "mitsuba_to_world", "pixel_cos_theta"]

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
_PROBE = (
    "import mitsuba as mi; mi.set_variant('llvm_ad_rgb'); "
    "s = mi.load_dict(mi.cornell_box()); import numpy as np; "
    "a = np.array(mi.render(s, spp=2)); assert np.isfinite(a).all() and a.mean() > 0"
)


@dataclass(frozen=True)
class RenderSettings:
    """Image size (px), samples per pixel, path depth, near clip (m) and Mitsuba variant."""

    width_px: int = 288
    height_px: int = 216
    spp: int = 64
    max_depth: int = 3
    near_clip_m: float = 0.01
    variant: str = "scalar_rgb"


def _libllvm_candidates() -> list[str]:
    """libLLVM shared libraries on this machine, newest version first."""
    found = set()
    for pattern in ("/usr/lib/x86_64-linux-gnu/libLLVM*.so*", "/usr/lib/llvm-*/lib/libLLVM*.so*",
                    "/usr/lib64/libLLVM*.so*", "/usr/local/lib/libLLVM*.so*", "/opt/homebrew/opt/llvm/lib/libLLVM*"):
        found.update(os.path.realpath(p) for p in glob.glob(pattern) if os.path.isfile(p))  # each file once

    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"(\d+)(?:\.(\d+))?", os.path.basename(path).replace("libLLVM", ""))
        return tuple(int(g) for g in m.groups() if g) if m else (0,)

    return sorted(found, key=version, reverse=True)


def select_variant(requested: str | None = None, log=print) -> str:
    """Pick the Mitsuba variant: ``requested`` if given, else llvm_ad_rgb when it works here, else scalar_rgb.

    A working libLLVM is exported as DRJIT_LIBLLVM_PATH for this process.
    """
    if requested:
        return requested
    candidates = [os.environ["DRJIT_LIBLLVM_PATH"]] if os.environ.get("DRJIT_LIBLLVM_PATH") else _libllvm_candidates()
    failures = []
    for lib in candidates:
        env = dict(os.environ, DRJIT_LIBLLVM_PATH=lib)
        try:
            res = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            failures.append(f"{os.path.basename(lib)}: timeout")
            continue
        if res.returncode == 0:
            os.environ["DRJIT_LIBLLVM_PATH"] = lib
            log(f"mitsuba: using llvm_ad_rgb with {lib}")
            return "llvm_ad_rgb"
        last = (res.stderr.decode(errors="replace").strip().splitlines() or [f"exit {res.returncode}"])
        failures.append(f"{os.path.basename(lib)}: {last[0][:70]}")
    why = "; ".join(failures) if failures else "no libLLVM found"
    log(f"mitsuba: llvm_ad_rgb unavailable ({why}); falling back to scalar_rgb "
        "(install libLLVM >= 19, e.g. Debian's libllvm19, or set DRJIT_LIBLLVM_PATH, for the faster variant)")
    return "scalar_rgb"


def mitsuba_to_world(T_world_camera: np.ndarray) -> np.ndarray:
    """Mitsuba sensor to_world (4, 4) of an optical-frame pose T_world_camera (4, 4)."""
    return np.asarray(T_world_camera, dtype=np.float64) @ _FLIP


def pixel_cos_theta(width_px: int, height_px: int, fx_px: float) -> np.ndarray:
    """(H, W) cosine of the angle between each pixel-centre ray and the optical axis (square pixels)."""
    u = (np.arange(width_px) + 0.5 - width_px / 2.0) / fx_px
    v = (np.arange(height_px) + 0.5 - height_px / 2.0) / fx_px
    return 1.0 / np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)


class SceneRenderer:
    """One loaded Mitsuba scene; renders radiance and ground-truth depth from any pose.

    fov_x_deg: horizontal field of view of every frame (fx = W / (2 tan(fov / 2))).
    """

    def __init__(self, scene: Scene, settings: RenderSettings, fov_x_deg: float):
        import mitsuba as mi

        if mi.variant() != settings.variant:
            mi.set_variant(settings.variant)
        self.mi = mi
        self.settings = settings
        self.fov_x_deg = float(fov_x_deg)
        self.fx_px = settings.width_px / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
        self.scene = mi.load_dict(to_mitsuba(scene, mi))
        self._path = mi.load_dict({"type": "path", "max_depth": settings.max_depth, "hide_emitters": False})
        self._aov = mi.load_dict({"type": "aov", "aovs": "dd.y:depth"})
        self._cos = pixel_cos_theta(settings.width_px, settings.height_px, self.fx_px)

    def _sensor(self, kind: str, T_world_camera: np.ndarray, sampler: dict, pixel_format: str, **extra):
        s = self.settings
        return self.mi.load_dict({
            "type": kind,
            "fov": self.fov_x_deg,
            "fov_axis": "x",
            "near_clip": s.near_clip_m,
            "far_clip": 1.0e4,
            "to_world": self.mi.ScalarTransform4f(mitsuba_to_world(T_world_camera)),
            "sampler": sampler,
            "film": {"type": "hdrfilm", "width": s.width_px, "height": s.height_px,
                     "rfilter": {"type": "box"}, "pixel_format": pixel_format},
            **extra,
        })

    def radiance(self, T_world_camera: np.ndarray, lens: LensState | None, seed: int = 0,
                 spp: int | None = None) -> np.ndarray:
        """(H, W, 3) float32 linear RGB through the thin lens ``lens`` (None: a pinhole)."""
        spp = int(spp or self.settings.spp)
        sampler = {"type": "stratified", "sample_count": spp}
        if lens is None:
            sensor = self._sensor("perspective", T_world_camera, sampler, "rgb")
        else:
            sensor = self._sensor("thinlens", T_world_camera, sampler, "rgb",
                                  aperture_radius=lens.aperture_diameter_m / 2.0,
                                  focus_distance=lens.focus_distance_m)
        img = self.mi.render(self.scene, sensor=sensor, integrator=self._path, spp=spp, seed=int(seed))
        return np.array(img, dtype=np.float32)[..., :3]

    def depth_m(self, T_world_camera: np.ndarray) -> np.ndarray:
        """(H, W) float32 z-depth (m) of the surface seen through each pixel centre; NaN where nothing is hit."""
        sampler = {"type": "stratified", "sample_count": 1, "jitter": False}
        sensor = self._sensor("perspective", T_world_camera, sampler, "luminance")
        t = np.array(self.mi.render(self.scene, sensor=sensor, integrator=self._aov, spp=1, seed=0),
                     dtype=np.float64)[..., 0]
        z = t * self._cos + self.settings.near_clip_m
        return np.where(t > 0.0, z, np.nan).astype(np.float32)
