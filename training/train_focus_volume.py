"""Train the learned readout of the focus-volume model (dfd_depth_ros/focus_volume_network.py).

The shipped model has no readout (``training.export --physics``): no run of this recipe has beaten the graph alone on
the path-traced dev set yet (README, "What limits it"). This trains the candidates.

    python -m training.train_focus_volume --name fv_k_s0 --iters 2000 --readout-image none --decay 0.9 \
        --cost-window 5 --fill-full-conf 0.05                           # a readout on the shipped model's evidence
    python -m training.train_focus_volume --name fv_none --iters 2000 --readout-image none  # the earlier shipped one
    python -m training.train_focus_volume --name fv_overfit2k --overfit-clip 1 --iters 2000 --crop 0 0 \
        --readout-image none                                                                        # gate (a)
    python -m training.train_focus_volume --name monocular --iters 2000 --monocular                 # the baseline
    python -m training.train_focus_volume --name fv_dr --iters 2000 --readout-image none --randomised-data
                                                                    # on domain-randomised clips (TRAIN_SET_DR)

Everything before the readout (hypotheses, lens model, focus-measure evidence, its flow-aligned history,
the physics estimate) has no parameters, so each training frame's readout input is computed once, by the
very graph the runtime runs (``FocusVolumeNet.physics`` over the whole clip from a zero state, aligned by
``flow.FlowTracker``; the tracker's blur equalisation reads the physics fill here and the model's output in
DepthStream, so the flows can differ slightly), and cached (``data/cache/<set>/fv_features_*.npz``). The
readout then trains on single frames: L1 of log inverse depth at 1/2 resolution plus a confidence term
(binary cross-entropy against exp(-|log error| / 0.1), the target of the earlier models' cards).

Data: generated clips (``training.data``, never the benchmark's renderer) of all five focus schedules,
static and moving cameras, 256x192, lenses with 4-25 px of largest blur; the readout input of frames
KEEP_FRAMES of every clip. Seeded, resumable (re-run the same command), one CPU thread, tqdm progress.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dfd_depth_ros.evidence import EVIDENCE_VERSION
from dfd_depth_ros.flow import FlowTracker
from dfd_depth_ros.focus_volume_network import STATE_STRIDE, FocusVolumeConfig, FocusVolumeNet
from dfd_depth_ros.synthetic import SCHEDULES
from training.data import ClipCache, ClipSetConfig, build_cache
from training.run_state import resume_run, save_run, start_run

TRAIN_SET = ClipSetConfig(split="train", clips=240, frames=16, width_px=256, height_px=192, schedules=SCHEDULES,
                          motions=("static", "smooth"), min_blur_px=4.0, shard_clips=40)  # fmt: skip
# the same clips drawn with the camera randomised beyond the lens (SequenceConfig.randomise: PSF between a disc and a
# Gaussian, vignetting, tone curve, noise down to low light); same scenes, schedules and lenses as TRAIN_SET
TRAIN_SET_DR = replace(TRAIN_SET, randomise=True)
VAL_SET = ClipSetConfig(split="val", clips=30, frames=16, width_px=256, height_px=192, schedules=SCHEDULES,
                        motions=("static", "smooth"), min_blur_px=4.0, shard_clips=30)  # unseen scenes and lenses
KEEP_FRAMES = (0, 1, 3, 7, 11, 15)  # frames of each clip whose readout input is cached
CONF_SCALE = 0.1  # confidence target exp(-|ln p - ln g| / CONF_SCALE)
REL_CAP = 3.0  # per-pixel abs_rel beyond this adds no more loss (a far read of a near point stays bounded)


def physics_step(net: FocusVolumeNet, tracker: FlowTracker, image: np.ndarray, lens: np.ndarray,
                 state: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
    """One frame as DepthStream runs it: the tracker's flow into the previous frame, then the physics graph.

    image (H,W,3) uint8, lens (2,) [fx*D, 1/focus]; returns ``net.physics``' dict (the new state in "state"). The
    caller tells the tracker the frame's estimate (``tracker.observe``) before the next step.
    """
    f = tracker.flow(image, float(lens[0]), float(lens[1]))
    flow = None if f is None else torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None]
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return net.physics(x, torch.from_numpy(lens[None]), state, flow)


def run_physics(net: FocusVolumeNet, images: np.ndarray, lens: np.ndarray):
    """Yield (t, physics dict) over one clip: images (T,H,W,3) uint8, lens (T,2) [fx*D, 1/focus], from a zero state."""
    t_frames, h, w = images.shape[:3]
    tracker = FlowTracker.for_grid(net.cfg.grid_near_m, net.cfg.grid_far_m)
    state = net.initial_state(1, h, w)
    for t in range(t_frames):
        est = physics_step(net, tracker, images[t], lens[t], state)
        state = est["state"]
        tracker.observe(est["inv_filled"][0, 0].numpy())
        yield t, est


def feature_cache(net: FocusVolumeNet, cfg: ClipSetConfig, root: str | Path = "data/cache") -> dict[str, np.ndarray]:
    """The readout inputs of KEEP_FRAMES of every clip of a set: features (N,C,h,w) f16, inv_gt (N,1,h,w), meta."""
    folder = build_cache(cfg, root)
    c = net.cfg
    reference = FocusVolumeConfig()
    knobs = "" if (c.cost_window_px, c.fill_full_conf) == (reference.cost_window_px, reference.fill_full_conf) else (
        f"_cw{c.cost_window_px}_f{c.fill_full_conf:g}")
    tag = f"K{c.num_hypotheses}_{c.grid_near_m:g}-{c.grid_far_m:g}_d{c.decay:g}{knobs}_e{EVIDENCE_VERSION}"
    path = folder / f"fv_features_{tag}_{'-'.join(map(str, KEEP_FRAMES))}.npz"
    if path.exists():
        return dict(np.load(path))
    data = ClipCache(folder)
    feats, gts, meta = [], [], []
    for i in tqdm(range(len(data)), desc=f"readout inputs of {cfg.split}", unit="clip"):
        for t, est in run_physics(net, data.images[i], data.lens[i]):
            if t in KEEP_FRAMES:
                feats.append(est["features"][0].numpy().astype(np.float16))
                inv = 1.0 / torch.from_numpy(data.depth[i, t].astype(np.float32))[None, None]
                gts.append(F.avg_pool2d(inv, STATE_STRIDE)[0].numpy())
                meta.append((i, t, int(data.schedule[i])))
    out = {"features": np.stack(feats), "inv_gt": np.stack(gts), "meta": np.array(meta, np.int32)}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.rename(path)
    return out


@dataclass(frozen=True)
class TrainConfig:
    name: str
    iters: int = 2000
    batch: int = 8
    lr: float = 2e-3
    seed: int = 0
    width: int = 24
    top_width: int = 0  # FocusVolumeConfig.top_width (0: the shipped layout, two convolutions of width at 1/2 res)
    overfit_clip: int = -1  # >= 0: train on the frames of this one clip only (gate a)
    crop: tuple[int, int] = (64, 96)  # (h, w) random crop at 1/2 resolution (the readout's); (0, 0) = whole frames
    w_conf: float = 0.1
    w_rel: float = 0.0  # weight of abs_rel (per pixel, capped at REL_CAP) beside the L1 of log inverse depth
    readout_image: str = "rgb"  # FocusVolumeConfig.readout_image
    fixed_focus_gate: bool = False  # FocusVolumeConfig.fixed_focus_gate
    lens_input: bool = True  # FocusVolumeConfig.lens_input (False: the monocular baseline)
    randomised_data: bool = False  # train on TRAIN_SET_DR instead of TRAIN_SET
    decay: float = FocusVolumeConfig.decay  # the evidence's knobs (FocusVolumeConfig; defaults the reference's)
    cost_window_px: int = FocusVolumeConfig.cost_window_px
    fill_full_conf: float = FocusVolumeConfig.fill_full_conf
    ckpt_every: int = 100


def readout_loss(net: FocusVolumeNet, features: torch.Tensor, inv_gt: torch.Tensor, w_conf: float,
                 w_rel: float = 0.0) -> dict:  # fmt: skip
    """L1 of log inverse depth + w_rel * abs_rel (capped per pixel at REL_CAP) + w_conf * confidence BCE, at 1/2
    resolution, over pixels with ground truth. abs_rel is the benchmark's metric: it weighs a depth read too far
    more than one read too near, which the symmetric log loss does not."""
    out = net.head(net.estimate_from_features(features), features.shape[-2:])
    valid = torch.isfinite(inv_gt) & (inv_gt > 0)
    gt = torch.where(valid, inv_gt, torch.ones_like(inv_gt))
    err = (torch.log(out["inv_depth_lo"]) - torch.log(gt)).abs()
    n = valid.sum().clamp_min(1)
    l1 = (err * valid).sum() / n
    target = torch.exp(-err.detach() / CONF_SCALE)
    bce = F.binary_cross_entropy(out["confidence_lo"].clamp(1e-6, 1 - 1e-6), target, reduction="none")
    bce = (bce * valid).sum() / n
    rel_px = (gt / out["inv_depth_lo"] - 1.0).abs()  # abs_rel of depth
    rel = (rel_px * valid).sum() / n
    rel_capped = (rel_px.clamp(max=REL_CAP) * valid).sum() / n
    return {"loss": l1 + w_rel * rel_capped + w_conf * bce, "log_l1": float(l1.detach()), "bce": float(bce.detach()),
            "abs_rel": float(rel.detach())}


def train(cfg: TrainConfig, runs: Path = Path("runs")) -> Path:
    last = start_run(runs, cfg.name, cfg.seed)
    net = FocusVolumeNet(FocusVolumeConfig(name="dfd_recurrent", width=cfg.width, top_width=cfg.top_width,
                                           readout_image=cfg.readout_image,
                                           fixed_focus_gate=cfg.fixed_focus_gate,
                                           lens_input=cfg.lens_input, decay=cfg.decay,
                                           cost_window_px=cfg.cost_window_px,
                                           fill_full_conf=cfg.fill_full_conf))  # fmt: skip
    train_set = TRAIN_SET_DR if cfg.randomised_data else TRAIN_SET
    data = feature_cache(net, train_set)
    feats, inv_gt, meta = data["features"], data["inv_gt"], data["meta"]
    pool = np.flatnonzero(meta[:, 0] == cfg.overfit_clip) if cfg.overfit_clip >= 0 else np.arange(len(feats))
    opt = torch.optim.AdamW(net.readout.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.iters, pct_start=0.1)
    rng = np.random.default_rng(cfg.seed)
    start, ckpt = resume_run(last, opt, rng)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        sched.load_state_dict(ckpt["sched"])
    n_params = sum(p.numel() for p in net.parameters())
    print(f"{cfg.name}: {n_params} parameters, {len(pool)} training frames, from iter {start}", flush=True)
    bar = tqdm(range(start, cfg.iters), initial=start, total=cfg.iters, mininterval=10)
    t0, logs = time.time(), []
    for it in bar:
        idx = rng.choice(pool, cfg.batch)
        (h, w), (ch, cw) = feats.shape[-2:], cfg.crop
        top, left = (int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))) if ch else (0, 0)
        win = np.s_[..., top : top + (ch or h), left : left + (cw or w)]
        x = torch.from_numpy(feats[idx][win].astype(np.float32))
        y = torch.from_numpy(np.ascontiguousarray(inv_gt[idx][win]))
        flip = torch.from_numpy(rng.random(cfg.batch) < 0.5)
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        net.train()
        res = readout_loss(net, x, y, cfg.w_conf, cfg.w_rel)
        opt.zero_grad()
        res.pop("loss").backward()
        torch.nn.utils.clip_grad_norm_(net.readout.parameters(), 1.0)
        opt.step()
        sched.step()
        logs.append(res)
        if (it + 1) % 20 == 0:
            mean = {k: round(float(np.mean([r[k] for r in logs])), 4) for k in logs[0]}
            print(json.dumps({"iter": it + 1, "s": round(time.time() - t0, 1), **mean}), flush=True)
            logs = []
        if (it + 1) % cfg.ckpt_every == 0 or it + 1 == cfg.iters:
            save_run(last, net, opt, sched, it + 1, rng, train_config=asdict(cfg),
                     data={"train": asdict(train_set), "keep_frames": KEEP_FRAMES})
    return last


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=24)
    p.add_argument("--top-width", type=int, default=0,
                   help="channels of the readout's full-resolution level, one convolution each side (0: two "
                        "convolutions of --width, the shipped layout; 16 halves that level's time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overfit-clip", type=int, default=-1)
    p.add_argument("--w-rel", type=float, default=0.0, help="weight of the abs_rel term (0: log L1 only)")
    p.add_argument("--readout-image", choices=("rgb", "gray", "none"), default="rgb",
                   help="what the readout sees of the frame")
    p.add_argument("--fixed-focus-gate", action="store_true",
                   help="scale the learned residual by how far the focus has moved (FocusVolumeConfig)")
    p.add_argument("--monocular", action="store_true",
                   help="the monocular baseline: the readout sees the frame alone, no lens or evidence channel")
    p.add_argument("--randomised-data", action="store_true",
                   help="train on the domain-randomised clips (TRAIN_SET_DR: PSF shape, vignetting, tone curve, noise)")
    p.add_argument("--decay", type=float, default=TrainConfig.decay,
                   help="the evidence's decay per frame (FocusVolumeConfig)")
    p.add_argument("--cost-window", type=int, default=TrainConfig.cost_window_px,
                   help="the cost volume's box window, 1/2-resolution px (odd)")
    p.add_argument("--fill-full-conf", type=float, default=TrainConfig.fill_full_conf,
                   help="confidence from which a pixel keeps its own depth in the fill")
    p.add_argument("--crop", type=int, nargs=2, default=(64, 96), metavar=("H", "W"),
                   help="random crop at 1/2 resolution (0 0: whole frames)")
    a = p.parse_args(argv)
    cfg = TrainConfig(name=a.name, iters=a.iters, batch=a.batch, lr=a.lr, width=a.width, top_width=a.top_width,
                      seed=a.seed,
                      overfit_clip=a.overfit_clip, crop=tuple(a.crop), w_rel=a.w_rel,
                      readout_image=a.readout_image, fixed_focus_gate=a.fixed_focus_gate,
                      lens_input=not a.monocular, randomised_data=a.randomised_data, decay=a.decay,
                      cost_window_px=a.cost_window, fill_full_conf=a.fill_full_conf)  # fmt: skip
    print(train(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
