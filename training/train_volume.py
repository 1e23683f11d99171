"""Train the cost-volume model (dfd_depth_ros/volume_network.py) in stages, each gated by a held-out figure.

    python -m training.train_volume --name vol_blur2 --stage blur --iters 3000 --batch 16 --lr 3e-3
    python -m training.train_volume --name vol_pair --stage pair --iters 1500 --batch 12 --init runs/vol_blur2/last.pt
    python -m training.train_volume --name vol_pair_e2e --stage e2e --pair --iters 300 --batch 3 \
        --init runs/vol_pair/last.pt
    python -m training.train_volume --name vol_pair_e2e2 --stage e2e --pair --iters 400 --batch 3 --lr 1e-3 \
        --init runs/vol_pair_e2e/last.pt                              # the checkpoint scored in README/benchmark
    python -m training.train_volume --name vol_overfit --stage e2e --overfit-clip 0 --iters 400 \
        --init runs/vol_blur2/last.pt                                  # gate (a): one static sweep clip

Stages: ``pair`` trains BlurNet's joint likelihood of (blur now, blur one frame before) for a model with
pair evidence (cross-entropy against the outer product of the two labels) with the single-frame head beside it;
``blur`` trains only BlurNet, per frame, with cross-entropy against the true blur (soft two-bin labels,
textured pixels weighted up); ``e2e`` unrolls whole clips from the zero state and trains everything on inverse
depth (L1 of log depth), the posterior's likelihood of the true hypothesis and, weakly, the blur cross-entropy.
Seeded, resumable (re-run the same command: it continues from runs/<name>/last.pt), one CPU thread.
Data: the cached clip sets of training/data.py (static focus sweeps, stacks and racks, 160x128).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dfd_depth_ros.volume_network import VolumeConfig, VolumeNet, blur_bin_weights, count_parameters
from training.data import ClipCache, ClipSetConfig, build_cache
from training.run_state import resume_run, save_run, start_run

TRAIN_SET = ClipSetConfig(split="train", clips=240, frames=12, width_px=160, height_px=128,
                          schedules=("sweep", "focal_stack", "rack"), motions=("static",), min_blur_px=6.0,
                          shard_clips=40)  # fmt: skip
TEST_SET = ClipSetConfig(split="test", clips=16, frames=12, width_px=160, height_px=128, schedules=("sweep",),
                         motions=("static",), min_blur_px=6.0, shard_clips=16)  # held-out f-number band
VAL_SET = ClipSetConfig(split="val", clips=16, frames=12, width_px=160, height_px=128, schedules=("sweep",),
                        motions=("static",), min_blur_px=6.0, shard_clips=16)  # unseen scenes, lenses of any kind
NEW_PARAMETERS = ("log_prior", "blur.pair.")  # (prefixes) may be absent from an --init checkpoint of an earlier stage
TEXTURE_GRAD = 0.02  # sRGB gradient magnitude from which a pixel counts as fully textured


@dataclass(frozen=True)
class VolumeTrainConfig:
    name: str
    stage: str = "blur"  # "blur", "pair" or "e2e"
    pair_evidence: bool = False  # the model's VolumeConfig.pair_evidence
    iters: int = 600
    batch: int = 8  # frames (blur) or clips (e2e)
    crop_px: tuple[int, int] = (64, 80)  # (h, w) random crop, multiples of 8; (0, 0) = whole frames
    lr: float = 2e-3
    seed: int = 0
    overfit_clip: int = -1  # >= 0: train on this one clip of the training set only (gate a)
    init: str = ""  # checkpoint to start from (weights only)
    w_nll: float = 0.1
    w_blur: float = 0.1
    ckpt_every: int = 50


def true_blur_px(depth_m: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Blur diameter (N,1,H,W) px of every pixel from z-depth (N,1,H,W) m and lens (N,2)."""
    return lens[:, 0, None, None, None] * (1.0 / depth_m - lens[:, 1, None, None, None]).abs()


def texture_weight(image: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) all-in-focus image -> (N,1,H/2,W/2) weight in [0.2, 1]: 1 where there is texture to read."""
    g = image.mean(1, keepdim=True)
    grad = (g[..., :, 1:] - g[..., :, :-1]).abs()[..., :-1, :] + (g[..., 1:, :] - g[..., :-1, :]).abs()[..., :, :-1]
    grad = F.pad(grad, (0, 1, 0, 1))
    return 0.2 + 0.8 * (F.avg_pool2d(F.max_pool2d(grad, 3, 1, 1), 2) / TEXTURE_GRAD).clamp(0.0, 1.0)


def blur_ce(log_p: torch.Tensor, depth_m: torch.Tensor, lens: torch.Tensor, aif: torch.Tensor,
            bins_px: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Texture-weighted cross-entropy of blur log-probabilities (N,J,h,w) against soft two-bin labels."""
    c_lo = F.avg_pool2d(true_blur_px(depth_m, lens), 2)  # (N,1,h,w)
    labels = blur_bin_weights(c_lo[:, 0], bins_px).permute(0, 3, 1, 2)  # (N,J,h,w)
    weight = texture_weight(aif)
    return ((-(labels * log_p).sum(1, keepdim=True)) * weight).sum() / weight.sum()


