"""Score the focus-volume model on generated clips against the physics alone, classical_dfd and the median floor.

    python -m training.eval_focus_volume --checkpoint runs/fv_none/last.pt --fixed-focus-gate --set val   # the shipped
                                                                                   # model: gates (b)-(d), per schedule
    python -m training.eval_focus_volume --checkpoint runs/fv_overfit/last.pt --set train --clips 1   # gate (a)

Every method sees the same frames in order from a fresh state, at the clip's size; the model runs through its
own graph with the flow of ``flow.FlowTracker`` (as DepthStream runs it). ``fv_physics`` is the same graph with
the learned readout left out (the physics estimate alone); ``fv_single_frame`` is the model with its state
zeroed before every frame. Metrics are dfd_depth_ros.metrics' (per frame, averaged over the clip, then over
clips); the tables split the clips by focus schedule and by camera motion.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evaluation.references import median_floor
from dfd_depth_ros.flow import FlowTracker
from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet
from dfd_depth_ros.metrics import MetricAccumulator
from dfd_depth_ros.synthetic import SCHEDULES
from training.data import SPLIT_SEED_BASE, ClipCache, ClipSetConfig, build_cache, unit_lens_camera
from training.train_focus_volume import TRAIN_SET, VAL_SET, physics_step

METHODS = ("fv", "fv_single_frame", "fv_physics", "classical_dfd", "median_floor")


def load_net(checkpoint: str | Path | dict, fixed_focus_gate: bool | None = None) -> FocusVolumeNet:
    """A checkpoint's (path or loaded dict) FocusVolumeNet in eval mode; ``fixed_focus_gate`` overrides the config's
    (as export can)."""
    ckpt = checkpoint if isinstance(checkpoint, dict) else torch.load(checkpoint, map_location="cpu",
                                                                       weights_only=False)  # fmt: skip
    cfg = dict(ckpt["model_config"])
    if fixed_focus_gate is not None:
        cfg["fixed_focus_gate"] = fixed_focus_gate
    net = FocusVolumeNet(FocusVolumeConfig.from_dict(cfg))
    net.load_state_dict(ckpt["model"])
    return net.eval()


def clip_motion(cfg: ClipSetConfig, index: int) -> str:
    """The camera motion training.data drew for clip ``index`` (its generator's first draw)."""
    return random.Random(SPLIT_SEED_BASE[cfg.split] + index).choice(cfg.motions)


class Runner:
    """One FocusVolumeNet over one clip, frame by frame, as DepthStream runs it (flow outside the graph).

    physics_only: the same graph without the learned readout (``FocusVolumeConfig.learned`` False).
    """

    def __init__(self, net: FocusVolumeNet, single_frame: bool = False, physics_only: bool = False):
        self.net = FocusVolumeNet(replace(net.cfg, learned=False)).eval() if physics_only else net
        self.single_frame = single_frame
        self.state, self.tracker = None, FlowTracker.for_grid(net.cfg.grid_near_m, net.cfg.grid_far_m)

    def step(self, image: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """(H,W,3) uint8, lens (2,) [fx*D, 1/focus] -> depth (H,W) metres; ``self.confidence`` (H,W) beside it."""
        h, w = image.shape[:2]
        if self.state is None or self.single_frame:
            self.state = self.net.initial_state(1, h, w)
            self.tracker.reset()
        est = physics_step(self.net, self.tracker, image, lens, self.state)
        with torch.no_grad():
            out = self.net.head(est, (h, w))
        self.confidence = out["confidence"][0, 0].numpy()
        self.state = est["state"]
        inv = out["inv_depth"][0, 0].numpy()
        self.tracker.observe(inv)
        self.last_depth = (1.0 / inv).astype(np.float32)
        return self.last_depth


def score_clip(net: FocusVolumeNet, data: ClipCache, i: int) -> dict[str, dict]:
    runners = {"fv": Runner(net), "fv_single_frame": Runner(net, single_frame=True),
               "fv_physics": Runner(net, physics_only=True)}  # fmt: skip
    ref = FocusReference()
    acc = {m: MetricAccumulator() for m in METHODS}
    halves = []  # (abs_rel of the more confident half of the pixels, of the less confident half) per frame
    h, w = data.images.shape[2:4]
    for t in range(data.images.shape[1]):
        image, lens, gt = data.images[i, t], data.lens[i, t], data.depth[i, t].astype(np.float32)
        for name, runner in runners.items():
            acc[name].add(runner.step(image, lens), gt)
        halves.append(confidence_halves(runners["fv"].last_depth, runners["fv"].confidence, gt))
        K, unit_lens = unit_lens_camera(lens, h, w)
        acc["classical_dfd"].add(ref.process(image, K, unit_lens, 10**9 * (t + 1))[0], gt)
        acc["median_floor"].add(median_floor(gt), gt)
    out = {m: a.summary() for m, a in acc.items()}
    out["fv"]["abs_rel_confident_half"], out["fv"]["abs_rel_other_half"] = np.mean(halves, axis=0).tolist()
    return out


def confidence_halves(depth: np.ndarray, conf: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """abs_rel over the pixels (with ground truth) whose confidence is above its median, and over the rest."""
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(depth)
    err, c = np.abs(depth[valid] / gt[valid] - 1.0), conf[valid]
    order = np.argsort(-c, kind="stable")
    half = order.size // 2
    return float(err[order[:half]].mean()), float(err[order[half:]].mean())


def tables(rows: dict[str, dict], groups: dict[str, dict[str, str]]) -> str:
    """Markdown: mean abs_rel / delta1 per group value (schedule, motion) and overall."""
    out = []
    for group, labels in groups.items():
        out += [f"| {group} | clips | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
        values = sorted(set(labels.values())) + ["all"]
        for v in values:
            names = [n for n in rows if v == "all" or labels[n] == v]
            cells = [f"{np.mean([rows[n][m]['abs_rel'] for n in names]):.3f} / "
                     f"{np.mean([rows[n][m]['delta1'] for n in names]):.3f}" for m in METHODS]
            out.append(f"| {v} | {len(names)} | " + " | ".join(cells) + " |")
        out.append("")
    conf = np.mean([[r["fv"]["abs_rel_confident_half"], r["fv"]["abs_rel_other_half"]] for r in rows.values()], 0)
    out.append(f"Confidence (fv): abs_rel {conf[0]:.3f} over the more confident half of the pixels of each frame, "
               f"{conf[1]:.3f} over the other half.")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--set", choices=("train", "val"), default="val")
    p.add_argument("--clips", type=int, nargs="*", help="clip indices (default: all)")
    p.add_argument("--out", default="", help="write the per-clip results (JSON) here")
    p.add_argument("--fixed-focus-gate", action="store_true", help="switch the fixed-focus gate on (as the export "
                   "of the shipped model does)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    net = load_net(a.checkpoint, True if a.fixed_focus_gate else None)
    cfg = {"train": TRAIN_SET, "val": VAL_SET}[a.set]
    data = ClipCache(build_cache(cfg))
    rows, sched, motion = {}, {}, {}
    for i in a.clips if a.clips else range(len(data)):
        name = f"{a.set}_{i}"
        rows[name] = score_clip(net, data, i)
        sched[name], motion[name] = SCHEDULES[int(data.schedule[i])], clip_motion(cfg, i)
        print(name, sched[name], motion[name], json.dumps({m: round(r["abs_rel"], 3) for m, r in rows[name].items()}),
              flush=True)
    text = "abs_rel / delta1, mean over clips\n\n" + tables(rows, {"schedule": sched, "motion": motion})
    print(text)
    if a.out:
        Path(a.out).write_text(json.dumps({"rows": rows, "schedule": sched, "motion": motion}, indent=1))
        Path(a.out).with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
