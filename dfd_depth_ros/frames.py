"""The frame structure shared by the generator, bag I/O, the node core and evaluation.

A ``Frame`` is one camera frame with everything the estimator needs (image, intrinsics, lens
state, stamp) and what evaluation needs (ground-truth z-depth, pose). No ROS imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dfd_depth_ros.optics import LensState

DEFAULT_FRAME_ID = "camera_optical_frame"


@dataclass
class Frame:
    """One frame.

    image: (H, W, 3) uint8 RGB.
    K: (3, 3) float64 pinhole intrinsics (fx, fy, cx, cy in px).
    lens: lens state at this frame's stamp.
    stamp_ns: capture time, integer nanoseconds.
    depth_m: (H, W) float32 ground-truth z-depth along the optical axis in metres, NaN where
        unknown; None when the frame has no ground truth.
    pose: (4, 4) float64 T_world_camera (camera-to-world, optical frame: x right, y down,
        z forward); None when unknown.
    frame_id: the optical frame's TF name.
    """

    image: np.ndarray
    K: np.ndarray
    lens: LensState
    stamp_ns: int
    depth_m: np.ndarray | None = None
    pose: np.ndarray | None = None
    frame_id: str = DEFAULT_FRAME_ID

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def fx_px(self) -> float:
        return float(self.K[0, 0])

    def blur_diameter_px(self) -> np.ndarray:
        """(H, W) blur-circle diameter of the ground-truth depth, px (NaN where depth is unknown)."""
        if self.depth_m is None:
            raise ValueError("frame has no ground-truth depth")
        return self.lens.blur_diameter_px(self.depth_m.astype(np.float64), self.fx_px).astype(np.float32)


@dataclass
class Sequence:
    """An ordered list of frames (stamps strictly increasing) plus free-form metadata."""

    frames: list[Frame]
    name: str = "sequence"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self):
        return iter(self.frames)

    def __getitem__(self, i):
        return self.frames[i]


def intrinsics_matrix(fx_px: float, fy_px: float, cx_px: float, cy_px: float) -> np.ndarray:
    """3x3 pinhole intrinsics matrix K."""
    return np.array([[fx_px, 0.0, cx_px], [0.0, fy_px, cy_px], [0.0, 0.0, 1.0]], dtype=np.float64)