def hypothesis_nll(prob: torch.Tensor, inv_gt_lo: torch.Tensor, w_k: torch.Tensor) -> torch.Tensor:
    """Mean -log of the posterior mass (B,K,h,w) at the true inverse depth (B,1,h,w), interpolated on the grid."""
    hat = blur_bin_weights(inv_gt_lo[:, 0], w_k).permute(0, 3, 1, 2)  # linear weights on the two nearest w_k
    return -torch.log((prob * hat).sum(1) + 1e-6).mean()


def _crop(batch: dict, crop: tuple[int, int], rng: np.random.Generator) -> dict:
    h, w = batch["image"].shape[-2:]
    ch, cw = crop
    if not ch or (ch >= h and cw >= w):
        return batch
    top, left = int(rng.integers(0, h - ch + 1)) // 2 * 2, int(rng.integers(0, w - cw + 1)) // 2 * 2
    return {k: (v[..., top:top + ch, left:left + cw] if v.ndim == 5 else v) for k, v in batch.items()}


def _batch(data: ClipCache, idx: np.ndarray, with_aif: bool) -> dict:
    b = data.batch(idx)
    if with_aif:
        b["aif"] = data.batch(idx, all_in_focus=True)["image"]
    return b


def step_blur(net: VolumeNet, data: ClipCache, cfg: VolumeTrainConfig, rng: np.random.Generator) -> dict:
    """One BlurNet step on cfg.batch random frames (random crops)."""
    clips = rng.integers(0, len(data), cfg.batch) if cfg.overfit_clip < 0 else np.full(cfg.batch, cfg.overfit_clip)
    b = _crop(_batch(data, clips, True), cfg.crop_px, rng)
    t = torch.from_numpy(rng.integers(0, b["image"].shape[1], cfg.batch))
    pick = lambda x: x[torch.arange(cfg.batch), t]  # noqa: E731
    log_p = net.blur(pick(b["image"]))
    loss = blur_ce(log_p, pick(b["depth"]), pick(b["lens"]), pick(b["aif"]), net.bins_px)
    return {"loss": loss, "ce": float(loss.detach())}


