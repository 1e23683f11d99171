"""The seeded, resumable run folder that the single-thread trainers (train_volume, train_focus_volume) share.

    last = start_run(runs, name, seed)                        # runs/<name>/last.pt (it may exist: resume from it)
    start, ckpt = resume_run(last, opt, rng)                  # 0, None for a new run
    save_run(last, net, opt, sched, it, rng, train_config=..., **extra)
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch


def start_run(runs: Path, name: str, seed: int) -> Path:
    """One CPU thread, Python/numpy/torch seeded with ``seed``, runs/<name>/ made; returns its last.pt path."""
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    out = Path(runs) / name
    out.mkdir(parents=True, exist_ok=True)
    return out / "last.pt"


def resume_run(last: Path, opt: torch.optim.Optimizer, rng: np.random.Generator) -> tuple[int, dict | None]:
    """(iteration to start from, the checkpoint or None): restores the optimiser and both RNGs from ``last`` if it
    exists; the weights and the learning-rate schedule are the caller's (``ckpt["model"]``, ``ckpt["sched"]``)."""
    if not last.exists():
        return 0, None
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    opt.load_state_dict(ckpt["opt"])
    rng.bit_generator.state = ckpt["rng"]
    torch.set_rng_state(ckpt["torch_rng"])
    return ckpt["iter"], ckpt


def save_run(last: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, sched, it: int, rng: np.random.Generator,
             **extra) -> None:  # fmt: skip
    """Write the checkpoint ``resume_run`` reads: weights, optimiser, schedule, iteration, RNGs, the model's config
    (``net.cfg.to_dict()``) and ``extra`` (the training config, the data it saw)."""
    torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "iter": it,
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "model_config": net.cfg.to_dict(), **extra}, last)  # fmt: skip
