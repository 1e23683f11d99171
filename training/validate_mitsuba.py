"""Cross-check the project's thin-lens optics against an independent renderer (Mitsuba 3).

For each case a fronto-parallel plane at z-depth ``z`` carries a sharp vertical step edge
(an area emitter whose radiance is a 2-texel black/white bitmap, so brightness is exactly
0 and 1 and no lighting is involved). Mitsuba's ``thinlens`` sensor (aperture radius D/2,
planar focus at ``focus_distance``, horizontal ``fov`` chosen so that
fx = W / (2 tan(fov/2))) renders it with a box reconstruction filter. The same scene goes
through our layered renderer ``dfd_depth_ros.synthetic.render.render_defocus``: the all-in-focus image is
Mitsuba's pinhole (``perspective``) render of the scene, the depth is the constant z.

Both images are averaged over rows into a 1-D edge profile, and the blur-circle diameter c
is found by least squares against the analytic edge spread function (ESF) of a uniform disc
of diameter c, integrated over the 1-px pixel footprint (box filter), with free edge
position and black/white levels. The result is compared with ``optics.blur_diameter_px``.

A geometry check renders the plane's depth with a pinhole sensor and the ``aov`` integrator.
Mitsuba's ``dd.y:depth`` is the ray distance measured from the near-clip plane (the sensor
moves the ray origin forward by ``near_clip / cos(theta)``), so z = t cos(theta) + near_clip.

Usage: python -m training.validate_mitsuba --out DIR [--variant scalar_rgb] [--spp N] [--quick]
Writes DIR/crosscheck.json, DIR/crosscheck.md and DIR/crosscheck.png, prints the table, and
exits 1 if any measured diameter is more than ``--tol-px`` (1 px) away from the prediction.
Mitsuba is imported lazily: the fitting helpers work without it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dfd_depth_ros import optics
from dfd_depth_ros.evaluation.edge_fit import (  # noqa: F401  (re-exported)
    EdgeFit,
    disc_esf,
    disc_esf_10_90_ratio,
    disc_esf_pixel,
    fit_edge,
    pixel_centres,
    width_10_90_px,
)
from training.mitsuba_report import DEFAULT_TOL_PX, write_report  # noqa: F401  (re-exported)

__all__ = [
    "Case",
    "RenderConfig",
    "QUICK_CASES",
    "FULL_CASES",
    "QUICK_CONFIG",
    "FULL_CONFIG",
    "disc_esf",
    "disc_esf_pixel",
    "disc_esf_10_90_ratio",
    "EdgeFit",
    "fit_edge",
    "width_10_90_px",
    "set_variant",
    "render_mitsuba",
    "render_ours",
    "check_plane_depth",
    "run_case",
    "run",
    "write_report",
    "main",
]



# ----------------------------------------------------------------------------------------
# Cases and render settings
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One lens setting and plane depth. fx refers to the full sensor width (see RenderConfig)."""

    name: str
    fx_px: float
    focal_length_m: float
    f_number: float
    focus_distance_m: float
    z_m: float

    @property
    def lens(self) -> optics.LensState:
        return optics.LensState(self.focus_distance_m, self.f_number, self.focal_length_m)

    @property
    def aperture_radius_m(self) -> float:
        return optics.aperture_diameter_m(self.focal_length_m, self.f_number) / 2.0

    @property
    def predicted_px(self) -> float:
        return float(self.lens.blur_diameter_px(self.z_m, self.fx_px))

    @property
    def signed_px(self) -> float:
        return float(
            optics.signed_blur_px(self.z_m, self.focus_distance_m, self.fx_px, self.focal_length_m, self.f_number)
        )


# Lens A: 16 mm f/2 (D = 8 mm), fx = 500 px -> fx D = 4.0 px m, focused at 0.5 m.
# Lens B: 25 mm f/1.4 (D = 17.9 mm), fx = 800 px -> fx D = 14.3 px m, focused at 1 m.
_A = {"fx_px": 500.0, "focal_length_m": 0.016, "f_number": 2.0, "focus_distance_m": 0.5}
_B = {"fx_px": 800.0, "focal_length_m": 0.025, "f_number": 1.4, "focus_distance_m": 1.0}

QUICK_CASES: tuple[Case, ...] = (
    Case("A_front_0.33m", z_m=0.33, **_A),  # 4.1 px, in front of focus
    Case("A_behind_3m", z_m=3.0, **_A),  # 6.7 px, behind
    Case("B_behind_4m", z_m=4.0, **_B),  # 10.7 px, behind
    Case("B_front_0.45m", z_m=0.45, **_B),  # 17.5 px, in front
)
FULL_CASES: tuple[Case, ...] = QUICK_CASES + (
    Case("A_front_0.2m", z_m=0.2, **_A),  # 12.0 px
    Case("B_behind_20m", z_m=20.0, **_B),  # 13.6 px, near the far limit (fx D / focus = 14.3 px)
    Case("B_front_0.4m", z_m=0.4, **_B),  # 21.4 px
)