def pair_ce(log_pair: torch.Tensor, depth_m: torch.Tensor, depth_prev_m: torch.Tensor, lens: torch.Tensor,
            lens_prev: torch.Tensor, aif: torch.Tensor, bins_px: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Texture-weighted cross-entropy of joint (now, before) blur log-probabilities (N,J*J,h,w) against the labels."""
    now = blur_bin_weights(F.avg_pool2d(true_blur_px(depth_m, lens), 2)[:, 0], bins_px)  # (N,h,w,J)
    before = blur_bin_weights(F.avg_pool2d(true_blur_px(depth_prev_m, lens_prev), 2)[:, 0], bins_px)
    labels = (now[..., :, None] * before[..., None, :]).flatten(3).permute(0, 3, 1, 2)  # (N,J*J,h,w)
    weight = texture_weight(aif)
    return ((-(labels * log_pair).sum(1, keepdim=True)) * weight).sum() / weight.sum()


def step_pair(net: VolumeNet, data: ClipCache, cfg: VolumeTrainConfig, rng: np.random.Generator) -> dict:
    """One BlurNet step on cfg.batch random pairs of consecutive frames (static clips: no alignment needed)."""
    clips = rng.integers(0, len(data), cfg.batch) if cfg.overfit_clip < 0 else np.full(cfg.batch, cfg.overfit_clip)
    b = _crop(_batch(data, clips, True), cfg.crop_px, rng)
    t = torch.from_numpy(rng.integers(1, b["image"].shape[1], cfg.batch))
    at = lambda x, dt=0: x[torch.arange(cfg.batch), t - dt]  # noqa: E731
    feat, feat_prev = net.blur.features(at(b["image"])), net.blur.features(at(b["image"], 1))
    single = blur_ce(net.blur.single(feat), at(b["depth"]), at(b["lens"]), at(b["aif"]), net.bins_px)
    joint = pair_ce(net.blur.joint(feat, feat_prev), at(b["depth"]), at(b["depth"], 1), at(b["lens"]),
                    at(b["lens"], 1), at(b["aif"]), net.bins_px)  # fmt: skip
    return {"loss": joint + 0.5 * single, "pair_ce": float(joint.detach()), "ce": float(single.detach())}


def step_e2e(net: VolumeNet, data: ClipCache, cfg: VolumeTrainConfig, rng: np.random.Generator) -> dict:
    """One step over cfg.batch whole clips unrolled from the zero state (random crops)."""
    clips = rng.integers(0, len(data), cfg.batch) if cfg.overfit_clip < 0 else np.full(cfg.batch, cfg.overfit_clip)
    b = _crop(_batch(data, clips, True), cfg.crop_px, rng)
    image, depth, lens, aif = b["image"], b["depth"], b["lens"], b["aif"]
    bsz, frames, _, h, w = image.shape
    state = net.initial_state(bsz, h, w)
    rel = nll = ce = 0.0
    for i in range(frames):
        out = net.forward_all(image[:, i], lens[:, i], state)
        state = out["state"]
        inv_gt = 1.0 / depth[:, i]
        rel = rel + (torch.log(out["inv_depth"]) - torch.log(inv_gt)).abs().mean()
        inv_gt_lo = F.avg_pool2d(inv_gt, 2).clamp(float(net.w_k[0]), float(net.w_k[-1]))
        nll = nll + hypothesis_nll(out["prob"], inv_gt_lo, net.w_k)
        ce = ce + blur_ce(out["log_p"], depth[:, i], lens[:, i], aif[:, i], net.bins_px)
    rel, nll, ce = rel / frames, nll / frames, ce / frames
    loss = rel + cfg.w_nll * nll + cfg.w_blur * ce
    return {"loss": loss, "log_l1": float(rel.detach()), "nll": float(nll.detach()), "ce": float(ce.detach())}


def load_weights(net: VolumeNet, weights: dict, source: str | Path) -> None:
    """Load weights strictly, except that NEW_PARAMETERS may be missing (checkpoints from before they existed)."""
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if not k.startswith(NEW_PARAMETERS)]:
        raise RuntimeError(f"{source} does not fit the model: missing {missing}, unexpected {unexpected}")


def load_checkpoint(path: str | Path) -> tuple[VolumeNet, dict]:
    """A VolumeNet from a checkpoint (its config inside, weights loaded strictly) and the checkpoint dict."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = VolumeNet(VolumeConfig.from_dict(ckpt["model_config"]))
    load_weights(net, ckpt["model"], path)
    return net, ckpt


def train(cfg: VolumeTrainConfig, runs: Path = Path("runs")) -> Path:
    last = start_run(runs, cfg.name, cfg.seed)
    net = VolumeNet(VolumeConfig(name=cfg.name, pair_evidence=cfg.pair_evidence or cfg.stage == "pair"))
    if cfg.init and not last.exists():
        load_weights(net, torch.load(cfg.init, map_location="cpu", weights_only=False)["model"], cfg.init)
    params = net.blur.parameters() if cfg.stage in ("blur", "pair") else net.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    rng = np.random.default_rng(cfg.seed)
    start, ckpt = resume_run(last, opt, rng)
    if ckpt is not None:
        load_weights(net, ckpt["model"], last)
    data = ClipCache(build_cache(TRAIN_SET))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.iters, pct_start=0.1,
                                                last_epoch=start - 1 if start else -1)  # fmt: skip
    if start:
        sched.load_state_dict(ckpt["sched"])
    print(f"{cfg.name}: {count_parameters(net)} parameters, stage {cfg.stage}, {len(data)} clips, from iter {start}",
          flush=True)
    step = {"blur": step_blur, "pair": step_pair, "e2e": step_e2e}[cfg.stage]
    bar = tqdm(range(start, cfg.iters), initial=start, total=cfg.iters, mininterval=10)
    t0, logs = time.time(), []
    for it in bar:
        net.train()
        res = step(net, data, cfg, rng)
        opt.zero_grad()
        res.pop("loss").backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        logs.append(res)
        if (it + 1) % 10 == 0:
            mean = {k: float(np.mean([r[k] for r in logs])) for k in logs[0]}
            print(json.dumps({"iter": it + 1, "s": round(time.time() - t0, 1), **mean}), flush=True)
            logs = []
        if (it + 1) % cfg.ckpt_every == 0 or it + 1 == cfg.iters:
            save_run(last, net, opt, sched, it + 1, rng, train_config=asdict(cfg))
    return last


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--stage", choices=("blur", "pair", "e2e"), default="blur")
    p.add_argument("--pair", action="store_true", help="a model with pair evidence (implied by --stage pair)")
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--batch", type=int, default=0, help="0: 8 frames (blur) or 2 clips (e2e)")
    p.add_argument("--crop", type=int, nargs=2, default=(64, 80), metavar=("H", "W"))
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overfit-clip", type=int, default=-1)
    p.add_argument("--init", default="")
    a = p.parse_args(argv)
    batch = a.batch or (2 if a.stage == "e2e" else 8)
    cfg = VolumeTrainConfig(name=a.name, stage=a.stage, iters=a.iters, batch=batch, crop_px=tuple(a.crop), lr=a.lr,
                            seed=a.seed, overfit_clip=a.overfit_clip, init=a.init,
                            pair_evidence=a.pair)  # fmt: skip
    print(train(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
