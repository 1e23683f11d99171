"""Textured 3D scenes of boxes, spheres and capped cylinders, and their seeded random layout.

Every surface is one of three solids: oriented boxes (walls, floor, rectangles and slanted panels
are thin boxes, thin bars are long thin boxes), spheres and capped cylinders (poles). Each solid
carries its own material: a texture of ``textures.texture_bank``, its repetition size in metres,
a uv offset and rotation, and a linear-light RGB tint.

World frame: the nominal camera optical frame at the sequence start, levelled (x right,
y down = gravity, z forward). The camera moves within ``Scene.motion_radius_m`` of the origin and
turns by at most ``Scene.max_rotation_rad``; ``random_scene`` keeps every surface the camera can
see inside the depth range under those bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from dfd_depth_ros.synthetic.render import srgb_to_linear
from dfd_depth_ros.synthetic.textures import FLAT_ID, texture_bank

__all__ = ["Scene", "SceneBuilder", "Material", "random_scene", "random_material", "rotation_xyz"]


@dataclass(frozen=True)
class Material:
    """Surface appearance: texture id, repeat size (m), uv offset (repeats), uv rotation (rad), linear RGB tint."""

    tex_id: int = FLAT_ID
    tile_m: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    angle_rad: float = 0.0
    tint: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def as_row(self) -> list[float]:
        """[tex_id, 1/tile_m, offset_u, offset_v, cos, sin, r, g, b]."""
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        return [float(self.tex_id), 1.0 / self.tile_m, *self.offset, c, s, *self.tint]


@dataclass(frozen=True)
class Scene:
    """Solids as float32 tensors (K_b boxes, K_s spheres, K_c cylinders) and per-solid materials.

    box_center_m (K_b, 3), box_rot (K_b, 3, 3) columns = box axes in world, box_half_m (K_b, 3).
    sphere_center_m (K_s, 3), sphere_radius_m (K_s,).
    cyl_center_m (K_c, 3), cyl_axis (K_c, 3) unit, cyl_ref (K_c, 3) unit and normal to the axis,
    cyl_radius_m (K_c,), cyl_half_len_m (K_c,).
    materials: (K_b + K_s + K_c, 9) rows of ``Material.as_row``, solids in that order.
    light_dir: (3,) unit vector towards the light (world); ambient: unlit fraction of the shading.
    motion_radius_m, max_rotation_rad: bounds of the camera motion the layout allows for.
    camera_pitch_rad: nominal downward pitch of the camera (rotation about world x).
    """

    box_center_m: torch.Tensor
    box_rot: torch.Tensor
    box_half_m: torch.Tensor
    sphere_center_m: torch.Tensor
    sphere_radius_m: torch.Tensor
    cyl_center_m: torch.Tensor
    cyl_axis: torch.Tensor
    cyl_ref: torch.Tensor
    cyl_radius_m: torch.Tensor
    cyl_half_len_m: torch.Tensor
    materials: torch.Tensor
    light_dir: torch.Tensor = field(default_factory=lambda: torch.tensor([0.3, -0.8, -0.5]) / math.sqrt(0.98))
    ambient: float = 1.0
    motion_radius_m: float = 0.0
    max_rotation_rad: float = 0.0
    camera_pitch_rad: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def num_solids(self) -> tuple[int, int, int]:
        """(boxes, spheres, cylinders)."""
        return self.box_center_m.shape[0], self.sphere_center_m.shape[0], self.cyl_center_m.shape[0]


def rotation_xyz(rx_rad: float, ry_rad: float, rz_rad: float) -> np.ndarray:
    """(3, 3) rotation Ry(ry) @ Rx(rx) @ Rz(rz) (yaw about y, then pitch about x, then roll about z)."""
    cx, sx, cy, sy, cz, sz = (math.cos(rx_rad), math.sin(rx_rad), math.cos(ry_rad), math.sin(ry_rad),
                              math.cos(rz_rad), math.sin(rz_rad))  # fmt: skip
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return ry @ rx @ rz


class SceneBuilder:
    """Collects solids with their materials, then ``build()`` packs them into a Scene."""

    def __init__(self):
        self.boxes: list[tuple] = []
        self.spheres: list[tuple] = []
        self.cylinders: list[tuple] = []

    def box(self, center_m, half_m, rot=None, material: Material | None = None) -> SceneBuilder:
        """Oriented box: centre (3,), half extents (3,) along the columns of ``rot`` (3, 3)."""
        rot = np.eye(3) if rot is None else np.asarray(rot, float)
        self.boxes.append((np.asarray(center_m, float), np.asarray(half_m, float), rot, material or Material()))
        return self

    def rect(self, center_m, normal, up, half_w_m, half_h_m, material=None, thickness_m=0.01) -> SceneBuilder:
        """Rectangle whose visible face passes through ``center_m`` and faces ``normal`` (a thin box behind it)."""
        n = np.asarray(normal, float) / np.linalg.norm(normal)
        u = np.cross(np.asarray(up, float), n)
        u /= np.linalg.norm(u)
        v = np.cross(u, n)  # points "down" so that texture rows run top to bottom
        centre = np.asarray(center_m, float) - n * thickness_m / 2
        return self.box(centre, (half_w_m, half_h_m, thickness_m / 2), np.stack([u, v, n], axis=1), material)

    def sphere(self, center_m, radius_m: float, material: Material | None = None) -> SceneBuilder:
        """Sphere of ``radius_m`` at ``center_m``."""
        self.spheres.append((np.asarray(center_m, float), float(radius_m), material or Material()))
        return self

    def cylinder(self, center_m, axis, radius_m, half_len_m, material=None) -> SceneBuilder:
        """Capped cylinder: centre (3,), axis direction (3,), radius and half length in metres."""
        a = np.asarray(axis, float) / np.linalg.norm(axis)
        helper = np.array([1.0, 0, 0]) if abs(a[0]) < 0.9 else np.array([0, 0, 1.0])
        ref = np.cross(a, helper)
        ref /= np.linalg.norm(ref)
        self.cylinders.append((np.asarray(center_m, float), a, ref, float(radius_m), float(half_len_m),
                               material or Material()))  # fmt: skip
        return self

    def build(self, **kwargs) -> Scene:
        """Pack into float32 tensors; kwargs go to Scene (light_dir, ambient, motion bounds, info)."""

        def stack(rows, shape):
            return torch.tensor(np.array(rows, dtype=np.float64).reshape(-1, *shape), dtype=torch.float32)

        b, s, c = self.boxes, self.spheres, self.cylinders
        mats = [r[-1].as_row() for r in b + s + c]
        if "light_dir" in kwargs:
            light = torch.as_tensor(kwargs["light_dir"], dtype=torch.float32)
            kwargs["light_dir"] = light / light.norm()
        return Scene(
            box_center_m=stack([r[0] for r in b], (3,)), box_half_m=stack([r[1] for r in b], (3,)),
            box_rot=stack([r[2] for r in b], (3, 3)),
            sphere_center_m=stack([r[0] for r in s], (3,)), sphere_radius_m=stack([r[1] for r in s], ()),
            cyl_center_m=stack([r[0] for r in c], (3,)), cyl_axis=stack([r[1] for r in c], (3,)),
            cyl_ref=stack([r[2] for r in c], (3,)), cyl_radius_m=stack([r[3] for r in c], ()),
            cyl_half_len_m=stack([r[4] for r in c], ()), materials=stack(mats, (9,)), **kwargs,
        )  # fmt: skip


# ---------------------------------------------------------------- random layout


def random_material(rng: np.random.Generator, size_m: float, low_texture_prob: float = 0.2) -> Material:
    """Random material for a surface of typical size ``size_m``; low-texture (flat/plaster) with given probability."""
    bank = texture_bank()
    low_ids = [i for i in range(bank.num_textures) if bool(bank.low_texture[i])]
    high_ids = [i for i in range(bank.num_textures) if not bool(bank.low_texture[i])]
    tex = int(rng.choice(low_ids if rng.random() < low_texture_prob else high_ids))
    tile_m = float(size_m * math.exp(rng.uniform(math.log(0.15), math.log(1.5))))
    tint_srgb = rng.uniform(0.35, 1.0, 3) if tex != FLAT_ID else rng.uniform(0.1, 0.9, 3)
    if rng.random() < 0.5:  # mostly neutral tints keep photo textures natural
        tint_srgb = np.full(3, tint_srgb.mean()) + 0.2 * (tint_srgb - tint_srgb.mean())
    tint = tuple(srgb_to_linear(torch.from_numpy(tint_srgb)).tolist())
    return Material(tex, tile_m, (float(rng.random()), float(rng.random())), float(rng.uniform(-0.5, 0.5)), tint)


@dataclass(frozen=True)
class _Frustum:
    """Layout bounds: tangents of the half FOVs, nominal pitch (rad), depth limits for objects and walls (m)."""

    tan_h: float
    tan_v: float
    pitch_rad: float
    z_lo_m: float
    z_back_m: float


def _room(bld: SceneBuilder, rng: np.random.Generator, fr: _Frustum, min_near_m: float) -> dict:
    """Back wall, and randomly floor, ceiling and side walls, all beyond ``min_near_m`` for the camera."""
    zb, margin = fr.z_back_m, math.radians(8.0)
    half_v = math.atan(fr.tan_v)
    big = 3.0 * zb * (fr.tan_h + 0.5) + 2.0
    bld.rect((0, 0, zb), (0, 0, -1), (0, -1, 0), big, big, random_material(rng, zb, 0.15))
    info = {"back_wall_m": zb}
    if rng.random() < 0.8:  # floor: its nearest visible z-depth is h cos(v/2) / sin(v/2 + pitch + margin)
        near = rng.uniform(1.3, 3.0) * min_near_m + rng.uniform(0.0, 0.15) * zb
        h = near * math.sin(half_v + fr.pitch_rad + margin) / math.cos(half_v)
        bld.rect((0, h, zb / 2 - 1), (0, -1, 0), (0, 0, 1), big, zb / 2 + 1, random_material(rng, zb, 0.15))
        info["floor_m"] = h
    if rng.random() < 0.3:
        near = rng.uniform(1.5, 4.0) * min_near_m
        h = near * math.sin(max(half_v - fr.pitch_rad + margin, 0.1)) / math.cos(half_v)
        bld.rect((0, -h, zb / 2 - 1), (0, 1, 0), (0, 0, 1), big, zb / 2 + 1, random_material(rng, zb, 0.15))
        info["ceiling_m"] = h
    half_h = math.atan(fr.tan_h)
    for side in (-1.0, 1.0):
        if rng.random() < 0.35:
            near = rng.uniform(0.3, 0.8) * zb
            x = max(near, min_near_m) * math.sin(half_h + margin) / math.cos(half_h)
            mat = random_material(rng, zb, 0.15)
            bld.rect((side * x, 0, zb / 2 - 1), (-side, 0, 0), (0, -1, 0), zb / 2 + 1, big, mat)
            info[f"wall_x{int(side):+d}_m"] = x
    return info


def _place(rng: np.random.Generator, fr: _Frustum, z_m: float) -> np.ndarray:
    """(3,) world point at z-depth ``z_m`` seen at a random place of (a slightly enlarged) image."""
    x_ndc, y_ndc = rng.uniform(-1.1, 1.1, 2)
    cam = np.array([x_ndc * fr.tan_h, y_ndc * fr.tan_v, 1.0]) * z_m
    return rotation_xyz(-fr.pitch_rad, 0, 0) @ cam


def _add_object(bld: SceneBuilder, rng: np.random.Generator, fr: _Frustum, floor_m: float | None) -> str:
    """Add one random object (box, sphere, pole, bar or slanted panel) inside the frustum; returns its kind."""
    kind = str(rng.choice(["box", "sphere", "pole", "bar", "panel"], p=[0.3, 0.15, 0.15, 0.15, 0.25]))
    z = math.exp(rng.uniform(math.log(fr.z_lo_m * 1.1), math.log(0.92 * fr.z_back_m)))
    c = _place(rng, fr, z)
    s = z * fr.tan_h * rng.uniform(0.08, 0.4)  # typical size: a fraction of the view width at that depth
    thin = z * rng.uniform(0.004, 0.015)  # thin structures: a few pixels wide
    mat = random_material(rng, s, 0.25)
    yaw, tilt = rng.uniform(-math.pi, math.pi), rng.uniform(-0.3, 0.3)
    if kind == "box":
        half = s * rng.uniform(0.3, 1.0, 3)
        half *= min(1.0, (z - fr.z_lo_m) / np.linalg.norm(half))
        if floor_m is not None and rng.random() < 0.5:
            c[1], tilt = floor_m - half[1], 0.0
        bld.box(c, half, rotation_xyz(tilt, yaw, 0), mat)
    elif kind == "sphere":
        bld.sphere(c, min(s * rng.uniform(0.3, 0.6), z - fr.z_lo_m), mat)
    elif kind == "pole":
        half_len = s * rng.uniform(2.0, 6.0)
        if floor_m is not None and rng.random() < 0.6:
            c[1], tilt = floor_m - half_len, 0.0
        max_tilt = math.asin(min(1.0, 0.8 * (z - fr.z_lo_m) / half_len))
        tilt = float(np.clip(tilt, -max_tilt, max_tilt))
        axis = rotation_xyz(tilt, 0, rng.uniform(-0.4, 0.4) if rng.random() < 0.3 else 0.0) @ [0, 1, 0]
        bld.cylinder(c, axis, thin / 2, half_len, mat)
    elif kind == "bar":
        length = min(s * rng.uniform(1.0, 3.0), 0.9 * (z - fr.z_lo_m))
        rot = rotation_xyz(rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.8), rng.uniform(-math.pi, math.pi))
        bld.box(c, (length, thin / 2, thin * rng.uniform(0.5, 2.0)), rot, mat)
    else:  # slanted panel: strong tilt, gives depth gradients
        half = s * rng.uniform(0.5, 1.2, 2)
        half *= min(1.0, 0.95 * (z - fr.z_lo_m) / np.linalg.norm(half))
        rot = rotation_xyz(rng.uniform(-1.0, 1.0), rng.uniform(-1.2, 1.2), rng.uniform(-0.5, 0.5))
        bld.box(c, (half[0], half[1], 0.005 * z), rot, mat)
    return kind


def random_scene(rng: np.random.Generator, hfov_deg: float, aspect: float, min_depth_m: float, max_depth_m: float,
                 num_objects: int | None = None) -> Scene:  # fmt: skip
    """Random room-like scene for a camera of horizontal FOV ``hfov_deg`` and aspect H/W, depths within range."""
    tan_h = math.tan(math.radians(hfov_deg) / 2)
    rot_margin = math.radians(4.0)
    z_back_hi = max_depth_m / 1.3
    z_back_lo = min(max(4.0 * min_depth_m, 1.5), z_back_hi)
    z_back = math.exp(rng.uniform(math.log(z_back_lo), math.log(z_back_hi)))
    motion_r = float(np.clip(0.05 * z_back, 0.02, 0.25))
    z_lo = (1.15 * min_depth_m + motion_r) / 0.9
    fr = _Frustum(tan_h, tan_h * aspect, math.radians(rng.uniform(-3.0, 12.0)), z_lo, z_back)
    bld = SceneBuilder()
    info = _room(bld, rng, fr, z_lo)
    n = int(num_objects if num_objects is not None else rng.integers(4, 13))
    info["objects"] = [_add_object(bld, rng, fr, info.get("floor_m")) for _ in range(n)]
    light = rotation_xyz(rng.uniform(-1.2, -0.3), rng.uniform(-1.0, 1.0), 0) @ [0, 0, -1.0]
    return bld.build(light_dir=light, ambient=float(rng.uniform(0.35, 0.7)), motion_radius_m=motion_r,
                     max_rotation_rad=rot_margin, camera_pitch_rad=fr.pitch_rad, info=info)  # fmt: skip