@dataclass(frozen=True)
class RenderConfig:
    """Film of sensor_width x sensor_height px (fx refers to it), of which only a centred
    crop_width x crop_height window is rendered. The edge falls on the crop's centre column."""

    sensor_width_px: int = 640
    sensor_height_px: int = 480
    crop_width_px: int = 96
    crop_height_px: int = 16
    spp: int = 256
    variant: str = "scalar_rgb"
    near_clip_m: float = 0.01
    sampler: str = "stratified"
    seed: int = 0

    @property
    def crop_offset(self) -> tuple[int, int]:
        return (self.sensor_width_px - self.crop_width_px) // 2, (self.sensor_height_px - self.crop_height_px) // 2

    @property
    def edge_x_px(self) -> float:
        """Where the plane's edge (world x = 0) lands, in crop pixel coordinates (pixel i spans [i, i+1])."""
        return self.sensor_width_px / 2.0 - self.crop_offset[0]


QUICK_CONFIG = RenderConfig(crop_width_px=96, crop_height_px=16, spp=256)
FULL_CONFIG = RenderConfig(crop_width_px=128, crop_height_px=32, spp=1024)


# ----------------------------------------------------------------------------------------
# Mitsuba scenes
# ----------------------------------------------------------------------------------------


def set_variant(variant: str = "scalar_rgb"):
    """Import mitsuba and select ``variant``; returns the module."""
    import mitsuba as mi

    if mi.variant() != variant:
        mi.set_variant(variant)
    return mi


def _fov_x_deg(fx_px: float, width_px: int) -> float:
    """Horizontal field of view (degrees) that gives fx = width / (2 tan(fov / 2))."""
    return math.degrees(2.0 * math.atan(width_px / (2.0 * fx_px)))


def _scene_dict(mi, case: Case, cfg: RenderConfig, sensor: str, depth_aov: bool = False) -> dict:
    """The plane at z with its step edge on world x = 0, seen from the origin along +z.

    sensor: 'thinlens' (aperture D/2, focus plane z = focus_distance) or 'perspective' (pinhole).
    depth_aov: render the aov depth instead of radiance (plane becomes a diffuse surface).
    """
    T = mi.ScalarTransform4f
    ox, oy = cfg.crop_offset
    film = {
        "type": "hdrfilm",
        "width": cfg.sensor_width_px,
        "height": cfg.sensor_height_px,
        "crop_offset_x": ox,
        "crop_offset_y": oy,
        "crop_width": cfg.crop_width_px,
        "crop_height": cfg.crop_height_px,
        "rfilter": {"type": "box"},  # a gaussian filter would add about a pixel of blur
        "pixel_format": "luminance" if depth_aov else "rgb",
    }
    sensor_dict = {
        "type": sensor,
        "fov": _fov_x_deg(case.fx_px, cfg.sensor_width_px),
        "fov_axis": "x",
        "near_clip": cfg.near_clip_m,
        "to_world": T().look_at(origin=[0.0, 0.0, 0.0], target=[0.0, 0.0, 1.0], up=[0.0, 1.0, 0.0]),
        "sampler": {"type": cfg.sampler, "sample_count": cfg.spp, "seed": cfg.seed},
        "film": film,
    }
    if sensor == "thinlens":
        sensor_dict["aperture_radius"] = case.aperture_radius_m
        sensor_dict["focus_distance"] = case.focus_distance_m
    # Half-size of the plane: covers the sensor's full view at z plus the aperture, with margin.
    half = 2.0 * case.z_m * (cfg.sensor_width_px / 2.0) / case.fx_px + 4.0 * case.aperture_radius_m + 1.0
    plane = {
        "type": "rectangle",  # [-1, 1]^2 in the local xy plane, normal +z; u = (x + 1) / 2
        "flip_normals": True,  # face the camera (area emitters are one-sided)
        "to_world": T().translate([0.0, 0.0, case.z_m]) @ T().scale([half, half, 1.0]),
    }
    if depth_aov:
        plane["bsdf"] = {"type": "diffuse"}
        integrator = {"type": "aov", "aovs": "dd.y:depth"}
    else:
        texels = np.zeros((1, 2, 3), dtype=np.float32)
        texels[0, 1] = 1.0  # u >= 0.5 (world x >= 0) bright, u < 0.5 black
        plane["emitter"] = {
            "type": "area",
            "radiance": {"type": "bitmap", "bitmap": mi.Bitmap(texels), "filter_type": "nearest", "raw": True},
        }
        integrator = {"type": "path", "max_depth": 1}  # emitters seen directly; nothing else to do
    return {"type": "scene", "integrator": integrator, "sensor": sensor_dict, "plane": plane}


