"""Dense optical flow between frames whose focus differs, and warping maps with it (numpy, OpenCV DIS).

Changing blur biases flow towards the sharper frame; ``flow_gray_u8`` low-passes both frames to a
common blur first, so the blur they differ by is small next to the blur they share. The flow is
computed at half resolution, the resolution the evidence lives at.
"""

from __future__ import annotations

import cv2
import numpy as np


def half_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) uint8 -> (H/2, W/2) float32 gray (cv2.pyrDown): what ``low_pass_u8`` blurs."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.pyrDown(gray.astype(np.float32))


def low_pass_u8(half: np.ndarray, blur_sigma_px: float) -> np.ndarray:
    """``half_gray``'s output low-passed by ``blur_sigma_px`` (full-res px), as uint8 for DIS."""
    if blur_sigma_px / 2 > 0.3:
        half = cv2.GaussianBlur(half, (0, 0), blur_sigma_px / 2)
    return np.clip(half, 0, 255).astype(np.uint8)


def flow_gray_u8(image: np.ndarray, blur_sigma_px: float) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/2, W/2) uint8 gray, low-passed by ``blur_sigma_px`` (full-res px) and halved."""
    return low_pass_u8(half_gray(image), blur_sigma_px)


def blur_equalised_flow(dis, prev_u8: np.ndarray, cur_u8: np.ndarray) -> np.ndarray:
    """Dense flow (H/2, W/2, 2) float32 in half-resolution px, with cur(x) ~ prev(x + flow(x)).

    ``prev_u8`` / ``cur_u8`` come from ``flow_gray_u8`` with the same (the larger) blur, so focus changes
    between the two frames do not pull the flow towards the sharper one. It is computed at half resolution
    (the images are smooth anyway), the resolution the evidence is kept at.
    """
    return dis.calc(cur_u8, prev_u8, None)


def warp(stack: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Resample a (H, W) or (H, W, C) float32 map at x + flow(x) (bilinear, border replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(stack, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


FLOW_PERCENTILES = (10.0, 90.0)  # the typical inverse depths of the last estimate, for the blur to equalise to


class FlowTracker:
    """Flow between consecutive frames of one stream, on blur-equalised half-resolution gray (OpenCV DIS).

        tracker.flow(image_u8, blur_scale_pxm, inv_focus) -> (H/2, W/2, 2) float32 or None on the first frame
        tracker.observe(inv_depth)    # the estimate of that frame: sets the blur expected in the next one

    Both frames are low-passed by a Gaussian of sigma = (the larger blur that the last estimate's typical
    depths, its 10th and 90th inverse-depth percentiles, have in either frame) / 4 + 1 px: a disc of
    diameter c has a standard deviation of c / 4, so the blur the two frames differ by is small next to
    the blur they share. Before any estimate the grid's middle stands in. Images of one stream must keep
    their size; ``reset`` forgets the previous frame (done on every state reset).
    """

    def __init__(self, inv_depth_default: float = 1.0, preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST):
        self._dis = cv2.DISOpticalFlow_create(preset)
        self.inv_depth_default = float(inv_depth_default)
        self.reset()

    @classmethod
    def for_grid(cls, near_m: float, far_m: float) -> FlowTracker:
        """A tracker whose guess before the first estimate is the middle of an inverse-depth grid near..far."""
        return cls(0.5 * (1.0 / near_m + 1.0 / far_m))

    def reset(self) -> None:
        self._prev = None  # (half-resolution gray of the previous frame, its blur scale px m, inverse focus 1/m)
        self._typical = (self.inv_depth_default, self.inv_depth_default)

    def observe(self, inv_depth: np.ndarray) -> None:
        """Record the estimate (any shape, 1/m; non-finite values ignored) of the frame just tracked."""
        finite = inv_depth[np.isfinite(inv_depth)]
        if finite.size:
            lo, hi = np.percentile(finite, FLOW_PERCENTILES)
            self._typical = (float(lo), float(hi))

    def _expected_blur_px(self, blur_scale_pxm: float, inv_focus: float) -> float:
        return blur_scale_pxm * max(abs(self._typical[0] - inv_focus), abs(self._typical[1] - inv_focus))

    def flow(self, image: np.ndarray, blur_scale_pxm: float, inv_focus: float) -> np.ndarray | None:
        """Flow (H/2, W/2, 2) from this frame into the previous one (cur(x) ~ prev(x + flow)); None at the start."""
        half = half_gray(image)  # kept for the next frame: each frame is converted and halved once
        prev, self._prev = self._prev, (half, float(blur_scale_pxm), float(inv_focus))
        if prev is None or prev[0].shape != half.shape:
            return None
        blur = max(self._expected_blur_px(blur_scale_pxm, inv_focus), self._expected_blur_px(prev[1], prev[2]))
        sigma_px = blur / 4.0 + 1.0
        return blur_equalised_flow(self._dis, low_pass_u8(prev[0], sigma_px), low_pass_u8(half, sigma_px))
