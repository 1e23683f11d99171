"""Sequence generator: determinism, sizes, depth range, focus schedules, lens draws, motion, tensors."""

import dataclasses

import numpy as np
import pytest
import torch

from dfd_depth_ros.optics import blur_diameter_px
from dfd_depth_ros.synthetic.sequences import BASE_STAMP_NS, SequenceConfig, generate_sequence, plan_clip, render_clip
from dfd_depth_ros.synthetic.trajectories import (
    F_NUMBER_RANGE,
    FOCAL_LENGTH_RANGE_M,
    MAX_STEP_M,
    blur_limits_px,
    camera_poses,
    draw_lens,
    focus_schedule,
)

SMALL = dict(width_px=64, height_px=48, num_frames=4)
NEAR_M, FAR_M = 0.5, 6.0


def _dpt(focus_m):
    return 1.0 / np.asarray(focus_m)


def test_same_config_gives_bit_identical_sequences_and_other_seed_does_not():
    cfg = SequenceConfig(**SMALL, seed=7, schedule="focal_stack")
    a, b = generate_sequence(cfg), generate_sequence(cfg)
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.image, fb.image) and np.array_equal(fa.depth_m, fb.depth_m)
        assert np.array_equal(fa.pose, fb.pose) and fa.lens == fb.lens and fa.stamp_ns == fb.stamp_ns
    c = generate_sequence(dataclasses.replace(cfg, seed=8))
    assert not np.array_equal(a[0].image, c[0].image)


def test_odd_image_size_gives_consistent_frames():
    cfg = SequenceConfig(width_px=97, height_px=61, num_frames=3, fps=20.0, schedule="rack", motion="smooth", seed=1)
    seq = generate_sequence(cfg)
    assert seq.name == "rack_smooth_s1" and len(seq) == 3
    assert seq.meta["config"]["width_px"] == 97 and "f_number" in seq.meta["lens"]
    for i, f in enumerate(seq):
        assert f.image.shape == (61, 97, 3) and f.image.dtype == np.uint8
        assert f.depth_m.shape == (61, 97) and f.depth_m.dtype == np.float32
        assert f.pose.shape == (4, 4) and f.K[0, 2] == 48.0 and f.K[1, 2] == 30.0
        assert f.stamp_ns == BASE_STAMP_NS + i * 50_000_000


@pytest.mark.parametrize("seed", range(4))
def test_depth_is_finite_and_inside_the_configured_range(seed):
    cfg = SequenceConfig(width_px=80, height_px=60, num_frames=3, seed=seed, min_depth_m=0.4, max_depth_m=8.0)
    depth = render_clip(cfg)["depth_m"]
    assert torch.isfinite(depth).all()
    assert depth.min() >= 0.4 and depth.max() <= 8.0
    at_bounds = ((depth <= 0.4 * 1.001) | (depth >= 8.0 * 0.999)).float().mean()
    assert at_bounds < 0.01  # the layout keeps depths in range; clamping is only a guard


def test_fixed_schedule_is_constant_and_inside_the_range():
    focus, _ = focus_schedule(np.random.default_rng(0), "fixed", 30, 30.0, NEAR_M, FAR_M)
    assert np.all(focus == focus[0]) and NEAR_M <= focus[0] <= FAR_M


@pytest.mark.parametrize("seed", range(5))
def test_sweep_covers_near_and_far_in_dioptres(seed):
    focus, _ = focus_schedule(np.random.default_rng(seed), "sweep", 30, 30.0, NEAR_M, FAR_M)
    dpt, span = _dpt(focus), 1 / NEAR_M - 1 / FAR_M
    assert focus.min() >= NEAR_M and focus.max() <= FAR_M
    assert dpt.max() > 1 / NEAR_M - 0.1 * span and dpt.min() < 1 / FAR_M + 0.1 * span


@pytest.mark.parametrize("seed", range(5))
def test_focal_stack_cycles_through_n_distinct_positions(seed):
    focus, info = focus_schedule(np.random.default_rng(seed), "focal_stack", 60, 30.0, NEAR_M, FAR_M)
    values = np.unique(focus)
    assert len(values) == info["num_positions"] >= 3
    assert values.min() >= NEAR_M and values.max() <= FAR_M
    period = info["num_positions"] * info["hold_frames"]
    np.testing.assert_array_equal(focus[period : 2 * period], focus[:period])  # repeated