def render_mitsuba(case: Case, cfg: RenderConfig, sensor: str = "thinlens", spp: int | None = None) -> np.ndarray:
    """Linear luminance image (crop_height, crop_width) of the edge through ``sensor`` (spp: cfg.spp)."""
    mi = set_variant(cfg.variant)
    spp = spp or cfg.spp
    scene = mi.load_dict(_scene_dict(mi, case, replace(cfg, spp=spp), sensor))
    img = np.array(mi.render(scene, spp=spp, seed=cfg.seed), dtype=np.float64)
    return img.mean(axis=2)  # equal R, G, B


def check_plane_depth(case: Case, cfg: RenderConfig, spp: int = 16) -> dict:
    """Render the aov depth with a pinhole sensor and convert it to z-depth.

    Mitsuba's aov depth t is measured from the near-clip plane along the ray (the ray origin is
    moved by near_clip / cos(theta)), so z = t * cos(theta) + near_clip with theta the ray's
    angle to the optical axis (taken at the pixel centre). Returns the z range found.
    """
    mi = set_variant(cfg.variant)
    scene = mi.load_dict(_scene_dict(mi, case, replace(cfg, sampler="independent"), "perspective", depth_aov=True))
    t = np.array(mi.render(scene, spp=spp), dtype=np.float64)[..., 0]
    ox, oy = cfg.crop_offset
    u = (ox + pixel_centres(cfg.crop_width_px) - cfg.sensor_width_px / 2.0) / case.fx_px
    v = (oy + pixel_centres(cfg.crop_height_px) - cfg.sensor_height_px / 2.0) / case.fx_px
    cos_theta = 1.0 / np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)
    z = t * cos_theta + cfg.near_clip_m
    return {
        "z_true_m": case.z_m,
        "z_min_m": float(z.min()),
        "z_max_m": float(z.max()),
        "max_abs_err_m": float(np.abs(z - case.z_m).max()),
        "raw_aov_centre_m": float(t[t.shape[0] // 2, t.shape[1] // 2]),
    }


# ----------------------------------------------------------------------------------------
# Our renderer
# ----------------------------------------------------------------------------------------


def render_ours(aif: np.ndarray, case: Case) -> np.ndarray:
    """``dfd_depth_ros.synthetic.render.render_defocus`` of an all-in-focus image (H, W) at constant depth z."""
    import torch

    from dfd_depth_ros.synthetic.render import render_defocus

    h, w = aif.shape
    img = torch.as_tensor(aif, dtype=torch.float32).reshape(1, 1, h, w)
    depth = torch.full((1, 1, h, w), case.z_m, dtype=torch.float32)
    scale = torch.tensor([optics.blur_scale_pxm(case.fx_px, case.focal_length_m, case.f_number)])
    focus = torch.tensor([case.focus_distance_m])
    with torch.no_grad():
        out = render_defocus(img, depth, scale, focus)
    return out[0, 0].double().numpy()


# ----------------------------------------------------------------------------------------
# Running the cases
# ----------------------------------------------------------------------------------------


def run_case(case: Case, cfg: RenderConfig, depth_check: bool = True) -> dict:
    """Render one case with Mitsuba and with our renderer and measure both edge profiles."""
    t0 = time.perf_counter()
    aif = render_mitsuba(case, cfg, sensor="perspective", spp=4)  # pixel-aligned edge: every sample agrees
    t1 = time.perf_counter()
    mts = render_mitsuba(case, cfg, sensor="thinlens")
    t2 = time.perf_counter()
    ours = render_ours(aif, case)
    t3 = time.perf_counter()
    aif_profile, mts_profile, ours_profile = aif.mean(axis=0), mts.mean(axis=0), ours.mean(axis=0)
    fit_m, fit_o = fit_edge(mts_profile), fit_edge(ours_profile)
    ratio = disc_esf_10_90_ratio()
    predicted = case.predicted_px
    result = {
        "case": asdict(case),
        "predicted_px": predicted,
        "signed_px": case.signed_px,
        "mitsuba_px": fit_m.diameter_px,
        "ours_px": fit_o.diameter_px,
        "mitsuba_minus_predicted_px": fit_m.diameter_px - predicted,
        "ours_minus_predicted_px": fit_o.diameter_px - predicted,
        "ours_minus_mitsuba_px": fit_o.diameter_px - fit_m.diameter_px,
        "mitsuba_fit": asdict(fit_m),
        "ours_fit": asdict(fit_o),
        # Point-sample model (no pixel box): for reference; the box adds about c^2 + 4/3 in quadrature.
        "mitsuba_px_point_model": fit_edge(mts_profile, pixel_integrated=False).diameter_px,
        "ours_px_point_model": fit_edge(ours_profile, pixel_integrated=False).diameter_px,
        # 10-90 % rise / disc ratio (includes the pixel box, so biased up for small blur).
        "mitsuba_px_10_90": width_10_90_px(mts_profile) / ratio,
        "ours_px_10_90": width_10_90_px(ours_profile) / ratio,
        "edge_nominal_px": cfg.edge_x_px,
        "aif_levels": [float(aif_profile.min()), float(aif_profile.max())],
        "aif_is_step": bool(np.all((np.abs(aif_profile) < 1e-6) | (np.abs(aif_profile - 1.0) < 1e-6))),
        "profiles": {
            "mitsuba": mts_profile.tolist(),
            "ours": ours_profile.tolist(),
            "aif": aif_profile.tolist(),
        },
        "seconds": {"mitsuba_pinhole": t1 - t0, "mitsuba_thinlens": t2 - t1, "ours": t3 - t2},
    }
    if depth_check:
        result["depth_check"] = check_plane_depth(case, cfg)
    return result


def run(cases, cfg: RenderConfig, depth_check: bool = True, log=print) -> dict:
    """Run all cases; returns the report dict (config, cases, timing)."""
    t0 = time.perf_counter()
    results = []
    for case in cases:
        r = run_case(case, cfg, depth_check=depth_check)
        results.append(r)
        if log:
            log(
                f"  {case.name}: predicted {r['predicted_px']:.2f} px, mitsuba {r['mitsuba_px']:.2f} px, "
                f"ours {r['ours_px']:.2f} px"
            )
    return {
        "config": asdict(cfg),
        "fx_refers_to": "full sensor width (sensor_width_px); only the centred crop is rendered",
        "measure": "least-squares fit of the pixel-integrated uniform-disc edge spread function",
        "disc_esf_10_90_ratio": disc_esf_10_90_ratio(),
        "cases": results,
        "seconds_total": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument(
        "--variant",
        default="scalar_rgb",
        help="Mitsuba variant (default scalar_rgb; llvm_* variants need libLLVM >= 19)",
    )
    ap.add_argument("--spp", type=int, default=None, help="samples per pixel (default 256 quick, 1024 full)")
    ap.add_argument("--quick", action="store_true", help="CI mode: 4 cases, 96x16 px crop")
    ap.add_argument("--tol-px", type=float, default=DEFAULT_TOL_PX, help="pass tolerance, px (default 1)")
    ap.add_argument("--no-depth-check", action="store_true", help="skip the aov z-depth geometry check")
    args = ap.parse_args(argv)

    try:
        import mitsuba  # noqa: F401
    except ImportError:
        print("mitsuba is not installed (pip install mitsuba)", file=sys.stderr)
        return 2
    try:
        set_variant(args.variant)
    except ImportError as exc:  # unknown variant, or a JIT backend missing
        print(f"mitsuba variant {args.variant!r} unavailable: {exc}", file=sys.stderr)
        return 2
    cfg = QUICK_CONFIG if args.quick else FULL_CONFIG
    cfg = replace(cfg, variant=args.variant, spp=args.spp or cfg.spp)
    cases = QUICK_CASES if args.quick else FULL_CASES
    print(f"Mitsuba {cfg.variant}, {cfg.spp} spp, {len(cases)} cases, crop {cfg.crop_width_px}x{cfg.crop_height_px}")
    report = run(cases, cfg, depth_check=not args.no_depth_check)
    table = write_report(report, args.out, args.tol_px)
    print(table)
    if not args.no_depth_check:
        worst = max(r["depth_check"]["max_abs_err_m"] for r in report["cases"])
        print(f"aov z-depth check: worst |z - z_true| = {worst:.2e} m")
    print(f"total {report['seconds_total']:.1f} s; wrote {args.out}/crosscheck.{{json,md,png}}")
    failed = [
        r["case"]["name"]
        for r in report["cases"]
        if abs(r["mitsuba_minus_predicted_px"]) > args.tol_px or abs(r["ours_minus_predicted_px"]) > args.tol_px
    ]
    if failed:
        print(f"FAILED (> {args.tol_px:g} px): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
