"""Sanity check of the training pipeline: can the network fit a handful of cached clips?

    python -m training.overfit_check --config training/configs/dfd_recurrent.yaml --clips 1 6 11 16 --iters 300

If the losses do not fall close to zero here, something between data, model and loss is broken;
if they do, a poor held-out score is a matter of data, capacity or training length.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dfd_depth_ros.network import DfDNet
from training.data import ClipCache
from training.train import TrainConfig, clip_losses, rollout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training YAML (its data section names the cache)")
    ap.add_argument("--cache", default="data/cache", help="cache root folder")
    ap.add_argument("--clips", type=int, nargs="+", default=[1, 6, 11, 16], help="clip indices to fit")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args(argv)
    cfg = TrainConfig.from_yaml(args.config)
    torch.manual_seed(cfg.seed)
    data = ClipCache(Path(args.cache) / cfg.data.key())
    batch = data.batch(np.array(args.clips), all_in_focus=cfg.all_in_focus)
    net = DfDNet(cfg.model)
    opt = torch.optim.Adam(net.parameters(), args.lr)
    t0 = time.perf_counter()
    for it in range(args.iters + 1):
        terms = clip_losses(cfg, rollout(net, batch["image"], batch["lens"], cfg.model.recurrent), batch["depth"],
                            batch["lens"])
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        if it % 50 == 0:
            losses = " ".join(f"{k}={v.item():.3f}" for k, v in terms.items())
            print(f"{it:5d} {time.perf_counter() - t0:6.0f}s {losses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
