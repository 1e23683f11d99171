"""Scene generator: analytic ray-casting depths, anti-aliasing, texture bank."""

import math

import numpy as np
import pytest
import torch

from dfd_depth_ros.frames import intrinsics_matrix
from dfd_depth_ros.synthetic.raycast import intersect, intersect_grid, pixel_rays, render_views
from dfd_depth_ros.synthetic.scenes import Material, SceneBuilder, random_scene, rotation_xyz
from dfd_depth_ros.synthetic.textures import FLAT_ID, texture_bank, texture_contrast

W, H = 97, 61  # odd sizes: the centre pixel's ray is the optical axis
FX = 80.0
K = intrinsics_matrix(FX, FX, (W - 1) / 2, (H - 1) / 2)
EYE = np.eye(4)[None]


def _depth(builder: SceneBuilder, pose=EYE, supersample: int = 2) -> np.ndarray:
    return render_views(builder.build(), pose, K, W, H, supersample)[1][0, 0].numpy()


def test_fronto_parallel_plane_has_constant_z_depth_not_ray_distance():
    depth = _depth(SceneBuilder().rect((0, 0, 2.0), (0, 0, -1), (0, -1, 0), 10, 10, Material(5, 0.5)))
    np.testing.assert_allclose(depth, 2.0, atol=1e-5)


def test_floor_depth_matches_analytic_plane_intersection():
    h = 1.2  # floor 1.2 m below the camera (y down); a pixel row v sees it at z = h / ((v - cy) / fy)
    depth = _depth(SceneBuilder().rect((0, h, 5), (0, -1, 0), (0, 0, 1), 20, 10))
    rows = np.arange(H)
    below = rows > (H - 1) / 2 + 8  # rows whose floor point lies within the rectangle (z < 15 m)
    expected = h / ((rows[below] - (H - 1) / 2) / FX)
    assert expected.max() < 15
    np.testing.assert_allclose(depth[below], np.repeat(expected[:, None], W, 1), rtol=1e-4)
    assert np.isinf(depth[rows < (H - 1) / 2]).all()  # above the horizon: nothing hit


@pytest.mark.parametrize(
    "build, z_expected",
    [
        (lambda b: b.sphere((0, 0, 3.0), 0.5), 2.5),
        (lambda b: b.cylinder((0, 0, 3.0), (0, 1, 0), 0.1, 1.0), 2.9),  # pole: curved side
        (lambda b: b.cylinder((0, 0, 3.0), (0, 0, 1), 0.3, 0.5), 2.5),  # axis along the view: flat cap
        (lambda b: b.box((0, 0, 3.0), (0.5, 0.5, 0.5)), 2.5),
        (lambda b: b.box((0, 0, 3.0), (0.5, 0.5, 0.5), rotation_xyz(0, math.pi / 4, 0)), 3 - 0.5 * math.sqrt(2)),
    ],
)
def test_centre_pixel_depth_of_simple_solids(build, z_expected):
    depth = _depth(build(SceneBuilder()))
    assert depth[(H - 1) // 2, (W - 1) // 2] == pytest.approx(z_expected, abs=1e-5)


def test_moved_and_rotated_camera_sees_sphere_at_analytic_depth():
    pose = np.eye(4)
    pose[:3, :3] = rotation_xyz(0.0, math.radians(30), 0.0)  # yaw right by 30 degrees
    pose[:3, 3] = (-1.0, 0.2, 0.5)
    centre = pose[:3, 3] + pose[:3, :3] @ np.array([0, 0, 4.0])  # 4 m straight ahead of the camera
    depth = _depth(SceneBuilder().sphere(centre, 0.7), pose[None])
    assert depth[(H - 1) // 2, (W - 1) // 2] == pytest.approx(3.3, abs=1e-4)


def test_supersampling_blends_colour_at_edges_but_depth_stays_a_surface_depth():
    dark, bright = Material(FLAT_ID, tint=(0.05, 0.05, 0.05)), Material(FLAT_ID, tint=(0.9, 0.9, 0.9))
    bld = SceneBuilder().rect((0, 0, 4.0), (0, 0, -1), (0, -1, 0), 20, 20, dark)
    bld.rect((-5.0 + 0.30625, 0, 2.0), (0, 0, -1), (0, -1, 0), 5.0, 5.0, bright)  # edge at u = 60.25 px
    aif, depth = render_views(bld.build(), EYE, K, W, H, 4)
    lum = aif[0].mean(0).numpy()
    depth = depth[0, 0].numpy()
    assert ((lum > 0.1) & (lum < 0.85)).any()  # the edge column is a blend
    assert np.isin(np.round(depth, 4), [2.0, 4.0]).all()  # no mixed depths
    assert np.isclose(depth, 2.0).any() and np.isclose(depth, 4.0).any()


def test_texture_bank_is_bundled_cached_and_has_flat_and_textured_entries():
    bank = texture_bank()
    assert bank is texture_bank()  # built once per process
    assert {"brick", "grass", "gravel", "astronaut"} <= set(bank.names)
    contrast = texture_contrast(bank)
    assert contrast[FLAT_ID] == 0 and bool(bank.low_texture[FLAT_ID])
    assert (contrast[~bank.low_texture] > 0.03).all() and (contrast[bank.low_texture] < 0.02).all()


def test_random_scenes_render_both_textured_and_low_texture_regions():
    flat_frac, textured_frac = [], []
    k = intrinsics_matrix(70.0, 70.0, 47.5, 35.5)
    for seed in range(4):
        scene = random_scene(np.random.default_rng(seed), 68.9, 0.75, 0.3, 10.0)
        aif, depth = render_views(scene, EYE, k, 96, 72, 2)
        assert torch.isfinite(depth).all()  # walls catch every ray
        lum = aif[0].mean(0)
        grad = torch.maximum((lum[1:, 1:] - lum[:-1, 1:]).abs(), (lum[1:, 1:] - lum[1:, :-1]).abs())
        flat_frac.append(float((grad < 0.002).float().mean()))
        textured_frac.append(float((grad > 0.02).float().mean()))
    assert np.mean(flat_frac) > 0.05, flat_frac
    assert np.mean(textured_frac) > 0.1, textured_frac


def test_screen_space_culling_matches_testing_every_ray():
    k = intrinsics_matrix(50.0, 50.0, 39.5, 29.5)
    rays = pixel_rays(k, 80, 60, 2)
    for seed in range(3):
        scene = random_scene(np.random.default_rng(seed), 77.3, 0.75, 0.3, 10.0)
        pose = np.eye(4)
        pose[:3, :3] = rotation_xyz(-0.1, 0.05 * seed, 0.02)
        pose[:3, 3] = (0.05, -0.03, 0.1)
        origin, dirs = torch.tensor(pose[:3, 3], dtype=torch.float32), rays.reshape(-1, 3) @ torch.tensor(
            pose[:3, :3], dtype=torch.float32).T  # fmt: skip
        t_all, idx_all = intersect(scene, origin, dirs)
        t_grid, idx_grid = intersect_grid(scene, pose, rays)
        # The same surfaces; distances agree to float32 rounding (the two paths rotate the rays in
        # matrix products of different shapes, which round differently on some CPUs).
        assert torch.equal(idx_all, idx_grid)
        torch.testing.assert_close(t_grid, t_all, rtol=1e-5, atol=1e-5)
