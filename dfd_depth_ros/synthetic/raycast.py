"""Vectorised ray casting of a ``scenes.Scene``: nearest hit, z-depth, textured and shaded colour.

Rays are not normalised: in the camera frame a pixel's ray is (x, y, 1) = K^-1 (u, v, 1), so the
ray parameter t of a hit *is* its z-depth along the optical axis. Intersections are computed for
many solids at once as (K, P) tensors; on a pixel grid each small solid is only tested on the rays
inside its screen-space bounding rectangle (the result is identical to testing every ray).

Anti-aliasing: every pixel is intersected at ``supersample`` x ``supersample`` sub-pixel centres and
at its centre. Pixels whose samples all hit the same solid are shaded once at the centre with a
whole-pixel texture footprint (mip-mapping filters the texture); the others (silhouettes, thin
structures) are shaded per sub-sample and area-averaged. Depth is the z of the ray through each
pixel's centre, so every depth value is the depth of a real surface point (no mixed depths at
occlusion edges).
"""

from __future__ import annotations

import math

import torch

from dfd_depth_ros.synthetic.scenes import Scene
from dfd_depth_ros.synthetic.textures import TextureBank, sample_textures, texture_bank

__all__ = ["pixel_rays", "intersect", "intersect_grid", "shade", "render_views", "render_depth"]

_EPS_M = 1e-4
_CHUNK_RAYS = 32768


def pixel_rays(K, width_px: int, height_px: int, supersample: int = 1) -> torch.Tensor:
    """(s*H, s*W, 3) camera-frame rays (x, y, 1) through the centres of the s x s sub-pixels of each pixel."""
    K = torch.as_tensor(K, dtype=torch.float64)
    s = int(supersample)
    offs = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    u = (torch.arange(width_px, dtype=torch.float64)[:, None] + offs[None, :]).reshape(-1)
    v = (torch.arange(height_px, dtype=torch.float64)[:, None] + offs[None, :]).reshape(-1)
    x = ((u - K[0, 2]) / K[0, 0])[None, :].expand(len(v), -1)
    y = ((v - K[1, 2]) / K[1, 1])[:, None].expand(-1, len(u))
    return torch.stack([x, y, torch.ones_like(x)], dim=-1).float()


def _hit_boxes(scene: Scene, o: torch.Tensor, d: torch.Tensor, ks) -> torch.Tensor:
    """(K, P) entry t of rays o + t d (o (3,), d (P, 3)) into the boxes ``ks`` (slab test), inf = miss."""
    rot_t = scene.box_rot[ks].transpose(1, 2)  # world -> local
    d_l = torch.matmul(rot_t, d.T)  # (K, 3, P)
    o_l = torch.matmul(rot_t, (o - scene.box_center_m[ks])[:, :, None])  # (K, 3, 1)
    inv = 1.0 / d_l
    h = scene.box_half_m[ks][:, :, None]
    t1, t2 = (-h - o_l) * inv, (h - o_l) * inv
    t_in = torch.minimum(t1, t2).amax(dim=1)
    t_out = torch.maximum(t1, t2).amin(dim=1)
    return torch.where((t_in <= t_out) & (t_in > _EPS_M), t_in, float("inf"))


def _hit_spheres(scene: Scene, o: torch.Tensor, d: torch.Tensor, ks) -> torch.Tensor:
    """(K, P) nearest positive t of rays o + t d into the spheres ``ks``, inf = miss."""
    oc = o - scene.sphere_center_m[ks]  # (K, 3)
    b = oc @ d.T  # (K, P)
    a = (d * d).sum(1)
    c = (oc * oc).sum(1) - scene.sphere_radius_m[ks] ** 2
    disc = b * b - a * c[:, None]
    t = (-b - disc.clamp_min(0).sqrt()) / a
    return torch.where((disc >= 0) & (t > _EPS_M), t, float("inf"))


def _hit_cylinders(scene: Scene, o: torch.Tensor, d: torch.Tensor, ks) -> torch.Tensor:
    """(K, P) entry t of rays o + t d into the capped cylinders ``ks`` (quadric + axial slab), inf = miss."""
    w = o - scene.cyl_center_m[ks]  # (K, 3)
    ax = scene.cyl_axis[ks]
    da = ax @ d.T  # (K, P)
    dw = w @ d.T
    wa = (w * ax).sum(1)[:, None]
    a = (d * d).sum(1) - da * da
    b = dw - da * wa
    c = (w * w).sum(1)[:, None] - wa * wa - scene.cyl_radius_m[ks][:, None] ** 2
    disc = b * b - a * c
    sq = disc.clamp_min(0).sqrt()
    parallel = a <= 1e-9 * (d * d).sum(1)  # ray along the axis: inside the tube everywhere or nowhere
    inf = float("inf")
    tc_in = torch.where(parallel, -inf, (-b - sq) / a)
    tc_out = torch.where(parallel, inf, (-b + sq) / a)
    h = scene.cyl_half_len_m[ks][:, None]
    ts1, ts2 = (-h - wa) / da, (h - wa) / da
    t_in = torch.maximum(tc_in, torch.minimum(ts1, ts2))
    t_out = torch.minimum(tc_out, torch.maximum(ts1, ts2))
    hit = torch.where(parallel, c <= 0, disc >= 0) & (t_in <= t_out) & (t_in > _EPS_M)
    return torch.where(hit, t_in, inf)


