"""Seeded defocused-video generator: scene + camera motion + focus schedule + lens -> Sequence.

This module only holds the configuration and the top-level ``generate_sequence``; scenes,
textures, trajectories and focus schedules live in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("fixed", "sweep", "focal_stack", "rack", "af_hunt")
MOTIONS = ("static", "smooth")


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
    min_depth_m, max_depth_m: depth range the scene spans.
    noise: add shot and read noise.
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
    min_depth_m: float = 0.3
    max_depth_m: float = 10.0
    noise: bool = True

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
