"""Seeded scene descriptions for the benchmark and their conversion to Mitsuba 3 scene dicts.

World frame: x right, y down (gravity +y), z forward, in metres; the camera's base pose
looks along +z from near the origin (see ``benchmark.camera``). A scene is a list of
``Shape`` (rectangles, cubes, cylinders, spheres) with diffuse, two-sided materials whose
reflectance is a procedural bitmap (``benchmark.textures``), lit by a constant environment
(the "sky", also what rays that hit nothing see) and one directional "sun" (cheap shadows).

Layouts (``SceneSpec.layout``):
    room       back wall at z_far, floor
    corridor   back wall at z_far, floor, two long side walls (strongly slanted planes)
    outdoor    ground plane up to z_far and sky above: rays that hit nothing have no depth
    tabletop   a table top (floor close below the camera) and a back wall at z_far
Clutter (counts in ``SceneSpec``): boxes (occlusion edges), poles and wires (thin structures,
1-4 px wide), slanted panels, low-texture panels ("flat" texture), spheres.
``build_scene`` is a pure function of the spec and the camera's fov; ``to_mitsuba`` needs mitsuba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from benchmark.textures import KINDS, make_texture

__all__ = ["Material", "Shape", "Scene", "SceneSpec", "LAYOUTS", "build_scene", "to_mitsuba", "rect_matrix"]

LAYOUTS = ("room", "corridor", "outdoor", "tabletop")
_TEXTURED = tuple(k for k in KINDS if k not in ("flat", "step"))


@dataclass(frozen=True)
class Material:
    """Diffuse reflectance from a procedural texture; one tile covers tile_u x tile_v of the shape's uv."""

    texture: str
    seed: int
    tiles_uv: tuple[float, float] = (1.0, 1.0)
    size_px: int = 256
    nearest: bool = False  # nearest-texel lookup (sharp edges) instead of bilinear


@dataclass(frozen=True)
class Shape:
    """One Mitsuba shape. kind: rectangle | cube | sphere (to use ``matrix``) or cylinder (p0, p1, radius_m)."""

    kind: str
    material: Material
    role: str
    matrix: tuple = ()  # 16 floats, row-major 4x4 to_world
    p0: tuple = ()
    p1: tuple = ()
    radius_m: float = 0.0


@dataclass
class Scene:
    """Shapes plus lighting. env_rgb: sky radiance; sun_dir: direction the light travels (world)."""

    shapes: list[Shape]
    env_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sun_dir: tuple[float, float, float] = (0.3, 1.0, 0.5)
    sun_rgb: tuple[float, float, float] = (2.0, 2.0, 2.0)
    has_sky: bool = False


@dataclass(frozen=True)
class SceneSpec:
    """What to generate. Depths are world z in metres; camera_height_m is the floor's y."""

    seed: int
    layout: str = "room"
    z_near_m: float = 0.6
    z_far_m: float = 6.0
    camera_height_m: float = 1.2
    boxes: int = 5
    poles: int = 2
    wires: int = 1
    slanted: int = 1
    panels: int = 1
    spheres: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not 0.1 < self.z_near_m < self.z_far_m:
            raise ValueError(f"need 0.1 < z_near_m < z_far_m, got {self.z_near_m}, {self.z_far_m}")


# ------------------------------------------------------------------------------ geometry helpers


