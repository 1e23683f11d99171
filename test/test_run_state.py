"""The trainers' run folder: a resumed run continues where the checkpoint left it, with the same random draws."""

from __future__ import annotations

import numpy as np
import torch

from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet
from training.run_state import resume_run, save_run, start_run


def _run(last, iters: int, stop_at: int | None = None) -> tuple[list[float], FocusVolumeNet]:
    """A few AdamW steps on a small readout with random targets; stops (after saving) at ``stop_at``."""
    net = FocusVolumeNet(FocusVolumeConfig(width=4, top_width=4))
    opt = torch.optim.AdamW(net.readout.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=iters)
    rng = np.random.default_rng(0)
    start, ckpt = resume_run(last, opt, rng)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        sched.load_state_dict(ckpt["sched"])
    draws = []
    for it in range(start, iters):
        x = torch.randn(1, 32 + 9, 8, 8) * float(rng.random())
        loss = net.readout(x).square().mean()
        draws.append(float(rng.random()) + float(torch.rand(())))  # both RNGs the checkpoint carries
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if stop_at is not None and it + 1 == stop_at:
            save_run(last, net, opt, sched, it + 1, rng, train_config={"iters": iters})
            return draws, net
    return draws, net


def test_a_resumed_run_continues_with_the_same_draws_and_weights(tmp_path):
    whole, net_whole = _run(start_run(tmp_path, "whole", 0), 6)
    last = start_run(tmp_path, "split", 0)
    first, _ = _run(last, 6, stop_at=3)
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["iter"] == 3 and ckpt["model_config"]["top_width"] == 4 and ckpt["train_config"] == {"iters": 6}
    torch.manual_seed(12345)  # whatever happened in between: the checkpoint restores the torch RNG
    rest, net_split = _run(last, 6)
    assert first + rest == whole
    for a, b in zip(net_whole.state_dict().values(), net_split.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
