"""Texture bank for the scene generator: bundled scikit-image photos + procedural patterns, with mipmaps.

Every texture is a square sRGB image in the files / generators, converted once to linear light and
stored with a box-filtered mip pyramid (built in linear light). Sampling is trilinear (bilinear
inside the two mip levels around the pixel footprint) with *mirrored* repetition, so photos that
are not tileable show no seams. The bank is built once per process (``texture_bank``).

Low-texture content is deliberate: a flat texture (``FLAT_ID``) and smooth, low-contrast patterns
stand for painted walls and other regions without a defocus cue.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dfd_depth_ros.synthetic.render import srgb_to_linear

__all__ = [
    "TextureBank", "texture_bank", "sample_textures", "texture_contrast", "FLAT_ID", "TEXTURE_SIZE_PX", "SKIMAGE_FILES",
]

TEXTURE_SIZE_PX = 256
FLAT_ID = 0
# Files shipped inside the scikit-image wheel (read from disk; never triggers a pooch download).
SKIMAGE_FILES = (
    "brick.png", "grass.png", "gravel.png", "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg",
    "camera.png", "moon.png", "coins.png", "text.png", "page.png", "motorcycle_left.png", "color.png",
)  # fmt: skip
_PROCEDURAL_SEED = 20240611


@dataclass(frozen=True)
class TextureBank:
    """All textures and their mip levels in one atlas, for ``grid_sample``-based trilinear sampling.

    atlas: (1, 3, H_a, W_a) float32 linear RGB; every level of every texture is a tile with a one-texel
        border that replicates its edge, so bilinear sampling inside a tile equals mirrored repetition.
    tile_origin: (N, L, 2) float32 (x, y) atlas position of each tile's first interior texel.
    names: texture names, index = texture id.
    size_px: level-0 side length S (a power of two); level l is S / 2^l.
    low_texture: (N,) bool, True for flat / low-contrast textures.
    """

    atlas: torch.Tensor
    tile_origin: torch.Tensor
    names: tuple[str, ...]
    size_px: int
    low_texture: torch.Tensor

    @property
    def num_textures(self) -> int:
        return len(self.names)

    @property
    def num_levels(self) -> int:
        return int(self.tile_origin.shape[1])

    def level0(self) -> torch.Tensor:
        """(N, 3, S, S) level-0 textures, linear RGB."""
        s, org = self.size_px, self.tile_origin[:, 0].long()
        return torch.stack([self.atlas[0, :, y : y + s, x : x + s] for x, y in org.tolist()])


# ---------------------------------------------------------------- procedural patterns (sRGB, (S, S) in [0, 1])


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) smooth periodic value noise in [0, 1] with ``cells`` lattice cells per side."""
    lattice = torch.from_numpy(rng.random((1, 1, cells, cells)).astype(np.float32))
    lattice = torch.cat([lattice, lattice[..., :1, :]], dim=2)
    lattice = torch.cat([lattice, lattice[..., :1]], dim=3)
    up = F.interpolate(lattice, size=(size + 1, size + 1), mode="bicubic", align_corners=True)
    return up[0, 0, :size, :size].clamp(0, 1).numpy()


def _fbm(rng: np.random.Generator, size: int, base_cells: int = 4, octaves: int = 5, gain: float = 0.5) -> np.ndarray:
    """(size, size) multi-octave value noise (fractal Brownian motion), normalised to [0, 1]."""
    total = np.zeros((size, size), np.float32)
    for o in range(octaves):
        cells = min(base_cells * 2**o, size)
        total += gain**o * _value_noise(rng, size, cells)
    return (total - total.min()) / max(float(total.max() - total.min()), 1e-6)


def _two_colour(pattern: np.ndarray, rng: np.random.Generator, contrast: float = 1.0) -> np.ndarray:
    """Map a (S, S) pattern in [0, 1] to (S, S, 3) between a dark and a bright random sRGB colour."""
    dark, bright = rng.uniform(0.05, 0.4, 3), rng.uniform(0.55, 0.95, 3)
    c0, c1 = (dark, bright) if rng.random() < 0.5 else (bright, dark)
    c1 = c0 + contrast * (c1 - c0)
    return (c0 + (c1 - c0) * pattern[..., None]).astype(np.float32)


def _procedural(size: int) -> dict[str, tuple[np.ndarray, bool]]:
    """Named procedural textures: name -> ((S, S, 3) sRGB in [0, 1], is_low_texture)."""
    rng = np.random.default_rng(_PROCEDURAL_SEED)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    fbm = _fbm(rng, size)
    turb = _fbm(rng, size, base_cells=2, octaves=4)
    checker = ((np.floor(x * 8) + np.floor(y * 8)) % 2).astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 12 * x)
    hard_stripes = (np.sin(2 * np.pi * 6 * (x + 0.3 * y)) > 0).astype(np.float32)
    marble = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + 2.5 * turb))
    r = np.hypot(x - 0.5, y - 0.55)
    wood = (0.5 + 0.5 * np.sin(2 * np.pi * (14 * r + 1.5 * turb))) ** 0.7
    speckle = _fbm(rng, size, base_cells=32, octaves=3)
    return {
        "flat": (np.ones((size, size, 3), np.float32), True),
        "plaster": (_two_colour(0.5 + 0.06 * (fbm - 0.5), rng, 0.3), True),
        "gradient": (_two_colour(0.5 * x + 0.5 * _value_noise(rng, size, 2), rng, 0.25), True),
        "fbm": (_two_colour(fbm, rng), False),
        "fbm_fine": (_two_colour(_fbm(rng, size, base_cells=16, octaves=4), rng), False),
        "checker": (_two_colour(checker, rng), False),
        "stripes": (_two_colour(stripes, rng), False),
        "hard_stripes": (_two_colour(hard_stripes, rng), False),
        "marble": (_two_colour(marble, rng), False),
        "wood": (_two_colour(wood, rng), False),
        "speckle": (_two_colour(speckle, rng), False),
    }