_HITS = (_hit_boxes, _hit_spheres, _hit_cylinders)


def _type_bounds(scene: Scene) -> list[int]:
    """Global index where boxes, spheres, cylinders start, plus the total: [0, K_b, K_b + K_s, N]."""
    kb, ks, kc = scene.num_solids
    return [0, kb, kb + ks, kb + ks + kc]


def intersect(scene: Scene, origin: torch.Tensor, dirs: torch.Tensor, solids: torch.Tensor | None = None):
    """Nearest hit of rays origin + t dirs: (3,), (P, 3) -> (P,) t (inf = miss), (P,) global solid index (-1).

    solids: optional (N,) bool mask of the solids to test (default all).
    """
    bounds = _type_bounds(scene)
    mask = torch.ones(bounds[-1], dtype=torch.bool) if solids is None else solids
    subsets = [mask[bounds[i] : bounds[i + 1]].nonzero()[:, 0] for i in range(3)]
    ts, ids = [], []
    for start in range(0, dirs.shape[0], _CHUNK_RAYS):
        d = dirs[start : start + _CHUNK_RAYS]
        t = torch.full((d.shape[0],), float("inf"))
        idx = torch.full((d.shape[0],), -1, dtype=torch.long)
        for i, (hit, sub) in enumerate(zip(_HITS, subsets)):
            if sub.numel():
                t_k, k = hit(scene, origin, d, sub).min(dim=0)
                closer = t_k < t
                t, idx = torch.where(closer, t_k, t), torch.where(closer, bounds[i] + sub[k], idx)
        ts.append(t)
        ids.append(idx)
    return torch.cat(ts), torch.cat(ids)


def _bounding_corners(scene: Scene) -> torch.Tensor:
    """(N, 8, 3) world corners of an oriented box around each solid (boxes: the box itself)."""
    signs = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    eye = torch.eye(3).expand(scene.sphere_center_m.shape[0], 3, 3)
    ax, ref = scene.cyl_axis, scene.cyl_ref
    cyl_rot = torch.stack([ref, ax, torch.cross(ax, ref, dim=1)], dim=2)
    cyl_half = torch.stack([scene.cyl_radius_m, scene.cyl_half_len_m, scene.cyl_radius_m], dim=1)
    rot = torch.cat([scene.box_rot, eye, cyl_rot])
    half = torch.cat([scene.box_half_m, scene.sphere_radius_m[:, None].expand(-1, 3), cyl_half])
    centre = torch.cat([scene.box_center_m, scene.sphere_center_m, scene.cyl_center_m])
    return centre[:, None] + torch.einsum("nij,nkj->nki", rot, signs[None] * half[:, None])


