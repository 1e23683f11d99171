"""Pictures people would rather look at than read: colour maps, preview strips and videos.

numpy + OpenCV only at import; matplotlib is imported inside the functions that draw figures.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dfd_depth_ros.frames import Sequence

INVALID_RGB = (40, 40, 40)


def colorize(values: np.ndarray, vmin: float, vmax: float, cmap: int = cv2.COLORMAP_TURBO,
             log: bool = False, reverse: bool = False) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 RGB through an OpenCV colour map; NaN/inf -> dark grey."""
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v)
    if log:
        v = np.log(np.clip(v, 1e-9, None))
        vmin, vmax = np.log(max(vmin, 1e-9)), np.log(max(vmax, 1e-9))
    t = np.clip((np.where(valid, v, vmin) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    if reverse:
        t = 1.0 - t
    bgr = cv2.applyColorMap((t * 255).astype(np.uint8), cmap)
    rgb = bgr[..., ::-1].copy()
    rgb[~valid] = INVALID_RGB
    return rgb


def colorize_depth(depth_m: np.ndarray, min_m: float = 0.3, max_m: float = 10.0) -> np.ndarray:
    """Metric depth -> RGB on a log scale, near = red, far = blue (turbo); invalid = grey."""
    return colorize(depth_m, min_m, max_m, log=True, reverse=True)


def colorize_blur(blur_px: np.ndarray, max_px: float = 25.0) -> np.ndarray:
    """Blur-circle diameter in px -> RGB (magma: black = sharp, bright = strongly blurred)."""
    return colorize(blur_px, 0.0, max_px, cmap=cv2.COLORMAP_MAGMA)


def _pick(n_total: int, n_cols: int) -> list[int]:
    return sorted(set(np.linspace(0, n_total - 1, min(n_cols, n_total)).round().astype(int).tolist()))


def sequence_preview_png(seq: Sequence, path: str | Path, columns: int = 8,
                         min_depth_m: float = 0.3, max_depth_m: float = 10.0, max_blur_px: float = 25.0) -> Path:
    """Write a labelled strip: RGB, ground-truth depth and blur diameter across frames, plus the focus schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    idx = _pick(len(seq), columns)
    fig = plt.figure(figsize=(2.0 * len(idx) + 1.5, 7.6), constrained_layout=True)
    grid = fig.add_gridspec(4, len(idx) + 1, width_ratios=[1] * len(idx) + [0.08], height_ratios=[1, 1, 1, 0.9])
    rows = ("RGB", "ground-truth depth", "blur diameter")
    for col, i in enumerate(idx):
        f = seq[i]
        blur = f.blur_diameter_px()
        panels = (f.image, colorize_depth(f.depth_m, min_depth_m, max_depth_m), colorize_blur(blur, max_blur_px))
        for row, img in enumerate(panels):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(rows[row])
            if row == 0:
                ax.set_title(f"#{i}  focus {f.lens.focus_distance_m:.2f} m", fontsize=9)
    turbo_r = plt.get_cmap("turbo_r")
    fig.colorbar(plt.cm.ScalarMappable(LogNorm(min_depth_m, max_depth_m), turbo_r), cax=fig.add_subplot(grid[1, -1]),
                 label="z [m]")
    fig.colorbar(plt.cm.ScalarMappable(Normalize(0, max_blur_px), "magma"), cax=fig.add_subplot(grid[2, -1]),
                 label="c [px]")
    ax = fig.add_subplot(grid[3, :-1])
    t = np.arange(len(seq))
    ax.plot(t, [f.lens.focus_distance_m for f in seq], "k.-", label="focus distance")
    depth_all = np.stack([f.depth_m for f in seq])
    ax.fill_between(t, np.nanpercentile(depth_all, 5, axis=(1, 2)), np.nanpercentile(depth_all, 95, axis=(1, 2)),
                    color="tab:blue", alpha=0.2, label="scene depth, 5-95 %")
    ax.set_yscale("log")
    ax.set_xlabel("frame")
    ax.set_ylabel("metres")
    ax.legend(loc="upper right", fontsize=8)
    lens = seq[0].lens
    fig.suptitle(f"{seq.name}: {seq[0].width}x{seq[0].height}, f={lens.focal_length_m * 1e3:.1f} mm, "
                 f"f/{lens.f_number:.1f}, fx={seq[0].fx_px:.0f} px")
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def sequence_preview_mp4(seq: Sequence, path: str | Path, fps: float | None = None,
                         min_depth_m: float = 0.3, max_depth_m: float = 10.0, max_blur_px: float = 25.0) -> Path:
    """Write an MP4 with RGB | depth | blur side by side, one video frame per sequence frame."""
    path = Path(path)
    h, w = seq[0].height, seq[0].width
    fps = fps or float(seq.meta.get("fps", 15.0))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (3 * w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MP4 to {path}")
    try:
        for f in seq:
            row = np.concatenate([f.image, colorize_depth(f.depth_m, min_depth_m, max_depth_m),
                                  colorize_blur(f.blur_diameter_px(), max_blur_px)], axis=1)
            writer.write(np.ascontiguousarray(row[..., ::-1]))
    finally:
        writer.release()
    return path