# ---------------------------------------------------------------- bundled photos


def _square(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W[, C]) uint8 image -> centre square crop area-resized to (size, size, 3) sRGB float in [0, 1]."""
    img = img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = torch.from_numpy(np.ascontiguousarray(img[y0 : y0 + side, x0 : x0 + side])).permute(2, 0, 1).float() / 255
    out = (
        F.interpolate(crop[None], size=(size, size), mode="area")
        if side >= size
        else F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)
    )
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _skimage_photos(size: int) -> dict[str, tuple[np.ndarray, bool]]:
    """Named photos bundled with scikit-image (missing files are skipped): name -> ((S, S, 3) sRGB, False).

    Empty when scikit-image is not installed (a ROS install without python3-skimage): the bank then
    holds the procedural textures only, so seeded scenes draw other textures than with it.
    """
    try:
        import skimage.data
        import skimage.io
    except ImportError:
        return {}

    data_dir = os.path.dirname(skimage.data.__file__)
    out = {}
    for fname in SKIMAGE_FILES:
        path = os.path.join(data_dir, fname)
        if os.path.exists(path):
            out[fname.rsplit(".", 1)[0]] = (_square(skimage.io.imread(path), size), False)
    return out


# ---------------------------------------------------------------- bank


def _mip_levels(tex_linear: torch.Tensor, min_size_px: int = 4) -> list[torch.Tensor]:
    """(N, 3, S, S) linear textures -> list of (N, 3, S/2^l, S/2^l) box-filtered levels down to min_size_px."""
    levels = [tex_linear]
    while levels[-1].shape[-1] > min_size_px:
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels


def _atlas(levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack (N, 3, S_l, S_l) levels into one (1, 3, H_a, W_a) atlas of edge-padded tiles -> atlas, (N, L, 2) origins."""
    n = levels[0].shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    width = cols * (levels[0].shape[-1] + 2)
    height = sum(rows * (lv.shape[-1] + 2) for lv in levels)
    atlas = torch.zeros(1, 3, height, width)
    origin = torch.zeros(n, len(levels), 2)
    y_band = 0
    for l, lv in enumerate(levels):
        tile = lv.shape[-1] + 2
        padded = F.pad(lv, (1, 1, 1, 1), mode="replicate")
        for i in range(n):
            x0, y0 = (i % cols) * tile, y_band + (i // cols) * tile
            atlas[0, :, y0 : y0 + tile, x0 : x0 + tile] = padded[i]
            origin[i, l] = torch.tensor([x0 + 1, y0 + 1])
        y_band += rows * tile
    return atlas, origin


@functools.lru_cache(maxsize=2)
def texture_bank(size_px: int = TEXTURE_SIZE_PX) -> TextureBank:
    """Build (once per process and size) the bank of procedural + bundled textures in linear light."""
    if size_px & (size_px - 1) or size_px < 8:
        raise ValueError(f"texture size must be a power of two >= 8, got {size_px}")
    named = _procedural(size_px)
    named.update(_skimage_photos(size_px))
    names = tuple(named)
    srgb = torch.from_numpy(np.stack([named[n][0] for n in names])).permute(0, 3, 1, 2).contiguous()
    atlas, origin = _atlas(_mip_levels(srgb_to_linear(srgb.float())))
    low = torch.tensor([named[n][1] for n in names], dtype=torch.bool)
    return TextureBank(atlas, origin, names, size_px, low)


def _sample_level(bank: TextureBank, tex_id: torch.Tensor, u: torch.Tensor, v: torch.Tensor, level: torch.Tensor):
    """(P,) texture ids, u, v in texture repeats, integer mip levels -> (P, 3) bilinear, mirrored-repeat samples."""
    size = (bank.size_px / 2.0**level).float()
    org = bank.tile_origin[tex_id, level]  # (P, 2)
    coords = []
    for c, o in ((u, org[:, 0]), (v, org[:, 1])):
        m = torch.remainder(c * size, 2 * size)
        coords.append(o + torch.where(m > size, 2 * size - m, m))
    _, _, h, w = bank.atlas.shape
    grid = torch.stack([coords[0] * (2.0 / w) - 1.0, coords[1] * (2.0 / h) - 1.0], dim=-1)
    out = F.grid_sample(bank.atlas, grid[None, None], mode="bilinear", align_corners=False)
    return out[0, :, 0].T


def sample_textures(
    bank: TextureBank, tex_id: torch.Tensor, u: torch.Tensor, v: torch.Tensor, footprint_texels: torch.Tensor
) -> torch.Tensor:
    """Trilinear mirrored-repeat lookup: (P,) ids, (P,) u, v in repeats, (P,) level-0 texels per pixel -> (P, 3)."""
    lam = torch.log2(footprint_texels.clamp_min(1.0)).clamp(0, bank.num_levels - 1)
    l0 = lam.floor().long().clamp(max=max(bank.num_levels - 2, 0))
    frac = (lam - l0)[:, None].clamp(0, 1)
    fine = _sample_level(bank, tex_id, u, v, l0)
    if bank.num_levels == 1:
        return fine
    return fine * (1 - frac) + _sample_level(bank, tex_id, u, v, l0 + 1) * frac


def texture_contrast(bank: TextureBank) -> torch.Tensor:
    """(N,) standard deviation of each texture's level-0 luminance (linear), a texturedness measure."""
    return bank.level0().mean(dim=1).flatten(1).std(dim=1)