@pytest.mark.parametrize("seed", range(5))
def test_rack_focus_holds_then_moves_from_one_end_to_the_other(seed):
    focus, _ = focus_schedule(np.random.default_rng(seed), "rack", 30, 30.0, NEAR_M, FAR_M)
    dpt, span = _dpt(focus), 1 / NEAR_M - 1 / FAR_M
    assert dpt[0] == dpt[1] and dpt[-1] == dpt[-2]  # holds
    assert abs(dpt[-1] - dpt[0]) > 0.3 * span
    steps = np.diff(dpt)
    assert np.all(steps * np.sign(dpt[-1] - dpt[0]) >= 0)  # one monotonic transition
    assert focus.min() >= NEAR_M and focus.max() <= FAR_M


@pytest.mark.parametrize("seed", range(5))
def test_af_hunt_oscillates_around_targets_inside_the_range(seed):
    focus, info = focus_schedule(np.random.default_rng(seed), "af_hunt", 90, 30.0, NEAR_M, FAR_M)
    assert focus.min() >= NEAR_M and focus.max() <= FAR_M
    steps = np.diff(_dpt(focus))
    reversals = np.sum(np.sign(steps[1:]) * np.sign(steps[:-1]) < 0)
    assert reversals >= 2  # overshoot: the lens turns back
    assert info["hunt_frames"][0] == 0


def test_lens_draws_respect_ranges_and_max_blur():
    rng = np.random.default_rng(0)
    for _ in range(50):
        near, far = rng.uniform(0.3, 1.0), rng.uniform(2.0, 10.0)
        focus = 1 / rng.uniform(1 / far, 1 / near, 10)
        width = int(rng.choice([97, 160, 320, 640]))
        lens = draw_lens(rng, width, rng.uniform(40, 80), focus, near, far, 25.0)
        assert FOCAL_LENGTH_RANGE_M[0] <= lens.focal_length_m <= FOCAL_LENGTH_RANGE_M[1]
        assert F_NUMBER_RANGE[0] <= lens.f_number <= F_NUMBER_RANGE[1]
        worst = max(blur_diameter_px(np.array([near, far]), f, lens.fx_px, lens.focal_length_m, lens.f_number).max()
                    for f in focus)  # fmt: skip
        assert worst == pytest.approx(lens.max_blur_px)
        assert worst <= 25.0 * min(1.0, width / 320) + 1e-9
        if lens.tries > 0:
            assert worst >= blur_limits_px(width, 25.0)[0]


def test_small_images_draw_the_same_lens_with_proportionally_smaller_blur():
    big = plan_clip(SequenceConfig(width_px=320, height_px=240, num_frames=4, seed=3))
    small = plan_clip(SequenceConfig(width_px=160, height_px=120, num_frames=4, seed=3))
    assert small.lens.focal_length_m == big.lens.focal_length_m and small.lens.f_number == big.lens.f_number
    assert small.lens.max_blur_px == pytest.approx(big.lens.max_blur_px / 2, rel=1e-6)


def test_fixed_lens_settings_are_used_as_given():
    cfg = SequenceConfig(**SMALL, focal_length_m=0.012, f_number=2.8, hfov_deg=55.0, schedule="fixed")
    seq = generate_sequence(cfg)
    assert all(f.lens.focal_length_m == 0.012 and f.lens.f_number == 2.8 for f in seq)
    assert seq[0].K[0, 0] == pytest.approx(64 / (2 * np.tan(np.radians(55.0) / 2)))


def test_static_motion_has_identical_poses_and_smooth_motion_small_steps():
    static = camera_poses(np.random.default_rng(0), "static", 20, 30.0, 0.1, 0.07, 0.1)
    assert all(np.array_equal(p, static[0]) for p in static)
    for seed in range(5):
        poses = camera_poses(np.random.default_rng(seed), "smooth", 60, 30.0, 0.2, 0.07, 0.1)
        steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
        assert steps.max() <= MAX_STEP_M * 1.01 and steps.max() > 0
        assert np.linalg.norm(poses[:, :3, 3], axis=1).max() <= 0.2 + 1e-9
        rel = np.einsum("tji,tjk->tik", poses[:-1, :3, :3], poses[1:, :3, :3])
        angle = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
        assert angle.max() < np.radians(1.0)


