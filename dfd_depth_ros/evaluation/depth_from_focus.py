"""Classical depth from focus: the non-learned baseline.

For the last ``window`` frames it keeps a per-pixel focus measure (local energy of the
Laplacian, normalised by local brightness) and the frame's focus in dioptres. A pixel's depth
is the focus distance at which its focus measure peaks, refined by a Gaussian (log-parabola)
fit through the peak and its two neighbours in dioptres. It needs the focus to move: with
fewer than three distinct focus settings in the window it returns NaN (no estimate), and
the pixels where the peak is flat (no texture) are unreliable by nature.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from dfd_depth_ros.optics import LensState


def focus_measure(image: np.ndarray, window_px: int = 9) -> np.ndarray:
    """(H, W, 3) uint8 or (H, W) -> (H, W) float32 local Laplacian energy / local brightness^2."""
    gray = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    gray /= 255.0
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    energy = cv2.boxFilter(lap * lap, -1, (window_px, window_px))
    mean = cv2.boxFilter(gray, -1, (window_px, window_px))
    return energy / (mean * mean + 1e-3)


class DepthFromFocus:
    """Sliding-window depth from focus. ``process`` returns (H, W) float32 depth in metres (NaN = no estimate)."""

    def __init__(self, window: int = 12, window_px: int = 9, min_depth_m: float = 0.1, max_depth_m: float = 20.0):
        self.window = window
        self.window_px = window_px
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=window)
        self._shape = None

    def reset(self) -> None:
        self._frames.clear()

    def process(self, image: np.ndarray, K: np.ndarray, lens: LensState, stamp_ns: int = 0,
                frame_id: str = "") -> np.ndarray:
        if image.shape[:2] != self._shape:
            self.reset()
            self._shape = image.shape[:2]
        self._frames.append((lens.focus_diopters, focus_measure(image, self.window_px)))
        return self._estimate()

    def _estimate(self) -> np.ndarray:
        # Group frames by focus setting (a focal stack revisits the same ones); average their measures.
        groups: dict[float, list[np.ndarray]] = {}
        for diopters, fm in self._frames:
            groups.setdefault(round(diopters, 3), []).append(fm)
        x = np.array(sorted(groups))
        if x.size < 3:
            return np.full(self._shape, np.nan, np.float32)
        y = np.stack([np.mean(groups[k], axis=0) for k in x])  # (M, H, W)
        k = np.clip(np.argmax(y, axis=0), 1, x.size - 2)
        ly = np.log(np.take_along_axis(y, np.stack([k - 1, k, k + 1]), axis=0) + 1e-9)
        x0, x1, x2 = x[k - 1], x[k], x[k + 1]
        # Vertex of the parabola through (x0, ly0), (x1, ly1), (x2, ly2); falls back to the peak sample.
        d01, d12 = (ly[1] - ly[0]) / (x1 - x0), (ly[2] - ly[1]) / (x2 - x1)
        curv = (d12 - d01) / (x2 - x0)
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = 0.5 * (x0 + x1) - d01 / (2 * curv)
            vertex = np.where(curv < 0, vertex, x1)
        inv_z = np.clip(np.nan_to_num(vertex, nan=0.0), x0, x2)
        peak = np.argmax(y, axis=0)
        inv_z = np.where((peak == 0) | (peak == x.size - 1), x[peak], inv_z)
        inv_z = np.clip(inv_z, 1.0 / self.max_depth_m, 1.0 / self.min_depth_m)
        return (1.0 / inv_z).astype(np.float32)
