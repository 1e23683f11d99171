"""Offline data preparation: render generated clips once, cache them as .npz shards, serve batches.

A clip is T consecutive frames of one generated sequence. Cached arrays per shard:
    images   (N, T, H, W, 3) uint8 sRGB, defocused
    aif      (N, T, H, W, 3) uint8 sRGB, all in focus (same sensor model)
    depth    (N, T, H, W)    float16 z-depth, metres
    lens     (N, T, 2)       float32 [fx * D (px*m), 1 / focus (1/m)]
    schedule (N,)            int     index into dfd_depth_ros.synthetic.SCHEDULES

Splits use disjoint seed ranges. The held-out lens band (f-numbers 2.6-3.4 and focal lengths
18-22 mm) never occurs in training clips, so evaluation also covers unseen lens settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dfd_depth_ros.synthetic import SCHEDULES
from dfd_depth_ros.synthetic.sequences import SequenceConfig

SPLIT_SEED_BASE = {"train": 1_000_000, "val": 8_000_000, "test": 9_000_000, "test_weak": 9_500_000}
HELDOUT_F_NUMBER = (2.6, 3.4)
HELDOUT_FOCAL_MM = (18.0, 22.0)


@dataclass(frozen=True)
class ClipSetConfig:
    """A cached set of clips: count, length, size, and which schedules and motions to draw from."""

    split: str = "train"
    clips: int = 600
    frames: int = 8
    width_px: int = 160
    height_px: int = 128
    render_width_px: int = 0  # > width_px: render this large and keep a random crop (blur statistics of
    render_height_px: int = 0  # the larger image at the cost of the smaller one); 0 = render at width x height
    schedules: tuple[str, ...] = SCHEDULES
    motions: tuple[str, ...] = ("static", "smooth")
    max_blur_px: float = 25.0
    min_blur_px: float = 0.0  # > 0: lenses whose largest blur is below this are rejected (0: the generator's 3 px)
    focal_length_m: float = 0.0  # > 0: every clip uses this focal length (a fixed lens, e.g. the weak-lens set)
    f_number: float = 0.0  # > 0: every clip uses this f-number
    shard_clips: int = 100
    randomise: bool = False  # SequenceConfig.randomise: PSF shape, vignetting, tone curve and noise drawn per clip

    def key(self) -> str:
        sched = "-".join(s[:3] for s in self.schedules)
        crop = f"_from{self.render_width_px}x{self.render_height_px}" if self.render_width_px else ""
        size = f"{self.width_px}x{self.height_px}{crop}"
        lens = (f"_min{self.min_blur_px:g}" if self.min_blur_px else "") + (
            f"_f{self.focal_length_m * 1e3:g}mm-N{self.f_number:g}" if self.focal_length_m or self.f_number else "")
        dr = "_dr" if self.randomise else ""
        return f"{self.split}_{self.clips}x{self.frames}_{size}_{sched}_b{self.max_blur_px:g}{lens}{dr}"


def unit_lens_camera(lens: np.ndarray, height: int, width: int):
    """(K, LensState) of a cached frame's network lens input [fx*D px*m, 1/focus 1/m] as a unit lens: fx = fx*D
    and D = 1 m (focal length and f-number 1), so every blur the optics compute from it is the clip's own."""
    from dfd_depth_ros.frames import intrinsics_matrix
    from dfd_depth_ros.optics import LensState

    scale, inv_f = float(lens[0]), float(lens[1])
    return intrinsics_matrix(scale, scale, (width - 1) / 2, (height - 1) / 2), LensState(1.0 / inv_f, 1.0, 1.0)


def in_heldout_lens_band(f_number: float, focal_length_m: float) -> bool:
    """True if a lens lies in the band reserved for evaluation."""
    return (HELDOUT_F_NUMBER[0] <= f_number <= HELDOUT_F_NUMBER[1]
            or HELDOUT_FOCAL_MM[0] <= focal_length_m * 1e3 <= HELDOUT_FOCAL_MM[1])


