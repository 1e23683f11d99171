"""The benchmark set: one ``SequenceSpec`` per evaluation bag (``SEQUENCES``), all seeded.

Each spec fixes the scene (``benchmark.scenes.SceneSpec``), the camera motion and the focus
schedule (``benchmark.camera``), the lens, the image size, the sensor (normal or low light),
the bag's image encoding and storage. The lens is given either as ``blur_scale_pxm`` (fx * D,
px m; the weak-lens sequences: a Raspberry Pi Camera Module 3 lens, f = 4.74 mm f/1.8, whose
fx * D at 640x480 is about 1.3 px m) or as ``target_max_blur_px``: then fx * D is chosen from
the rendered ground truth so that the 99.9th percentile of c_px = fx D |1/focus - 1/z| over
all frames and pixels is that target (8-25 px), and the focal length follows from the f-number.

Names follow ``<schedule>_<motion>_<scene>[_<what is special>]``; "partial" marks sequences
whose focus range does not cover the scene's depth range.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace

from benchmark import camera
from benchmark.scenes import SceneSpec

__all__ = ["SequenceSpec", "SEQUENCES", "DEV_SEQUENCES", "SETS", "by_name", "tiny"]

ENCODINGS = ("rgb8", "bgr8", "mono8")
STORAGES = ("mcap", "sqlite3")


@dataclass(frozen=True)
class SequenceSpec:
    """One evaluation sequence (see the module docstring)."""

    name: str
    seed: int
    scene: SceneSpec
    schedule: str
    schedule_params: dict
    motion: str
    motion_params: dict
    frames: int
    width_px: int = 288
    height_px: int = 216
    fov_x_deg: float | None = 55.0  # None: from blur_scale_pxm and the lens (weak regime)
    f_number: float = 2.0
    focal_length_m: float | None = None  # given (weak regime) or derived from the blur target
    blur_scale_pxm: float | None = None
    target_max_blur_px: float | None = None
    lens_regime: str = "normal"
    low_light: bool = False
    encoding: str = "rgb8"
    storage: str = "mcap"
    fps: float = 30.0
    notes: str = ""
    extra_meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.schedule not in camera.SCHEDULES or self.motion not in camera.MOTIONS:
            raise ValueError(f"{self.name}: unknown schedule {self.schedule!r} or motion {self.motion!r}")
        if self.encoding not in ENCODINGS or self.storage not in STORAGES:
            raise ValueError(f"{self.name}: unknown encoding {self.encoding!r} or storage {self.storage!r}")
        if (self.blur_scale_pxm is None) == (self.target_max_blur_px is None):
            raise ValueError(f"{self.name}: give exactly one of blur_scale_pxm, target_max_blur_px")

    @property
    def fov_deg(self) -> float:
        """Horizontal fov (deg): given, or the one where fx = blur_scale / D for the given lens."""
        if self.fov_x_deg is not None:
            return float(self.fov_x_deg)
        fx = self.blur_scale_pxm * self.f_number / self.focal_length_m
        return camera.fov_from_fx_deg(fx, self.width_px)

    def as_dict(self) -> dict:
        return asdict(self)

    def spec_hash(self) -> str:
        """sha256 (16 hex) of every parameter: a changed spec means a different bag."""
        blob = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tiny(spec: SequenceSpec, width_px: int = 64, height_px: int = 48, frames: int = 3) -> SequenceSpec:
    """A small, fast version of ``spec``: same scene and fov, blur (fx * D or its target) scaled with the width."""
    scale = width_px / spec.width_px
    return replace(
        spec, width_px=width_px, height_px=height_px, frames=min(frames, spec.frames), fov_x_deg=spec.fov_deg,
        blur_scale_pxm=None if spec.blur_scale_pxm is None else spec.blur_scale_pxm * scale,
        target_max_blur_px=None if spec.target_max_blur_px is None else spec.target_max_blur_px * scale,
    )


_WOBBLE = {"wobble_m": 0.002, "wobble_deg": 0.15}
_CM3 = {"f_number": camera.RPI_CM3_F_NUMBER, "focal_length_m": camera.RPI_CM3_FOCAL_LENGTH_M, "fov_x_deg": None,
        "lens_regime": "weak"}

SEQUENCES: tuple[SequenceSpec, ...] = (
    SequenceSpec(
        "fixed_static_tabletop", 101,
        SceneSpec(101, "tabletop", 0.32, 2.0, camera_height_m=0.2, boxes=6, poles=2, wires=1, slanted=1, panels=1,
                  spheres=2),
        "fixed", {"focus_m": 0.55}, "static", {"pitch_down_deg": 10.0}, frames=24,
        target_max_blur_px=14.0, f_number=2.0, encoding="rgb8", storage="mcap"),
    SequenceSpec(
        "fixed_slide_room", 102, SceneSpec(102, "room", 0.7, 6.0, camera_height_m=1.1, boxes=6, poles=2, wires=2),
        "fixed", {"focus_m": 1.5}, "slide", {"travel_m": 0.4, **_WOBBLE, "seed": 102}, frames=30,
        width_px=320, height_px=240, fov_x_deg=60.0, target_max_blur_px=10.0, f_number=1.4,
        encoding="bgr8", storage="sqlite3"),
    SequenceSpec(
        "sweep_static_poles", 103, SceneSpec(103, "room", 0.5, 5.0, camera_height_m=1.0, boxes=2, poles=7, wires=4),
        "sweep", {"near_m": 0.5, "far_m": 4.5, "period_frames": 9.7}, "static", {}, frames=32,
        fov_x_deg=50.0, target_max_blur_px=18.0, f_number=1.8, encoding="mono8", storage="mcap"),
    SequenceSpec(
        "sweep_pan_room_partial", 104, SceneSpec(104, "room", 0.6, 7.0, camera_height_m=1.3, boxes=7, slanted=2),
        "sweep", {"near_m": 0.9, "far_m": 1.8, "period_frames": 13.3, "phase_rad": 1.0}, "pan",
        {"yaw_deg": 20.0, **_WOBBLE, "seed": 104}, frames=36,
        fov_x_deg=58.0, target_max_blur_px=12.0, f_number=2.0, encoding="rgb8", storage="sqlite3",
        notes="the sweep covers 0.9-1.8 m of a 0.6-7 m scene"),
    SequenceSpec(
        "stack_static_slanted", 105,
        SceneSpec(105, "room", 0.4, 3.5, camera_height_m=0.8, boxes=3, slanted=4, panels=0),
        "focal_stack", {"stack_m": [0.5, 1.0, 2.5]}, "static", {"pitch_down_deg": 5.0}, frames=30,
        width_px=256, height_px=192, fov_x_deg=52.0, target_max_blur_px=16.0, f_number=1.4,
        encoding="bgr8", storage="mcap"),
    SequenceSpec(
        "stack_dolly_corridor_partial", 106,
        SceneSpec(106, "corridor", 1.8, 9.0, camera_height_m=1.2, boxes=5, poles=3, wires=1, slanted=1),
        "focal_stack", {"stack_m": [1.2, 1.8, 2.6]}, "dolly", {"travel_m": 1.0, **_WOBBLE, "seed": 106}, frames=36,
        fov_x_deg=62.0, target_max_blur_px=12.0, f_number=2.0, encoding="rgb8", storage="mcap",
        notes="the stack spans 1.2-2.6 m; the corridor reaches 9 m"),
    SequenceSpec(
        "rack_static_occlusion", 107, SceneSpec(107, "room", 0.45, 4.0, camera_height_m=0.9, boxes=10, poles=1),
        "rack", {"from_m": 0.45, "to_m": 3.0, "start_frame": 8, "pull_frames": 10}, "static", {}, frames=30,
        fov_x_deg=55.0, target_max_blur_px=20.0, f_number=1.4, encoding="mono8", storage="sqlite3"),
    SequenceSpec(
        "rack_arc_tabletop", 108,
        SceneSpec(108, "tabletop", 0.35, 1.8, camera_height_m=0.25, boxes=6, poles=2, wires=1, spheres=2),
        "rack", {"from_m": 1.2, "to_m": 0.38, "start_frame": 10, "pull_frames": 12}, "arc",
        {"angle_deg": 25.0, "pivot_m": 0.8, "pitch_down_deg": 12.0}, frames=32,
        width_px=320, height_px=240, fov_x_deg=55.0, target_max_blur_px=22.0, f_number=2.0,
        encoding="rgb8", storage="mcap"),
    SequenceSpec(
        "afhunt_slide_outdoor_sky", 109,
        SceneSpec(109, "outdoor", 1.2, 10.0, camera_height_m=1.2, boxes=6, poles=4, wires=2, slanted=1, panels=1),
        "af_hunt", {"start_m": 0.8, "target_m": 2.5, "retarget_frame": 20, "target2_m": 1.4}, "slide",
        {"travel_m": 0.5, **_WOBBLE, "seed": 109}, frames=34,
        width_px=320, height_px=240, fov_x_deg=60.0, target_max_blur_px=12.0, f_number=2.0,
        encoding="rgb8", storage="mcap", notes="sky (no geometry): NaN ground truth"),
    SequenceSpec(
        "afhunt_static_panels", 110, SceneSpec(110, "room", 0.6, 5.0, camera_height_m=1.0, boxes=2, panels=5),
        "af_hunt", {"start_m": 4.0, "target_m": 0.8}, "static", {}, frames=28,
        fov_x_deg=55.0, target_max_blur_px=15.0, f_number=2.0, encoding="bgr8", storage="sqlite3",
        notes="low-texture panels"),
    SequenceSpec(
        "sweep_arc_room_weak", 111, SceneSpec(111, "room", 0.4, 6.0, camera_height_m=1.0, boxes=6, poles=2),
        "sweep", {"near_m": 0.3, "far_m": 3.0, "period_frames": 11.6}, "arc",
        {"angle_deg": 15.0, "pivot_m": 1.5, **_WOBBLE, "seed": 111}, frames=30,
        width_px=320, height_px=240, blur_scale_pxm=1.3, **_CM3, encoding="rgb8", storage="mcap",
        notes="Raspberry Pi Camera Module 3 lens, fx*D as at 640x480"),
    SequenceSpec(
        "afhunt_pan_tabletop_weak", 112,
        SceneSpec(112, "tabletop", 0.35, 3.0, camera_height_m=0.3, boxes=6, poles=2, wires=1),
        "af_hunt", {"start_m": 1.5, "target_m": 0.45}, "pan", {"yaw_deg": 15.0, "pitch_down_deg": 8.0},
        frames=30, blur_scale_pxm=1.0, **_CM3, encoding="mono8", storage="sqlite3",
        notes="Raspberry Pi Camera Module 3 lens, weak defocus"),
    SequenceSpec(
        "stack_slide_room_lowlight", 113, SceneSpec(113, "room", 0.5, 5.0, camera_height_m=1.0, boxes=6, poles=2),
        "focal_stack", {"stack_m": [0.6, 1.2, 3.0], "offset": 1}, "slide", {"travel_m": 0.3, "seed": 113},
        frames=30, fov_x_deg=55.0, target_max_blur_px=14.0, f_number=1.4, low_light=True,
        encoding="rgb8", storage="sqlite3", notes="low light: 1/24 of the light, 16x gain"),
    SequenceSpec(
        "sweep_dolly_wires_partial", 114,
        SceneSpec(114, "room", 0.6, 8.0, camera_height_m=1.4, boxes=3, poles=3, wires=6, slanted=1),
        "sweep", {"near_m": 2.0, "far_m": 6.0, "period_frames": 7.4}, "dolly", {"travel_m": -0.6, "seed": 114},
        frames=40, width_px=256, height_px=192, fov_x_deg=50.0, target_max_blur_px=10.0, f_number=2.8,
        encoding="bgr8", storage="mcap", notes="the sweep covers 2-6 m; wires and near boxes are nearer"),
)


DEV_SEED_OFFSET = 1000


def _reseeded(spec: SequenceSpec) -> SequenceSpec:
    """``spec`` with new seeds (scene content, textures, camera wobble), named dev_<name>."""
    motion = dict(spec.motion_params)
    if "seed" in motion:
        motion["seed"] += DEV_SEED_OFFSET
    return replace(spec, name=f"dev_{spec.name}", seed=spec.seed + DEV_SEED_OFFSET, motion_params=motion,
                   scene=replace(spec.scene, seed=spec.scene.seed + DEV_SEED_OFFSET))


# The model-selection ("dev") set: every sequence of SEQUENCES with an 8-25 px lens, re-seeded (new scene content,
# textures and camera wobble; the same layout, schedule, lens rule, motion kind, size, encoding and storage).
# Choose between trained models on it, so that SEQUENCES stays a blind test; nothing trains on either.
DEV_SEQUENCES: tuple[SequenceSpec, ...] = tuple(_reseeded(s) for s in SEQUENCES if s.lens_regime != "weak")
SETS = {"test": SEQUENCES, "dev": DEV_SEQUENCES}


def by_name(name: str) -> SequenceSpec:
    """The spec called ``name`` in either set; KeyError listing the known names otherwise."""
    for spec in (*SEQUENCES, *DEV_SEQUENCES):
        if spec.name == name:
            return spec
    raise KeyError(f"unknown sequence {name!r}; known: {', '.join(s.name for s in (*SEQUENCES, *DEV_SEQUENCES))}")


def check_set() -> None:
    """Assert the set covers what the benchmark promises (names unique, every schedule, ...)."""
    names = [s.name for s in SEQUENCES]
    assert len(set(names)) == len(names) >= 12
    assert {s.schedule for s in SEQUENCES} == set(camera.SCHEDULES)
    assert sum(s.motion != "static" for s in SEQUENCES) * 2 >= len(SEQUENCES)
    assert all(24 <= s.frames <= 40 and 256 <= s.width_px <= 320 for s in SEQUENCES)
    assert sum(s.lens_regime == "weak" for s in SEQUENCES) >= 2 and any(s.low_light for s in SEQUENCES)
    assert {s.encoding for s in SEQUENCES} == set(ENCODINGS) and {s.storage for s in SEQUENCES} == set(STORAGES)
    for s in SEQUENCES:
        if s.schedule == "sweep":
            p = s.schedule_params["period_frames"]
            assert not math.isclose(p, round(p)), s.name
