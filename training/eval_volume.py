"""Score a cost-volume checkpoint against the constant-median floor and classical_dfd (scoring only, no tuning).

    python -m training.eval_volume --checkpoint runs/vol_static/last.pt --set test          # gate (b)
    python -m training.eval_volume --checkpoint runs/vol_overfit/last.pt --set train --clips 0   # gate (a)
    python -m training.eval_volume --checkpoint runs/vol_static/last.pt --bags data/benchmark --flow

Every method sees the same frames in order from a fresh state; metrics are dfd_depth_ros.metrics'
(abs_rel averaged over frames, then over clips). The network runs at ``--net-width`` (the frame is
area-resized, fx*D scaled with it, inverse depth upsampled back); classical_dfd runs at the frame's size.
``--flow``: DIS flow on blur-equalised gray (outside the graph) aligns the state between frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evaluation.references import median_floor
from dfd_depth_ros.flow import blur_equalised_flow, flow_gray_u8
from dfd_depth_ros.metrics import MetricAccumulator
from dfd_depth_ros.volume_network import STATE_STRIDE, STRIDE, VolumeNet, blur_bin_weights
from training.data import ClipCache, build_cache, unit_lens_camera
from training.train_volume import TEST_SET, TRAIN_SET, VAL_SET, load_checkpoint, true_blur_px

FLOW_SIGMA_PX = 2.0  # both frames are low-passed by this (network px) before DIS, so focus changes bias it less


class OracleBlur(torch.nn.Module):
    """Stands in for BlurNet (a reference, it reads the ground truth): log of the two-bin label of the true blur."""

    def __init__(self, bins_px: torch.Tensor):
        super().__init__()
        self.bins_px, self.log_p = bins_px, None

    def set_truth(self, depth_m: np.ndarray, lens: torch.Tensor) -> None:
        """depth_m (h, w) at the network input size, lens (1, 2) -> the log-likelihood of the next forward."""
        c = F.avg_pool2d(true_blur_px(torch.from_numpy(depth_m)[None, None], lens), STATE_STRIDE)
        self.log_p = torch.log(blur_bin_weights(c[:, 0], self.bins_px).permute(0, 3, 1, 2) + 1e-3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.log_p


class VolumeRunner:
    """Runs a VolumeNet over one sequence: ``step(image_u8 (H,W,3), blur_scale_pxm, inv_focus) -> depth_m (H,W)``."""

    def __init__(self, net: VolumeNet, net_width_px: int = 0, flow: bool = False):
        self.net, self.net_width_px, self.use_flow = net.eval(), net_width_px, flow
        self.state = None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if flow else None
        self._prev = None

    def step(self, image: np.ndarray, blur_scale_pxm: float, inv_focus: float, gt_m: np.ndarray | None = None
             ) -> np.ndarray:  # fmt: skip
        h, w = image.shape[:2]
        nw = self.net_width_px or w
        nh = max(STRIDE, round(h * nw / w / STRIDE) * STRIDE)
        nw = max(STRIDE, round(nw / STRIDE) * STRIDE)
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA) if (nw, nh) != (w, h) else image
        x = torch.from_numpy(small.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        lens = torch.tensor([[blur_scale_pxm * nw / w, inv_focus]], dtype=torch.float32)
        if self.state is None:
            self.state = self.net.initial_state(1, nh, nw)
        if isinstance(self.net.blur, OracleBlur):
            gt = np.nan_to_num(gt_m, nan=10.0, posinf=10.0).clip(0.1, 20.0).astype(np.float32)
            self.net.blur.set_truth(cv2.resize(gt, (nw, nh), interpolation=cv2.INTER_NEAREST), lens)
        flow = None
        if self.use_flow and self._prev is not None:
            cur_u8 = flow_gray_u8(small, FLOW_SIGMA_PX)
            f = blur_equalised_flow(self._dis, flow_gray_u8(self._prev, FLOW_SIGMA_PX), cur_u8)
            flow = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None]
            assert flow.shape[-2:] == (nh // STATE_STRIDE, nw // STATE_STRIDE), flow.shape
        self._prev = small
        with torch.no_grad():
            out = self.net.forward_all(x, lens, self.state, flow)
        self.state = out["state"]
        inv = out["inv_depth"][0, 0].numpy()
        if (nw, nh) != (w, h):
            inv = cv2.resize(inv, (w, h), interpolation=cv2.INTER_LINEAR)
        return (1.0 / inv).astype(np.float32)


def score_sequence(frames, net: VolumeNet, net_width_px: int = 0, flow: bool = False,
                   oracle: bool = False) -> dict[str, dict]:  # fmt: skip
    """frames: iterable of (image u8 (H,W,3), K (3,3), LensState, stamp_ns, gt (H,W)) -> {method: summary}.

    oracle: add "volume_oracle", the same graph (readout and refinement) fed the true blur instead of BlurNet's.
    """
    runner, ref = VolumeRunner(net, net_width_px, flow), FocusReference()
    methods = ("dfd_volume", "classical_dfd", "median_floor") + (("volume_oracle",) if oracle else ())
    acc = {m: MetricAccumulator() for m in methods}
    if oracle:
        oracle_net = VolumeNet(dataclasses.replace(net.cfg, pair_evidence=False)).eval()  # one-frame evidence
        oracle_net.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("blur.pair.")})
        oracle_net.blur = OracleBlur(net.bins_px)
        oracle_runner = VolumeRunner(oracle_net, net_width_px, flow)
    for image, K, lens, stamp_ns, gt in frames:
        scale_pxm = lens.blur_scale_pxm(float(K[0, 0]))
        acc["dfd_volume"].add(runner.step(image, scale_pxm, lens.focus_diopters), gt)
        if oracle:
            acc["volume_oracle"].add(oracle_runner.step(image, scale_pxm, lens.focus_diopters, gt), gt)
        acc["classical_dfd"].add(ref.process(image, K, lens, stamp_ns)[0], gt)
        acc["median_floor"].add(median_floor(gt), gt)
    return {m: a.summary() for m, a in acc.items()}


def cache_frames(data: ClipCache, i: int):
    """Clip i of a cache as score_sequence frames (a unit lens: fx = fx*D, D = 1 m, so the blur scale is kept)."""
    h, w = data.images.shape[2:4]
    for t in range(data.images.shape[1]):
        K, unit_lens = unit_lens_camera(data.lens[i, t], h, w)
        yield data.images[i, t], K, unit_lens, 1_000_000_000 * (t + 1), data.depth[i, t].astype(np.float32)


def bag_frames(seq):
    for f in seq.frames:
        image = f.image if f.image.ndim == 3 else np.repeat(f.image[..., None], 3, axis=2)
        yield image, f.K, f.lens, f.stamp_ns, f.depth_m


def _table(rows: dict[str, dict[str, dict]]) -> str:
    methods = tuple(next(iter(rows.values())))
    lines = ["| sequence | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for name, res in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{res[m]['abs_rel']:.3f}" for m in methods) + " |")
    mean = {m: float(np.mean([r[m]["abs_rel"] for r in rows.values()])) for m in methods}
    lines.append("| **mean** | " + " | ".join(f"**{mean[m]:.3f}**" for m in methods) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--set", choices=("train", "val", "test"), default="test")
    p.add_argument("--clips", type=int, nargs="*", help="clip indices (default: all)")
    p.add_argument("--bags", default="", help="folder of benchmark bags (scored instead of a clip set)")
    p.add_argument("--net-width", type=int, default=0, help="network input width px (0: the frame's)")
    p.add_argument("--flow", action="store_true")
    p.add_argument("--oracle", action="store_true", help="add volume_oracle (the graph fed the true blur)")
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    net, _ = load_checkpoint(a.checkpoint)
    rows = {}
    if a.bags:
        from dfd_depth_ros.evaluation.bagio import read_sequence_bag

        for bag in sorted(d for d in Path(a.bags).iterdir() if (d / "metadata.yaml").exists()):
            rows[bag.name] = score_sequence(bag_frames(read_sequence_bag(bag)), net, a.net_width, a.flow, a.oracle)
            print(bag.name, json.dumps({m: round(r["abs_rel"], 4) for m, r in rows[bag.name].items()}), flush=True)
    else:
        data = ClipCache(build_cache({"train": TRAIN_SET, "val": VAL_SET, "test": TEST_SET}[a.set]))
        for i in a.clips if a.clips else range(len(data)):
            rows[f"{a.set}_{i}"] = score_sequence(cache_frames(data, i), net, a.net_width, a.flow, a.oracle)
            print(i, json.dumps({m: round(r["abs_rel"], 4) for m, r in rows[f"{a.set}_{i}"].items()}), flush=True)
    print(_table(rows))
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