def test_render_clip_matches_generate_sequence_and_returns_all_in_focus_frames():
    cfg = SequenceConfig(**SMALL, seed=2, schedule="sweep")
    clip = render_clip(cfg, with_aif=True)
    seq = generate_sequence(cfg)
    t, h, w = SMALL["num_frames"], SMALL["height_px"], SMALL["width_px"]
    assert clip["image"].shape == clip["aif"].shape == (t, 3, h, w) and clip["depth_m"].shape == (t, 1, h, w)
    for key in ("focus_distance_m", "f_number", "focal_length_m", "blur_scale_pxm", "stamp_ns"):
        assert clip[key].shape == (t,)
    for i, f in enumerate(seq):
        assert np.array_equal((clip["image"][i] * 255).round().byte().permute(1, 2, 0).numpy(), f.image)
        assert np.array_equal(clip["depth_m"][i, 0].numpy(), f.depth_m)
        assert clip["focus_distance_m"][i].item() == pytest.approx(f.lens.focus_distance_m)
        assert clip["blur_scale_pxm"][i].item() == pytest.approx(f.lens.blur_scale_pxm(f.fx_px))


def test_defocused_frames_are_blurrier_than_all_in_focus_frames():
    cfg = SequenceConfig(width_px=96, height_px=72, num_frames=2, seed=5, noise=False, schedule="fixed",
                         focal_length_m=0.05, f_number=1.4, hfov_deg=45.0, max_blur_px=40.0)  # fmt: skip
    clip = render_clip(cfg, with_aif=True)

    def sharpness(x):
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean().item()

    assert sharpness(clip["image"]) < 0.8 * sharpness(clip["aif"])


def test_noise_changes_pixels_but_not_the_scene():
    cfg = SequenceConfig(**SMALL, seed=4)
    noisy, clean = render_clip(cfg), render_clip(dataclasses.replace(cfg, noise=False))
    assert torch.equal(noisy["depth_m"], clean["depth_m"])
    assert not torch.equal(noisy["image"], clean["image"])
    assert (noisy["image"] - clean["image"]).abs().mean() < 0.05


def test_every_schedule_name_has_an_implementation():
    from dfd_depth_ros.synthetic import SCHEDULES
    from dfd_depth_ros.synthetic.trajectories import _SCHEDULES

    assert tuple(_SCHEDULES) == SCHEDULES


def test_randomised_camera_keeps_scene_lens_and_focus_and_changes_only_the_pixels():
    """SequenceConfig.randomise (training data's domain randomisation) draws the PSF shape, vignetting, tone curve
    and noise per clip, deterministically, within VARIATION; scene, lens, focus and ground truth are the clip's own."""
    from dfd_depth_ros.synthetic.sequences import VARIATION

    plain_cfg = SequenceConfig(**SMALL, seed=11, schedule="sweep")
    rand_cfg = dataclasses.replace(plain_cfg, randomise=True)
    plain, rand = plan_clip(plain_cfg), plan_clip(rand_cfg)
    assert plain.variation == {} and set(rand.variation) == {"gauss_mix", "vignette", "tone_power"}
    assert np.array_equal(plain.focus_m, rand.focus_m) and plain.lens == rand.lens
    lo, hi = VARIATION["tone_power"]
    assert 0 <= rand.variation["gauss_mix"] <= 1 and 0 <= rand.variation["vignette"] <= VARIATION["vignette_max"]
    assert lo <= rand.variation["tone_power"] <= hi
    assert VARIATION["full_well_e"][0] <= rand.noise[0] <= VARIATION["full_well_e"][1]
    a, b = render_clip(rand_cfg), render_clip(rand_cfg)
    assert torch.equal(a["image"], b["image"])
    p = render_clip(plain_cfg)
    assert torch.equal(a["depth_m"], p["depth_m"]) and not torch.equal(a["image"], p["image"])
    draws = [plan_clip(dataclasses.replace(rand_cfg, seed=s)).variation for s in range(12)]
    assert any(d["gauss_mix"] == 0 for d in draws) and any(d["gauss_mix"] > 0 for d in draws)