def _rot_y(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rot_x(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _affine(R: np.ndarray, t, scale) -> tuple:
    M = np.eye(4)
    M[:3, :3] = R @ np.diag(np.asarray(scale, dtype=np.float64))
    M[:3, 3] = t
    return tuple(float(v) for v in M.reshape(16))


def rect_matrix(center, half_w_m: float, half_h_m: float, yaw_rad: float = 0.0, pitch_rad: float = 0.0) -> tuple:
    """to_world of Mitsuba's rectangle ([-1, 1]^2 in local xy, normal local z) centred at ``center``.

    Unrotated it faces the camera (spans world x and y at constant z); yaw turns it about the
    world y axis, pitch about its x axis (pitch = -90 deg makes it horizontal: a floor).
    """
    return _affine(_rot_y(yaw_rad) @ _rot_x(pitch_rad), center, (half_w_m, half_h_m, 1.0))


def _tiles(size_m: float, tile_m: float) -> float:
    return max(1.0, size_m / max(tile_m, 1e-6))


class _Builder:
    """Places shapes inside the camera's horizontal/vertical field of view with one rng."""

    def __init__(self, spec: SceneSpec, tan_half_fov_x: float, tan_half_fov_y: float):
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, 7310])
        self.tx, self.ty = tan_half_fov_x, tan_half_fov_y
        self.shapes: list[Shape] = []
        self._tex_seed = spec.seed * 1000

    def material(self, tiles=(1.0, 1.0), kind: str | None = None, size_px: int = 256) -> Material:
        self._tex_seed += 1
        kind = kind or str(self.rng.choice(_TEXTURED))
        return Material(kind, self._tex_seed, (float(tiles[0]), float(tiles[1])), size_px)

    def tile_m(self, z_m: float) -> float:
        """Physical size of one 256-texel tile at depth z: about 0.6-1.6 texels per pixel there."""
        return float(self.rng.uniform(0.6, 1.6) * 256.0 * z_m * self.tx / 160.0)

    def depth(self, lo: float, hi: float) -> float:
        return float(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def xy_in_view(self, z_m: float, margin: float = 0.8) -> tuple[float, float]:
        return (float(self.rng.uniform(-1, 1) * margin * z_m * self.tx),
                float(self.rng.uniform(-1, 1) * margin * z_m * self.ty))

    def add(self, **kw) -> None:
        self.shapes.append(Shape(**kw))


# ------------------------------------------------------------------------------ layouts and clutter


def _background(b: _Builder) -> bool:
    """Floor, walls; returns whether the scene has a sky (rays that hit nothing)."""
    s = b.spec
    h, zf = s.camera_height_m, s.z_far_m
    half_x = 1.6 * zf * b.tx + 2.0
    floor_len = zf + 1.0
    tile = b.tile_m(min(zf, 4.0 * h))
    b.add(kind="rectangle", role="floor", matrix=rect_matrix((0.0, h, floor_len / 2.0), half_x, floor_len / 2.0,
                                                             pitch_rad=-math.pi / 2),
          material=b.material((_tiles(2 * half_x, tile), _tiles(floor_len, tile)), size_px=512))
    if s.layout == "outdoor":
        return True
    half_y = max(1.6 * zf * b.ty + 1.0, h)
    top = h - 2.0 * half_y
    tile = b.tile_m(zf)
    b.add(kind="rectangle", role="back_wall", matrix=rect_matrix((0.0, (h + top) / 2.0, zf), half_x, half_y),
          material=b.material((_tiles(2 * half_x, tile), _tiles(2 * half_y, tile)), size_px=512))
    if s.layout == "corridor":
        w = float(s.extra.get("corridor_half_width_m", b.rng.uniform(0.8, 1.4)))
        for side in (-1.0, 1.0):
            tile = b.tile_m(0.5 * zf)
            b.add(kind="rectangle", role="side_wall",
                  matrix=rect_matrix((side * w, (h + top) / 2.0, zf / 2.0), zf / 2.0, half_y, yaw_rad=math.pi / 2),
                  material=b.material((_tiles(zf, tile), _tiles(2 * half_y, tile)), size_px=512))
    return False


def _boxes(b: _Builder, n: int) -> None:
    s = b.spec
    for i in range(n):
        # the first box sits at the near limit of the depth range, towards the image centre
        z = s.z_near_m if i == 0 else b.depth(s.z_near_m * 1.2, s.z_far_m * 0.75)
        half = (z * b.tx * b.rng.uniform(0.08, 0.25),) * 3
        half = (half[0], half[1] * b.rng.uniform(0.6, 1.6), half[2] * b.rng.uniform(0.5, 1.2))
        x, y = b.xy_in_view(z, 0.35 if i == 0 else 0.8)
        if b.rng.random() < 0.5 and i > 0:
            y = s.camera_height_m - half[1]  # standing on the floor
        zc = z + half[2]  # front face at z
        tile = b.tile_m(z)
        b.add(kind="cube", role="box", matrix=_affine(_rot_y(b.rng.uniform(-0.6, 0.6)), (x, y, zc), half),
              material=b.material((_tiles(2 * max(half), tile),) * 2))


def _poles(b: _Builder, n: int, fx_px: float) -> None:
    s = b.spec
    for _ in range(n):
        z = b.depth(s.z_near_m * 1.1, s.z_far_m * 0.8)
        x, _ = b.xy_in_view(z, 0.85)
        r = float(b.rng.uniform(1.0, 4.0) * z / (2.0 * fx_px))  # 1-4 px wide
        b.add(kind="cylinder", role="pole", p0=(x, s.camera_height_m, z), p1=(x, -3.0 * z * b.ty - 1.0, z),
              radius_m=r, material=b.material((1.0, 8.0)))


def _wires(b: _Builder, n: int, fx_px: float) -> None:
    s = b.spec
    for _ in range(n):
        z0 = b.depth(s.z_near_m * 1.1, s.z_far_m * 0.8)
        z1 = z0 if b.rng.random() < 0.5 else b.depth(s.z_near_m * 1.1, s.z_far_m * 0.8)  # some recede in depth
        y0 = b.xy_in_view(z0, 0.8)[1]
        y1 = y0 * z1 / z0 + b.rng.uniform(-0.2, 0.2) * z1 * b.ty
        r = float(b.rng.uniform(0.8, 2.5) * min(z0, z1) / (2.0 * fx_px))
        b.add(kind="cylinder", role="wire", p0=(-1.5 * z0 * b.tx, y0, z0), p1=(1.5 * z1 * b.tx, y1, z1),
              radius_m=r, material=b.material((1.0, 4.0), kind="pink"))


def _slanted(b: _Builder, n: int) -> None:
    s = b.spec
    for _ in range(n):
        z = b.depth(s.z_near_m * 1.3, s.z_far_m * 0.7)
        hw, hh = z * b.tx * b.rng.uniform(0.25, 0.5), z * b.ty * b.rng.uniform(0.3, 0.7)
        x, y = b.xy_in_view(z, 0.6)
        yaw = float(b.rng.choice([-1, 1]) * b.rng.uniform(math.radians(35), math.radians(70)))
        pitch = float(b.rng.uniform(-0.3, 0.3))
        tile = b.tile_m(z)
        b.add(kind="rectangle", role="slanted", matrix=rect_matrix((x, y, z + hw * abs(math.sin(yaw))), hw, hh,
                                                                   yaw, pitch),
              material=b.material((_tiles(2 * hw, tile), _tiles(2 * hh, tile))))


def _panels(b: _Builder, n: int) -> None:
    s = b.spec
    for _ in range(n):
        z = b.depth(s.z_near_m * 1.2, s.z_far_m * 0.7)
        hw, hh = z * b.tx * b.rng.uniform(0.15, 0.35), z * b.ty * b.rng.uniform(0.2, 0.5)
        x, y = b.xy_in_view(z, 0.6)
        b.add(kind="rectangle", role="flat_panel", matrix=rect_matrix((x, y, z), hw, hh, b.rng.uniform(-0.3, 0.3)),
              material=b.material(kind="flat"))


def _spheres(b: _Builder, n: int) -> None:
    s = b.spec
    for _ in range(n):
        z = b.depth(s.z_near_m * 1.2, s.z_far_m * 0.7)
        r = z * b.tx * b.rng.uniform(0.05, 0.15)
        x, y = b.xy_in_view(z, 0.7)
        b.add(kind="sphere", role="sphere", matrix=_affine(np.eye(3), (x, y, z + r), (r, r, r)),
              material=b.material((2.0, 1.0)))


def build_scene(spec: SceneSpec, fov_x_deg: float, width_px: int, height_px: int) -> Scene:
    """The shapes and lights of ``spec`` for a camera of horizontal fov ``fov_x_deg`` (square pixels)."""
    tx = math.tan(math.radians(fov_x_deg) / 2.0)
    ty = tx * height_px / width_px
    fx_px = width_px / (2.0 * tx)
    b = _Builder(spec, tx, ty)
    sky = _background(b)
    _boxes(b, spec.boxes)
    _poles(b, spec.poles, fx_px)
    _wires(b, spec.wires, fx_px)
    _slanted(b, spec.slanted)
    _panels(b, spec.panels)
    _spheres(b, spec.spheres)
    rng = b.rng
    sun = (float(rng.uniform(-0.6, 0.6)), 1.0, float(rng.uniform(-0.2, 0.8)))
    env = tuple(float(v) for v in (np.array([0.85, 0.92, 1.0]) * rng.uniform(0.8, 1.2)))
    return Scene(b.shapes, env_rgb=env, sun_dir=sun, sun_rgb=(float(rng.uniform(1.5, 3.0)),) * 3, has_sky=sky)


# ------------------------------------------------------------------------------ Mitsuba


def _bsdf(mi, m: Material) -> dict:
    tex = make_texture(m.texture, m.seed, m.size_px)
    reflectance = {
        "type": "bitmap",
        "bitmap": mi.Bitmap(tex),
        "raw": True,  # already linear reflectance
        "wrap_mode": "repeat",
        "filter_type": "nearest" if m.nearest else "bilinear",
        "to_uv": mi.ScalarTransform3f().scale([m.tiles_uv[0], m.tiles_uv[1]]),
    }
    return {"type": "twosided", "bsdf": {"type": "diffuse", "reflectance": reflectance}}


def to_mitsuba(scene: Scene, mi, textures: dict | None = None) -> dict:
    """A Mitsuba scene dict (no sensor, no integrator) of ``scene``; mitsuba's variant must be set.

    textures: optional cache Material -> bsdf dict (reused when the same scene is loaded again).
    """
    out: dict = {"type": "scene"}
    out["sky"] = {"type": "constant", "radiance": {"type": "rgb", "value": list(scene.env_rgb)}}
    if max(scene.sun_rgb) > 0:
        out["sun"] = {"type": "directional", "direction": list(scene.sun_dir),
                      "irradiance": {"type": "rgb", "value": list(scene.sun_rgb)}}
    cache = {} if textures is None else textures
    for i, sh in enumerate(scene.shapes):
        if sh.material not in cache:
            cache[sh.material] = _bsdf(mi, sh.material)
        d: dict = {"type": sh.kind, "bsdf": cache[sh.material]}
        if sh.kind == "cylinder":
            d.update(p0=list(sh.p0), p1=list(sh.p1), radius=sh.radius_m)
        else:
            d["to_world"] = mi.ScalarTransform4f(np.array(sh.matrix, dtype=np.float64).reshape(4, 4))
        out[f"{i:03d}_{sh.role}"] = d
    return out
