"""The path-traced benchmark generator (benchmark/): bags that follow the contract, thin-lens blur
that matches c = fx D |1/focus - 1/z|, pinhole z-depth ground truth, sensor noise, the set itself.

The Mitsuba tests render tiny images with the scalar_rgb variant (about 20 s in all on 2 cores);
they skip when mitsuba is not installed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmark import camera, sensor
from benchmark.sequences import DEV_SEQUENCES, SEQUENCES, by_name, check_set
from dfd_depth_ros.optics import LensState

VARIANT = "scalar_rgb"
SKY = "afhunt_slide_outdoor_sky"  # rgb8, mcap, sky
MONO = "afhunt_pan_tabletop_weak"  # mono8, sqlite3, weak lens


# --------------------------------------------------------------------------------------- the set


def test_set_covers_the_promised_cases():
    check_set()
    assert len(SEQUENCES) >= 12
    weak = [s for s in SEQUENCES if s.lens_regime == "weak"]
    assert len(weak) >= 2 and all(1.0 <= s.blur_scale_pxm <= 2.0 for s in weak)
    assert any(s.scene.layout == "outdoor" for s in SEQUENCES)  # the sky
    assert {s.motion for s in SEQUENCES} == set(camera.MOTIONS)


def test_the_dev_set_is_new_scenes_of_the_same_kinds():
    """Model selection happens on DEV_SEQUENCES: other seeds, so no scene of the blind test set is looked at."""
    test_by_name = {s.name: s for s in SEQUENCES}
    assert len(DEV_SEQUENCES) == sum(s.lens_regime != "weak" for s in SEQUENCES)
    for dev in DEV_SEQUENCES:
        test = test_by_name[dev.name.removeprefix("dev_")]
        assert by_name(dev.name) == dev
        assert dev.scene.seed != test.scene.seed and dev.seed != test.seed and dev.spec_hash() != test.spec_hash()
        assert (dev.schedule, dev.schedule_params, dev.motion, dev.scene.layout, dev.width_px) == (
            test.schedule, test.schedule_params, test.motion, test.scene.layout, test.width_px)


def test_focus_schedules_behave_like_their_names():
    n = 40
    sweep = camera.focus_schedule_m("sweep", n, {"near_m": 0.5, "far_m": 4.0, "period_frames": 9.7})
    assert sweep.min() == pytest.approx(0.5, rel=0.02) and sweep.max() == pytest.approx(4.0, rel=0.05)
    assert not np.allclose(sweep[:10], sweep[10:20])  # 9.7 frames: no frame repeats a frame 10 before
    with pytest.raises(ValueError):
        camera.focus_schedule_m("sweep", n, {"near_m": 0.5, "far_m": 4.0, "period_frames": 10.0})
    stack = camera.focus_schedule_m("focal_stack", 9, {"stack_m": [0.5, 1.0, 2.5]})
    assert np.allclose(stack, [0.5, 1.0, 2.5] * 3)
    rack = camera.focus_schedule_m("rack", 30, {"from_m": 0.45, "to_m": 3.0, "start_frame": 8, "pull_frames": 10})
    assert np.allclose(rack[:9], 0.45) and np.allclose(rack[18:], 3.0) and np.all(np.diff(rack) >= 0)
    hunt = camera.focus_schedule_m("af_hunt", 30, {"start_m": 4.0, "target_m": 0.8})
    dpt, target = 1.0 / hunt, 1.0 / 0.8
    assert dpt.max() > target + 0.2 * (target - 0.25)  # overshoots the target by > 20 % of the step
    assert abs(dpt[-1] - target) < 0.01  # and settles


@pytest.mark.parametrize("motion", camera.MOTIONS)
def test_camera_poses_are_rigid_and_move(motion):
    poses = [camera.camera_pose(motion, t, {"pitch_down_deg": 10.0}) for t in (0.0, 0.5, 1.0)]
    for T in poses:
        R = T[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(1.0)
        assert R[1, 2] > 0.1  # pitched down: the optical axis points to +y (down) in the world
    moved = not np.allclose(poses[0], poses[2])
    assert moved == (motion != "static")


# --------------------------------------------------------------------------------------- sensor


def test_sensor_noise_is_shot_plus_read_and_low_light_is_noisier():
    rng = np.random.default_rng(1)
    flat = np.full((200, 200, 3), 0.3, dtype=np.float32)
    flat[0, 0] = 1.0  # a highlight: AE uses the 99th percentile
    out = {}
    for name, model in (("normal", sensor.NORMAL_LIGHT), ("low", sensor.LOW_LIGHT)):
        exposure = sensor.auto_exposure(flat, model)
        img = sensor.apply_sensor(flat, exposure, model, rng)
        assert img.dtype == np.uint8 and img.shape == flat.shape
        out[name] = (img[1:, 1:].astype(np.float64), exposure)
    normal, low = out["normal"][0], out["low"][0]
    # AE in normal light: 0.85 of the full well at the 99th percentile (0.3 here), sRGB encoded
    assert normal.mean() == pytest.approx(255 * sensor.srgb_oetf(0.85), abs=1.5)
    assert low.mean() < normal.mean() - 30  # 1/24 of the light with 16x gain is darker
    # normal light: std of the electron count is sqrt(N + read^2) -> about 1 DN at this level
    e_normal = 0.3 * out["normal"][1]
    slope = 255 * (sensor.srgb_oetf(0.851) - sensor.srgb_oetf(0.849)) / 0.002  # DN per unit raw
    expected_dn = slope * math.sqrt(e_normal + 2.5**2) / 6000.0
    assert normal.std() == pytest.approx(expected_dn, rel=0.2)
    assert low.std() > 3 * normal.std()


# --------------------------------------------------------------------------------------- Mitsuba


@pytest.fixture(scope="module")
def mitsuba_scalar():
    mi = pytest.importorskip("mitsuba")
    return mi


def _plane_scene(x_edge_m: float, z_m: float, kind: str, half_m: float = 3.0, half_plane: bool = False):
    from benchmark.scenes import Material, Scene, Shape, rect_matrix

    centre_x = x_edge_m + half_m if half_plane else x_edge_m  # half plane: starts at x_edge; else its middle
    shape = Shape(kind="rectangle", role="plane", matrix=rect_matrix((centre_x, 0.0, z_m), half_m, half_m),
                  material=Material(kind, 1, nearest=True))
    return Scene([shape], env_rgb=(1.0, 1.0, 1.0), sun_rgb=(0.0, 0.0, 0.0))


def _renderer(scene, width, height, fov_deg, spp):
    from benchmark.render import RenderSettings, SceneRenderer

    return SceneRenderer(scene, RenderSettings(width_px=width, height_px=height, spp=spp, variant=VARIANT), fov_deg)


@pytest.mark.parametrize("z_m, focus_m", [(2.0, 1.0), (0.6, 1.5)], ids=["behind_focus", "in_front_of_focus"])
def test_step_edge_blur_matches_thin_lens_formula(mitsuba_scalar, z_m, focus_m):
    from dfd_depth_ros.evaluation.edge_fit import fit_edge

    width, height, fov = 96, 24, 60.0
    cam_x = 0.013
    x_edge = 0.05
    blur_scale = 12.0  # fx * D, px m
    r = _renderer(_plane_scene(x_edge, z_m, "step"), width, height, fov, spp=256)
    fx = r.fx_px
    lens = LensState(focus_m, 2.0, camera.lens_for_blur_scale(blur_scale, fx, 2.0))
    pose = np.eye(4)
    pose[0, 3] = cam_x
    img = r.radiance(pose, lens, seed=3)
    profile = img.mean(axis=(0, 2))
    fit = fit_edge(profile)
    expected = lens.blur_diameter_px(z_m, fx)
    assert 5.0 < expected < 13.0
    assert fit.diameter_px == pytest.approx(expected, abs=1.0)
    # the edge lands where K and the pose put it: x = W/2 + fx (x_edge - cam_x) / z (pixel i spans [i, i+1])
    assert fit.edge_px == pytest.approx(width / 2 + fx * (x_edge - cam_x) / z_m, abs=0.3)
    assert fit.hi > fit.lo  # bright side on the right, as in the world
    # an in-focus render of the same edge is sharp (no filter blur from the renderer)
    sharp = fit_edge(r.radiance(pose, LensState(z_m, 2.0, lens.focal_length_m), seed=4).mean(axis=(0, 2)))
    assert sharp.diameter_px < 1.5  # a step sampled by 1-px pixels (the fit cannot resolve c < ~1 px)


def test_ground_truth_is_pinhole_z_depth_with_nan_sky(mitsuba_scalar):
    width, height, fov, z_plane = 64, 48, 50.0, 2.0
    x_edge = 0.1234
    r = _renderer(_plane_scene(x_edge, z_plane, "flat", half_plane=True), width, height, fov, spp=1)
    yaw = math.radians(10.0)
    pose = np.eye(4)
    pose[:3, :3] = [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
    pose[0, 3] = 0.02
    depth = r.depth_m(pose)
    assert depth.dtype == np.float32 and depth.shape == (height, width)
    u = (np.arange(width) + 0.5 - width / 2) / r.fx_px
    v = (np.arange(height) + 0.5 - height / 2) / r.fx_px
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((height, width))), axis=-1)
    world = rays @ pose[:3, :3].T  # ray direction in the world, z component 1 in the camera
    t = (z_plane - pose[2, 3]) / world[..., 2]  # camera z-depth of the hit with the plane z = z_plane
    hit_x = pose[0, 3] + t * world[..., 0]
    expect = np.where(hit_x >= x_edge, t, np.nan)
    assert np.array_equal(np.isnan(depth), np.isnan(expect))  # sky exactly where the pixel centre misses
    assert np.isnan(depth).any() and np.isfinite(depth).any()
    assert np.nanmax(np.abs(depth - expect)) < 1e-4  # z-depth, not ray length (which would differ by 3 %)


def _messages(bag):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    out = {}
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(ts.deserialize_cdr(raw, conn.msgtype))
    return types, out


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_tiny_bags_follow_the_contract_and_resume(mitsuba_scalar, tmp_path):
    from benchmark import build
    from dfd_depth_ros.evaluation.bagio import read_sequence_bag, write_sequence_bag

    out = tmp_path / "bags"
    rc = build.main(["--tiny", "--out", str(out), "--only", SKY, MONO, "--variant", VARIANT, "--no-progress",
                     "--keep-frames"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    for name in (SKY, MONO):
        spec = by_name(name)
        suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[spec.storage]
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(["metadata.yaml", name + suffix])
        types, msgs = _messages(out / name)
        assert types == {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/camera_info":
                         "sensor_msgs/msg/CameraInfo", "/camera/lens_state": "sensor_msgs/msg/JointState",
                         "/camera/depth_gt": "sensor_msgs/msg/Image"}
        images, depths = msgs["/camera/image_raw"], msgs["/camera/depth_gt"]
        assert len(images) == len(depths) == 3
        stamps = [_stamp(m) for m in images]
        for topic in ("/camera/camera_info", "/camera/lens_state", "/camera/depth_gt"):
            assert [_stamp(m) for m in msgs[topic]] == stamps  # one shared stamp per frame
        assert {m.encoding for m in images} == {spec.encoding}
        assert {m.encoding for m in depths} == {"32FC1"}
        seq = read_sequence_bag(out / name, require_depth=True)
        assert len(seq) == 3 and seq.meta["schedule"] == spec.schedule and seq.meta["motion"] == spec.motion
        assert seq.meta["lens_regime"] == spec.lens_regime and seq.meta["low_light"] == spec.low_light
        plan = manifest["sequences"][name]["plan"]
        expect_focus = camera.focus_schedule_m(spec.schedule, 3, spec.schedule_params)
        for frame, f in zip(seq, expect_focus):
            assert frame.lens.focus_distance_m == pytest.approx(f)
            assert frame.lens.f_number == pytest.approx(spec.f_number)
            assert frame.fx_px == pytest.approx(camera.fx_from_fov_px(spec.fov_deg, 64))
            assert frame.lens.blur_scale_pxm(frame.fx_px) == pytest.approx(plan["blur_scale_pxm"], rel=1e-3)
            d = frame.depth_m
            assert d.dtype == np.float32 and np.nanmin(d) > 0.25 and np.nanmax(d) < 12.0
            assert 20 < frame.image.mean() < 235  # exposed, neither black nor clipped
        if name == SKY:
            d = seq[0].depth_m
            assert np.isnan(d[: d.shape[0] // 4]).mean() > 0.4  # the sky (top of the image, behind poles) has no depth
            assert np.isfinite(d[-d.shape[0] // 4:]).all()  # the ground (bottom) has
        # the content hash ignores storage: the same frames written the other way hash the same
        other = tmp_path / f"{name}-other"
        write_sequence_bag(seq, other, storage="sqlite3" if spec.storage == "mcap" else "mcap",
                           encoding=spec.encoding)
        recorded = manifest["sequences"][name]["rendered"]["content_sha256"]
        assert build.bag_content_sha256(other) == recorded
    # up to date: a second run renders nothing
    assert build.build([build.sequences_mod.tiny(by_name(SKY))], out, 4, out / "manifest.json", VARIANT,
                       progress=False) == {SKY: "skipped"}
    # interrupted: the bag is gone and one cached frame too -> only that frame is rendered, same content
    import shutil

    shutil.rmtree(out / SKY)
    cached = next((out / ".frames").glob(f"{SKY}-*"))
    (cached / "frame_0001.npz").unlink()
    result = build.build([build.sequences_mod.tiny(by_name(SKY))], out, 4, out / "manifest.json", VARIANT,
                         progress=False)
    assert result == {SKY: "rendered"}
    again = json.loads((out / "manifest.json").read_text())["sequences"][SKY]["rendered"]
    assert again["frames_rendered"] == 1
    assert again["content_sha256"] == manifest["sequences"][SKY]["rendered"]["content_sha256"]
    assert not cached.exists()  # the frame cache is dropped once the bag is complete