def _screen_ranges(scene: Scene, pose: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(N, 4) [row0, row1, col0, col1) of the ray grid (ray x per column ``xs``, y per row ``ys``) each solid covers."""
    cam = (_bounding_corners(scene) - pose[:3, 3]) @ pose[:3, :3]  # R^T (p - o): (N, 8, 3)
    z = cam[..., 2]
    near = (z <= 1e-3).any(dim=1)  # a corner at or behind the camera: test every ray
    x, y = cam[..., 0] / z.clamp_min(1e-3), cam[..., 1] / z.clamp_min(1e-3)
    r0, r1 = torch.searchsorted(ys, y.amin(1)), torch.searchsorted(ys, y.amax(1), right=True)
    c0, c1 = torch.searchsorted(xs, x.amin(1)), torch.searchsorted(xs, x.amax(1), right=True)
    r0, c0 = torch.where(near, 0, r0), torch.where(near, 0, c0)
    r1, c1 = torch.where(near, len(ys), r1), torch.where(near, len(xs), c1)
    return torch.stack([r0, r1, c0, c1], dim=1)


def intersect_grid(scene: Scene, pose, rays_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``intersect`` for an (h, w, 3) grid of camera rays seen from pose (4, 4) -> (h*w,) t, (h*w,) index.

    Solids whose screen bounds cover more than a quarter of the grid are tested on every ray at once; each
    of the others only on the rays inside its bounds.
    """
    h, w, _ = rays_cam.shape
    origin, dirs = _pose_rays(pose, rays_cam.reshape(-1, 3))
    xs, ys = rays_cam[0, :, 0].contiguous(), rays_cam[:, 0, 1].contiguous()
    ranges = _screen_ranges(scene, torch.as_tensor(pose, dtype=torch.float32), xs, ys)
    area = (ranges[:, 1] - ranges[:, 0]).clamp_min(0) * (ranges[:, 3] - ranges[:, 2]).clamp_min(0)
    big = area > h * w // 4
    t, idx = intersect(scene, origin, dirs, big)
    t, idx, dirs = t.reshape(h, w), idx.reshape(h, w), dirs.reshape(h, w, 3)
    bounds = _type_bounds(scene)
    for n in ((~big) & (area > 0)).nonzero()[:, 0].tolist():
        r0, r1, c0, c1 = ranges[n].tolist()
        kind = sum(n >= b for b in bounds[1:3])
        t_n = _HITS[kind](scene, origin, dirs[r0:r1, c0:c1].reshape(-1, 3), [n - bounds[kind]])[0]
        region_t, region_i = t[r0:r1, c0:c1], idx[r0:r1, c0:c1]
        closer = t_n.reshape(r1 - r0, c1 - c0) < region_t
        t[r0:r1, c0:c1] = torch.where(closer, t_n.reshape(closer.shape), region_t)
        idx[r0:r1, c0:c1] = torch.where(closer, n, region_i)
    return t.reshape(-1), idx.reshape(-1)


def _surface_box(scene: Scene, k: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hit points (P, 3) on boxes k (P,) -> (P, 3) world normals, (P, 2) face coordinates in metres."""
    rot = scene.box_rot[k]  # (P, 3, 3)
    local = torch.einsum("pji,pj->pi", rot, p - scene.box_center_m[k])
    q = local / scene.box_half_m[k]
    axis = q.abs().argmax(dim=1)
    sign = torch.sign(q.gather(1, axis[:, None]))
    normal = rot.gather(2, axis[:, None, None].expand(-1, 3, 1))[:, :, 0] * sign
    pairs = torch.tensor([[1, 2], [0, 2], [0, 1]])[axis]
    return normal, local.gather(1, pairs)


def _surface_sphere(scene: Scene, k: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hit points on spheres k -> normals, (|longitude| r, latitude r) in metres (mirror-symmetric: no seam)."""
    r = scene.sphere_radius_m[k]
    n = (p - scene.sphere_center_m[k]) / r[:, None]
    lon = torch.atan2(n[:, 0], -n[:, 2]).abs()
    lat = torch.asin(n[:, 1].clamp(-1, 1))
    return n, torch.stack([lon * r, lat * r], dim=1)


def _surface_cylinder(scene: Scene, k: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hit points on capped cylinders k -> normals, (arc length, axial) or cap-plane coordinates in metres."""
    ax, ref = scene.cyl_axis[k], scene.cyl_ref[k]
    r, h = scene.cyl_radius_m[k], scene.cyl_half_len_m[k]
    w = p - scene.cyl_center_m[k]
    s = (w * ax).sum(1)
    radial = w - s[:, None] * ax
    rho = radial.norm(dim=1).clamp_min(1e-9)
    x, y = (radial * ref).sum(1), (radial * torch.cross(ax, ref, dim=1)).sum(1)
    cap = (h - s.abs()) < (r - rho)
    normal = torch.where(cap[:, None], ax * torch.sign(s)[:, None], radial / rho[:, None])
    side_uv = torch.stack([torch.atan2(y, x).abs() * r, s], dim=1)
    return normal, torch.where(cap[:, None], torch.stack([x, y], dim=1), side_uv)


def shade(scene: Scene, origin, dirs, t, idx, fx_px: float, bank: TextureBank | None = None) -> torch.Tensor:
    """Linear RGB (P, 3) of hits (t, idx from ``intersect``), textured and Lambert-shaded; 0 where missed."""
    bank = bank or texture_bank()
    out = torch.zeros(dirs.shape[0], 3)
    kb, ks, kc = scene.num_solids
    ranges = ((0, kb, _surface_box), (kb, kb + ks, _surface_sphere), (kb + ks, kb + ks + kc, _surface_cylinder))
    for lo, hi, surface in ranges:
        sel = ((idx >= lo) & (idx < hi)).nonzero()[:, 0]
        if sel.numel() == 0:
            continue
        d, z = dirs[sel], t[sel]
        normal, st_m = surface(scene, idx[sel] - lo, origin + z[:, None] * d)
        mat = scene.materials[idx[sel]]
        cos_view = (normal * d).sum(1).abs() / d.norm(dim=1)
        rot_c, rot_s = mat[:, 4], mat[:, 5]
        u = (rot_c * st_m[:, 0] - rot_s * st_m[:, 1]) * mat[:, 1] + mat[:, 2]
        v = (rot_s * st_m[:, 0] + rot_c * st_m[:, 1]) * mat[:, 1] + mat[:, 3]
        footprint = z / fx_px * bank.size_px * mat[:, 1] / cos_view.clamp_min(0.05).sqrt()
        albedo = sample_textures(bank, mat[:, 0].long(), u, v, footprint) * mat[:, 6:9]
        facing = torch.where(((normal * d).sum(1) > 0)[:, None], -normal, normal)
        lambert = scene.ambient + (1 - scene.ambient) * (facing @ scene.light_dir).clamp_min(0)
        out[sel] = albedo * lambert[:, None]
    return out


def _pose_rays(pose: torch.Tensor, rays_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 4) T_world_camera, (P, 3) camera rays -> world origin (3,), world rays (P, 3) (still z-normalised)."""
    pose = torch.as_tensor(pose, dtype=torch.float32)
    return pose[:3, 3], rays_cam @ pose[:3, :3].T


def render_depth(scene: Scene, poses, K, width_px: int, height_px: int) -> torch.Tensor:
    """(T, 4, 4) poses -> (T, 1, H, W) z-depth in metres of each pixel centre (inf where nothing is hit)."""
    rays = pixel_rays(K, width_px, height_px, 1)
    depth = [intersect_grid(scene, p, rays)[0] for p in poses]
    return torch.stack(depth).reshape(-1, 1, height_px, width_px)


def _block_index(width_px: int, height_px: int, s: int) -> torch.Tensor:
    """(H*W, s*s) indices into the row-major (s*H, s*W) sub-pixel grid of each pixel's sub-samples."""
    grid = torch.arange(s * s * width_px * height_px).reshape(height_px, s, width_px, s)
    return grid.permute(0, 2, 1, 3).reshape(width_px * height_px, s * s)


def _render_view(scene: Scene, pose, rays_c, rays_ss, blocks, fx_px: float, bank: TextureBank):
    """One view -> (H*W, 3) linear colour and (H*W,) pixel-centre z-depth.

    Every sub-sample is intersected; a pixel whose sub-samples and centre all hit the same solid is shaded
    once at its centre (texture footprint of a whole pixel), the others at each sub-sample and averaged.
    """
    origin, d_c = _pose_rays(pose, rays_c.reshape(-1, 3))
    t_c, idx_c = intersect_grid(scene, pose, rays_c)
    if blocks is None:
        return shade(scene, origin, d_c, t_c, idx_c, fx_px, bank), t_c
    s2 = blocks.shape[1]
    _, d_ss = _pose_rays(pose, rays_ss.reshape(-1, 3))
    t_ss, idx_ss = intersect_grid(scene, pose, rays_ss)
    uniform = (idx_ss[blocks] == idx_c[:, None]).all(dim=1)
    colour = torch.empty(d_c.shape[0], 3)
    u = uniform.nonzero()[:, 0]
    colour[u] = shade(scene, origin, d_c[u], t_c[u], idx_c[u], fx_px, bank)
    e = (~uniform).nonzero()[:, 0]
    sub = blocks[e].reshape(-1)
    sub_colour = shade(scene, origin, d_ss[sub], t_ss[sub], idx_ss[sub], fx_px * math.sqrt(s2), bank)
    colour[e] = sub_colour.reshape(-1, s2, 3).mean(dim=1)
    return colour, t_c


def render_views(scene: Scene, poses, K, width_px: int, height_px: int, supersample: int = 2):
    """(T, 4, 4) poses -> (T, 3, H, W) all-in-focus linear RGB (s x s supersampled) and (T, 1, H, W) z-depth (m)."""
    s = int(supersample)
    rays_c = pixel_rays(K, width_px, height_px, 1)
    rays_ss = pixel_rays(K, width_px, height_px, s) if s > 1 else None
    blocks = _block_index(width_px, height_px, s) if s > 1 else None
    fx = float(torch.as_tensor(K)[0, 0])
    bank = texture_bank()
    views = [_render_view(scene, pose, rays_c, rays_ss, blocks, fx, bank) for pose in poses]
    aif = torch.stack([v[0] for v in views]).permute(0, 2, 1).reshape(-1, 3, height_px, width_px)
    return aif, torch.stack([v[1] for v in views]).reshape(-1, 1, height_px, width_px)
