"""Losses behave as documented; a tiny training run checkpoints its config, resumes, and loads strictly."""

import numpy as np
import pytest
import torch
import yaml

from training import losses as L
from training.data import (
    HELDOUT_F_NUMBER,
    ClipCache,
    ClipSetConfig,
    build_cache,
    in_heldout_lens_band,
    render_clip_for,
)
from training.train import TrainConfig, load_model, train


def test_losses_vanish_for_a_perfect_prediction_and_grow_with_error():
    gt = torch.rand(2, 1, 16, 16) * 5 + 0.5
    mask = torch.ones_like(gt)
    assert L.inverse_depth_l1(gt, gt, mask) == 0
    assert L.silog(gt, gt, mask) < 1e-3
    assert L.gradient_matching(gt, gt, mask) == 0
    assert L.inverse_depth_l1(gt * 1.2, gt, mask) < L.inverse_depth_l1(gt * 1.5, gt, mask)
    # A global scale error has no log-gradient: the edge term ignores it, the metric terms do not.
    assert L.gradient_matching(gt * 1.3, gt, mask) < 1e-6
    assert L.silog(gt * 1.3, gt, mask) > 0.05


def test_temporal_consistency_is_the_flicker_of_the_log_error():
    gt = torch.rand(1, 3, 1, 8, 8) + 1
    mask = torch.ones_like(gt)
    steady = gt * 1.1
    assert L.temporal_consistency(steady, gt, mask) < 1e-6
    jumpy = gt * torch.tensor([1.1, 0.9, 1.1]).reshape(1, 3, 1, 1, 1)
    assert L.temporal_consistency(jumpy, gt, mask) == pytest.approx(np.log(1.1) - np.log(0.9), rel=1e-4)


def test_sign_loss_ignores_pixels_at_focus():
    p = torch.full((1, 1, 4, 4), 0.5)
    at_focus = torch.zeros(1, 1, 4, 4)
    assert L.sign_bce(p, at_focus, torch.ones_like(p)) == 0


def test_tiny_training_run_checkpoints_resumes_and_loads(tmp_path):
    raw = {
        "name": "tiny", "iters": 2, "batch": 2, "ckpt_every": 1, "log_every": 1, "image_every": 1,
        "model": {"widths": [4, 4, 8], "hidden": 4},
        "data": {"clips": 2, "frames": 3, "width_px": 64, "height_px": 48, "shard_clips": 2},
    }
    cfg = TrainConfig.from_dict(raw)
    ckpt = train(cfg, tmp_path / "runs", tmp_path / "cache")
    saved = yaml.safe_load((tmp_path / "runs" / "tiny" / "config.yaml").read_text())
    assert TrainConfig.from_dict(saved) == cfg
    state = torch.load(ckpt, weights_only=False)
    assert state["iteration"] == 2 and state["model_config"] == cfg.model.to_dict()
    # Re-running with more iterations resumes from the checkpoint instead of starting over.
    cfg4 = TrainConfig.from_dict({**raw, "iters": 4})
    train(cfg4, tmp_path / "runs", tmp_path / "cache")
    assert torch.load(ckpt, weights_only=False)["iteration"] == 4
    net, _ = load_model(ckpt)
    depth, conf, _ = net(torch.rand(1, 3, 48, 64), torch.tensor([[3.0, 1.0]]), net.initial_state(1, 48, 64))
    assert depth.shape == (1, 1, 48, 64) and torch.isfinite(depth).all()
    # The TensorBoard log holds every iteration once (resume does not duplicate) and plots as a picture.
    from training.plot_curves import plot, read_scalars

    steps, values = read_scalars(tmp_path / "runs" / "tiny", "loss/total")
    assert steps.tolist() == [1, 2, 3, 4] and np.all(np.isfinite(values))
    png = plot([tmp_path / "runs" / "tiny"], ["loss/inv_l1", "loss/total"], tmp_path / "curves.png", smooth_n=2)
    assert png.stat().st_size > 5000
    # A changed architecture under the same run name is refused, not silently mixed.
    with pytest.raises(ValueError, match="another model config"):
        train(TrainConfig.from_dict({**raw, "iters": 5, "model": {"widths": [4, 4, 8], "hidden": 6}}),
              tmp_path / "runs", tmp_path / "cache")


def test_clip_cache_serves_clips_and_training_avoids_the_heldout_lens_band(tmp_path):
    cfg = ClipSetConfig(clips=3, frames=2, width_px=48, height_px=32, render_width_px=96, render_height_px=64,
                        shard_clips=2)
    data = ClipCache(build_cache(cfg, tmp_path))
    assert len(data) == 3
    b = data.batch([0, 2], flip=np.array([True, False]), all_in_focus=True)
    assert b["image"].shape == (2, 2, 3, 32, 48) and b["depth"].shape == (2, 2, 1, 32, 48)
    assert b["lens"].shape == (2, 2, 2)
    assert float(b["image"].max()) <= 1.0 and torch.isfinite(b["depth"]).all()


def test_rendered_training_clips_avoid_the_heldout_lens_band_and_test_clips_use_it(monkeypatch):
    """The lens of every rendered clip, not the predicate on constants: the training split never shows a lens
    from the held-out band (its draws that land there are drawn again), the test split always does."""
    from dfd_depth_ros.synthetic import sequences

    drawn: list[tuple[float, float]] = []  # (f-number, focal length m) of every clip rendered, retries included
    real_render = sequences.render_clip

    def recording_render(*args, **kwargs):
        clip = real_render(*args, **kwargs)
        drawn.append((float(clip["f_number"][0]), float(clip["focal_length_m"][0])))
        return clip

    monkeypatch.setattr(sequences, "render_clip", recording_render)
    train = ClipSetConfig(split="train", clips=16, frames=2, width_px=48, height_px=32)
    for i in range(train.clips):
        clip, _ = render_clip_for(train, i)
        f_number, focal_m = clip["f_number"].numpy(), clip["focal_length_m"].numpy()
        assert np.all(f_number == f_number[0]) and np.all(focal_m == focal_m[0]), "one lens per clip"
        assert not in_heldout_lens_band(float(f_number[0]), float(focal_m[0])), (i, f_number[0], focal_m[0])
    # The check has teeth: some of these clips' first draws fell in the band and were rejected.
    assert any(in_heldout_lens_band(*lens) for lens in drawn), drawn
    assert len(drawn) > train.clips

    test = ClipSetConfig(split="test", clips=4, frames=2, width_px=48, height_px=32)
    for i in range(test.clips):
        clip, _ = render_clip_for(test, i)
        f_number = float(clip["f_number"][0])
        assert HELDOUT_F_NUMBER[0] <= f_number <= HELDOUT_F_NUMBER[1], (i, f_number)