def clip_arrays(clip: dict, crop: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
    """render_clip output -> images/aif (T,H,W,3) uint8, depth (T,H,W) float32, lens (T,2) float32 network input.

    crop: optional (top, left, height, width) window; the lens input does not change (blur is in px).
    """
    top, left, h, w = crop or (0, 0, *clip["image"].shape[-2:])
    win = lambda x: x[..., top : top + h, left : left + w]  # noqa: E731
    to_u8 = lambda x: (win(x).permute(0, 2, 3, 1) * 255.0).round().to(torch.uint8).numpy()  # noqa: E731
    lens = torch.stack([clip["blur_scale_pxm"], 1.0 / clip["focus_distance_m"]], 1)
    return {
        "images": to_u8(clip["image"]),
        "aif": to_u8(clip["aif"]),
        "depth": win(clip["depth_m"])[:, 0].numpy().astype(np.float32),
        "lens": lens.numpy().astype(np.float32),
    }


def render_clip_for(cfg: ClipSetConfig, index: int) -> tuple[dict, str]:
    """The index-th clip of a split (deterministic), with all-in-focus frames; train avoids the held-out lens band."""
    from dfd_depth_ros.synthetic.sequences import render_clip

    rng = random.Random(SPLIT_SEED_BASE[cfg.split] + index)
    schedule = cfg.schedules[index % len(cfg.schedules)]
    motion = rng.choice(cfg.motions)
    # The test split only uses f-numbers from the band that training never sees.
    fixed_f_number = rng.uniform(*HELDOUT_F_NUMBER) if cfg.split == "test" else None
    fixed_f_number = cfg.f_number or fixed_f_number
    for attempt in range(50):
        seq_cfg = SequenceConfig(
            width_px=cfg.render_width_px or cfg.width_px, height_px=cfg.render_height_px or cfg.height_px,
            num_frames=cfg.frames, schedule=schedule,
            motion=motion, seed=SPLIT_SEED_BASE[cfg.split] + 1000 * index + attempt, max_blur_px=cfg.max_blur_px,
            f_number=fixed_f_number, focal_length_m=cfg.focal_length_m or None, min_blur_px=cfg.min_blur_px or None,
            randomise=cfg.randomise,
        )
        clip = render_clip(seq_cfg, with_aif=True)
        f_number, focal_m = float(clip["f_number"][0]), float(clip["focal_length_m"][0])
        if cfg.split != "train" or not in_heldout_lens_band(f_number, focal_m):
            return clip, schedule
    raise RuntimeError("could not draw a training lens outside the held-out band")


def build_cache(cfg: ClipSetConfig, root: str | Path = "data/cache", only_shards: set[int] | None = None) -> Path:
    """Render the clip set into root/<key>/shard_XXX.npz (skips shards already there); returns the folder."""
    out = Path(root) / cfg.key()
    out.mkdir(parents=True, exist_ok=True)
    n_shards = -(-cfg.clips // cfg.shard_clips)
    for s in range(n_shards):
        path = out / f"shard_{s:03d}.npz"
        if path.exists() or (only_shards is not None and s not in only_shards):
            continue
        idx = range(s * cfg.shard_clips, min(cfg.clips, (s + 1) * cfg.shard_clips))
        parts = {"images": [], "aif": [], "depth": [], "lens": [], "schedule": []}
        for i in tqdm(idx, desc=f"rendering {cfg.split} shard {s + 1}/{n_shards}", unit="clip"):
            clip, schedule = render_clip_for(cfg, i)
            crop = None
            if cfg.render_width_px:
                rng = np.random.default_rng(SPLIT_SEED_BASE[cfg.split] + i)
                top = int(rng.integers(0, cfg.render_height_px - cfg.height_px + 1))
                left = int(rng.integers(0, cfg.render_width_px - cfg.width_px + 1))
                crop = (top, left, cfg.height_px, cfg.width_px)
            arr = clip_arrays(clip, crop)
            for k in ("images", "aif", "lens"):
                parts[k].append(arr[k])
            parts["depth"].append(arr["depth"].astype(np.float16))
            parts["schedule"].append(SCHEDULES.index(schedule))
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **{k: np.stack(v) for k, v in parts.items()})
        tmp.rename(path)
    return out


class ClipCache:
    """All shards of a cached clip set in memory; ``batch`` returns float tensors ready for the network."""

    def __init__(self, folder: str | Path):
        shards = sorted(Path(folder).glob("shard_*.npz"))
        if not shards:
            raise FileNotFoundError(f"no shards in {folder}; run the cache build first")
        data = [np.load(p) for p in shards]
        self.images = np.concatenate([d["images"] for d in data])
        self.aif = np.concatenate([d["aif"] for d in data])
        self.depth = np.concatenate([d["depth"] for d in data])
        self.lens = np.concatenate([d["lens"] for d in data])
        self.schedule = np.concatenate([d["schedule"] for d in data])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx, frames: int | None = None, flip: np.ndarray | None = None,
              all_in_focus: bool = False) -> dict[str, torch.Tensor]:
        """Clips idx -> image (B,T,3,H,W) [0,1], depth (B,T,1,H,W) m, lens (B,T,2); optional horizontal flips.

        ``all_in_focus`` serves the all-in-focus frames instead of the defocused ones (monocular baseline).
        """
        t = frames or self.images.shape[1]
        img = (self.aif if all_in_focus else self.images)[idx, :t].astype(np.float32) / 255.0
        dep = self.depth[idx, :t].astype(np.float32)
        if flip is not None:
            img[flip] = img[flip][..., ::-1, :]
            dep[flip] = dep[flip][..., ::-1]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img)).permute(0, 1, 4, 2, 3),
            "depth": torch.from_numpy(np.ascontiguousarray(dep))[:, :, None],
            "lens": torch.from_numpy(self.lens[idx, :t]),
        }
