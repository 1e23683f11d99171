"""Train a DfD model: ``python -m training.train --config training/configs/dfd_recurrent.yaml``.

Seeded, resumable (re-run the same command to continue from runs/<name>/last.pt), logs to
TensorBoard (runs/<name>/tb) and shows a tqdm bar. Uses CUDA when present and DDP under
torchrun (``torchrun --nproc_per_node=N -m training.train --config ...``).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from dfd_depth_ros.network import DfDNet, ModelConfig, count_parameters
from training import losses as L
from training.data import ClipCache, ClipSetConfig, build_cache


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (0 disables a term; the ablation switches them off one by one)."""

    inv_l1: float = 1.0
    silog: float = 0.5
    grad: float = 0.5
    temporal: float = 0.5
    blur: float = 0.2
    sign: float = 0.1
    conf: float = 0.05


@dataclass(frozen=True)
class TrainConfig:
    """One training run; loaded from YAML, saved next to every checkpoint."""

    name: str = "dfd_recurrent"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: ClipSetConfig = field(default_factory=ClipSetConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    all_in_focus: bool = False  # train on all-in-focus frames (the monocular baseline)
    iters: int = 3000
    batch: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    image_every: int = 200
    threads: int = 0  # torch CPU threads; 0 = torch's default

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        raw = dict(raw)
        raw["model"] = ModelConfig.from_dict({"name": raw.get("name", cls.name), **raw.get("model", {})})
        data = dict(raw.get("data", {}))
        if "schedules" in data:
            data["schedules"] = tuple(data["schedules"])
        if "motions" in data:
            data["motions"] = tuple(data["motions"])
        raw["data"] = ClipSetConfig(**data)
        raw["loss"] = LossWeights(**raw.get("loss", {}))
        return cls(**raw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["data"]["schedules"] = list(self.data.schedules)
        d["data"]["motions"] = list(self.data.motions)
        return d


def valid_mask(depth_m: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Pixels with finite ground truth inside the model's output range."""
    return (torch.isfinite(depth_m) & (depth_m >= cfg.min_depth_m) & (depth_m <= cfg.max_depth_m)).float()


def rollout(model, image, lens, recurrent: bool):
    """Run a clip (B,T,...) through the model frame by frame; returns dict of (B,T,1,H,W) stacks."""
    b, t, _, h, w = image.shape
    net = model.module if hasattr(model, "module") else model
    state = net.initial_state(b, h, w, device=image.device)
    outs = []
    for i in range(t):
        out = model.forward_all(image[:, i], lens[:, i], state) if not hasattr(model, "module") else \
            model(image[:, i], lens[:, i], state, all_outputs=True)
        state = out["state"] if recurrent else torch.zeros_like(out["state"])
        outs.append(out)
    return {k: torch.stack([o[k] for o in outs], 1) for k in outs[0] if k != "state"}


def clip_losses(cfg: TrainConfig, out: dict, depth: torch.Tensor, lens: torch.Tensor) -> dict[str, torch.Tensor]:
    """All loss terms of one batch of clips; returns a dict including 'total'."""
    w = cfg.loss
    mask = valid_mask(depth, cfg.model)
    gt = torch.where(mask > 0, depth, torch.ones_like(depth))
    pred = out["depth_m"]
    flat = lambda x: x.flatten(0, 1)  # noqa: E731  (B,T,...) -> (B*T,...)
    terms = {
        "inv_l1": L.inverse_depth_l1(pred, gt, mask),
        "silog": L.silog(pred, gt, mask),
        "grad": L.gradient_matching(flat(pred), flat(gt), flat(mask)),
        "temporal": L.temporal_consistency(pred, gt, mask) if pred.shape[1] > 1 else pred.new_zeros(()),
        "conf": L.confidence_bce(out["confidence"], pred, gt, mask),
    }
    if "blur_px" in out:
        k = lens[..., 0].reshape(*lens.shape[:2], 1, 1, 1)
        inv_f = lens[..., 1].reshape(*lens.shape[:2], 1, 1, 1)
        signed = k * (inv_f - 1.0 / gt)
        terms["blur"] = L.blur_l1(out["blur_px"], signed.abs(), mask)
        terms["sign"] = L.sign_bce(out["p_behind"], signed, mask)
    terms["total"] = sum(getattr(w, name) * value for name, value in terms.items())
    return terms


class _DDPWrapper(torch.nn.Module):
    """Lets DDP call forward_all (DDP only hooks forward)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image, lens, state, all_outputs=True):
        return self.net.forward_all(image, lens, state)


def _setup_distributed():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        return rank, world
    return 0, 1


def save_checkpoint(path: Path, net, opt, sched, cfg: TrainConfig, it: int, metrics: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "iteration": it, "config": cfg.to_dict(), "model_config": cfg.model.to_dict(), "metrics": metrics,
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}},
               tmp)
    tmp.replace(path)


def load_model(path: str | Path, map_location="cpu") -> tuple[DfDNet, dict]:
    """A checkpoint -> (model in eval mode, checkpoint dict). Weights load strictly."""
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    net = DfDNet(ModelConfig.from_dict(ckpt["model_config"]))
    net.load_state_dict(ckpt["model"], strict=True)
    return net.eval(), ckpt


def train(cfg: TrainConfig, runs_dir: str | Path = "runs", cache_root: str | Path = "data/cache") -> Path:
    rank, world = _setup_distributed()
    device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(runs_dir) / cfg.name
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)

    folder = build_cache(cfg.data, cache_root) if rank == 0 else Path(cache_root) / cfg.data.key()
    if world > 1:
        torch.distributed.barrier()
    data = ClipCache(folder)
    net = DfDNet(cfg.model).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = min(100, cfg.iters // 10)

    def lr_factor(i: int) -> float:  # linear warm-up, then cosine decay to zero
        return min(1.0, (i + 1) / max(warmup, 1)) * 0.5 * (1 + math.cos(math.pi * min(i, cfg.iters) / cfg.iters))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    start = 0
    ckpt_path = run / "last.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["model_config"] != cfg.model.to_dict():
            raise ValueError(f"{ckpt_path} was trained with another model config; use a new run name")
        net.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start = ckpt["iteration"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        random.setstate(ckpt["rng"]["python"])
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(_DDPWrapper(net).to(device))

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tb"))
        print(f"{cfg.name}: {count_parameters(net) / 1e6:.3f} M parameters, {len(data)} clips, "
              f"iterations {start}..{cfg.iters} on {device}")
    bar = tqdm(range(start, cfg.iters), initial=start, total=cfg.iters, disable=rank != 0, desc=cfg.name)
    t_last = time.perf_counter()
    terms = {}
    for it in bar:
        idx = np.random.randint(0, len(data), size=cfg.batch)
        flip = np.random.rand(cfg.batch) < 0.5
        batch = {k: v.to(device) for k, v in data.batch(idx, flip=flip, all_in_focus=cfg.all_in_focus).items()}
        out = rollout(model, batch["image"], batch["lens"], cfg.model.recurrent)
        terms = clip_losses(cfg, out, batch["depth"], batch["lens"])
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if rank == 0:
            if (it + 1) % cfg.log_every == 0:
                now = time.perf_counter()
                for k, v in terms.items():
                    writer.add_scalar(f"loss/{k}", v.item(), it + 1)
                writer.add_scalar("train/lr", sched.get_last_lr()[0], it + 1)
                writer.add_scalar("train/s_per_iter", (now - t_last) / cfg.log_every, it + 1)
                t_last = now
                bar.set_postfix(loss=f"{terms['total'].item():.3f}", inv=f"{terms['inv_l1'].item():.3f}")
            if (it + 1) % cfg.image_every == 0:
                writer.add_images("depth/pred_gt", _depth_panel(out["depth_m"][0, -1], batch["depth"][0, -1]),
                                  it + 1, dataformats="HWC")
            if (it + 1) % cfg.ckpt_every == 0 or it + 1 == cfg.iters:
                save_checkpoint(ckpt_path, net, opt, sched, cfg, it + 1,
                                {k: float(v.item()) for k, v in terms.items()})
    if writer:
        writer.close()
    return ckpt_path


def _depth_panel(pred_m: torch.Tensor, gt_m: torch.Tensor) -> np.ndarray:
    from dfd_depth_ros.viz import colorize_depth

    p = colorize_depth(pred_m[0].detach().cpu().numpy())
    g = colorize_depth(gt_m[0].cpu().numpy())
    return np.concatenate([p, g], axis=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML training config (training/configs/*.yaml)")
    ap.add_argument("--runs", default="runs", help="folder for checkpoints and TensorBoard logs")
    ap.add_argument("--cache", default="data/cache", help="folder for the rendered clip cache")
    ap.add_argument("--iters", type=int, help="override the number of iterations")
    ap.add_argument("--threads", type=int, help="override the number of torch CPU threads")
    args = ap.parse_args(argv)
    cfg = TrainConfig.from_yaml(args.config)
    overrides = {k: v for k, v in (("iters", args.iters), ("threads", args.threads)) if v}
    if overrides:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides})
    path = train(cfg, args.runs, args.cache)
    print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
