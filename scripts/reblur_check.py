"""Does a re-blur loss (no ground truth) prefer the true depth? The check behind `dfd-depth adapt`, which is not built.

    .venv/bin/python scripts/reblur_check.py data/benchmark_dev/dev_sweep_static_poles [--window 4] [--anchor 1 10]

A self-supervised fine-tuning loss for a user's own bag needs no ground truth: it asks that the depth explain how
each frame's blur differs from its neighbours'. The relative-blur form used here: for frames t and s of a static
bag and a pixel of inverse depth w, the lens gives both blur diameters c_t and c_s (thin lens, the bag's own lens
samples), and the sharper of the two, blurred by a Gaussian of variance (c_t^2 - c_s^2) / 16 (a disc of diameter
c has a standard deviation of c / 4), should reproduce the blurrier one. The loss is the mean absolute residual
over the frames within ``--window`` of t, on linear gray at the evidence's half resolution.

It prints, per frame, the loss of the ground truth, of the shipped model's estimate and of a constant median
depth; then it minimises the loss over a free inverse-depth map per frame, starting from the shipped estimate, with
an L1 anchor to it (weight ``--anchor``) and a total-variation term, and prints abs_rel before and after and the
loss reached. A loss fit for adaptation would make abs_rel fall as the loss falls, and would not reach below
the ground truth's loss with a wrong depth. Static bags only (no alignment between frames).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dfd_depth_ros import input_checks  # noqa: E402
from dfd_depth_ros.architectures import build_model  # noqa: E402
from dfd_depth_ros.depth_stream import _pad_to_stride  # noqa: E402
from dfd_depth_ros.evaluation.bagio import read_sequence_bag  # noqa: E402
from dfd_depth_ros.evidence import cv2_gaussian_taps, separable_filter  # noqa: E402
from dfd_depth_ros.package_paths import default_model_path  # noqa: E402

SIGMAS = torch.linspace(0.0, 4.0, 17)  # half-resolution px: the blur levels the loss interpolates between


def _gauss(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """(h, w) Gaussian-blurred by ``sigma`` px: the evidence's own filter (cv2's taps, mirrored borders)."""
    if sigma < 1e-3:
        return img
    return separable_filter(img[None, None], cv2_gaussian_taps(sigma))[0, 0]


class ReblurLoss:
    """Relative-blur residuals of one static bag: gray (T, h, w) linear, lens (T, 2) [fx*D at full res, 1/focus]."""

    def __init__(self, gray: torch.Tensor, lens: torch.Tensor, window: int):
        self.gray, self.lens, self.window = gray, lens, window
        self.pyramid = torch.stack([torch.stack([_gauss(g, float(s)) for s in SIGMAS]) for g in gray])

    def _blurred(self, t: int, sigma: torch.Tensor) -> torch.Tensor:
        pos = (sigma / SIGMAS[-1] * (len(SIGMAS) - 1)).clamp(0, len(SIGMAS) - 1 - 1e-4)
        i0 = pos.floor().long()
        a = pos - i0
        pyr = self.pyramid[t]
        return torch.gather(pyr, 0, i0[None])[0] * (1 - a) + torch.gather(pyr, 0, (i0 + 1)[None])[0] * a

    def map(self, w: torch.Tensor, t: int) -> torch.Tensor:
        """(h, w) mean |residual| over the frames within the window of t, for inverse depth w (h, w)."""
        frames = [s for s in range(max(0, t - self.window), min(len(self.gray), t + self.window + 1)) if s != t]
        total = torch.zeros_like(w)
        for s in frames:
            c_t = self.lens[t, 0] * (w - self.lens[t, 1]).abs() / 2  # half-resolution px
            c_s = self.lens[s, 0] * (w - self.lens[s, 1]).abs() / 2
            var = (c_t**2 - c_s**2) / 16
            sigma = var.abs().clamp_min(1e-8).sqrt()
            total = total + torch.where(var > 0, self._blurred(s, sigma) - self.gray[t],
                                        self._blurred(t, sigma) - self.gray[s]).abs()  # fmt: skip
        return total / len(frames)


def run_model(bag: Path, model_pt: Path):
    """The shipped model (torch, same graph as the ONNX) over a bag: gray, lens, ground truth and estimates."""
    ckpt = torch.load(model_pt, map_location="cpu", weights_only=False)
    net = build_model(ckpt["model_config"])
    net.load_state_dict(ckpt["model"])
    net.eval()
    seq = read_sequence_bag(bag)
    state, out = None, {"gray": [], "lens": [], "gt": [], "est": []}
    for fr in seq.frames:
        img = _pad_to_stride(fr.image)
        h, w = img.shape[:2]
        state = net.initial_state(1, h, w) if state is None else state
        lens = input_checks.network_lens_input(fr.lens, fr.K[0, 0])[0]
        x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            res = net.forward_all(x, torch.from_numpy(lens[None]), state)
        state = res["state"]
        out["est"].append(res["inv_depth_lo"][0, 0])
        lin = torch.from_numpy(((img.astype(np.float32) / 255) ** 2.2).mean(-1))
        out["gray"].append(F.avg_pool2d(lin[None, None], 2)[0, 0])
        out["lens"].append(torch.from_numpy(lens))
        depth = np.full((h, w), np.nan, np.float32)
        depth[: fr.depth_m.shape[0], : fr.depth_m.shape[1]] = fr.depth_m
        out["gt"].append(F.avg_pool2d(1 / torch.from_numpy(depth)[None, None], 2)[0, 0])
    return {k: torch.stack(v) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bag")
    ap.add_argument("--model", default=str(default_model_path().with_suffix(".pt")))
    ap.add_argument("--window", type=int, default=4, help="frames on each side that each frame is compared with")
    ap.add_argument("--anchor", type=float, nargs="+", default=[1.0, 10.0],
                    help="weights of the L1 anchor to the shipped estimate (one optimisation per weight)")
    ap.add_argument("--steps", type=int, default=150)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    d = run_model(Path(a.bag), Path(a.model))
    loss = ReblurLoss(d["gray"], d["lens"], a.window)
    valid = torch.isfinite(d["gt"]) & (d["gt"] > 0)
    n = len(d["gray"])

    def abs_rel(w, t):
        v = valid[t]
        return float((d["gt"][t][v] / w[v] - 1).abs().mean())

    frames = list(range(min(4, n - 1), n, max(1, n // 4)))
    print(f"{Path(a.bag).name}: {n} frames; loss x 1e4 (mean |residual| of linear gray)")
    print("frame | loss: ground truth | shipped | constant median | abs_rel shipped")
    for t in frames:
        gt = torch.where(valid[t], d["gt"][t], d["est"][t])
        const = torch.full_like(gt, float(gt[valid[t]].median()))
        cells = [float(loss.map(m, t).mean()) * 1e4 for m in (gt, d["est"][t], const)]
        print(f"{t:5d} | {cells[0]:8.1f} | {cells[1]:7.1f} | {cells[2]:7.1f} | {abs_rel(d['est'][t], t):.3f}")
    print("anchor | frame | abs_rel before -> after | loss: start -> reached (ground truth)")
    for lam in a.anchor:
        for t in frames:
            w0 = d["est"][t]
            logw = torch.log(w0).clone().requires_grad_(True)
            opt = torch.optim.Adam([logw], lr=0.03)
            for _ in range(a.steps):
                w = logw.exp().clamp(1 / 20, 10)
                lm = F.avg_pool2d(loss.map(w, t)[None, None], 5, 1, 2)[0, 0]
                tv = (logw[1:] - logw[:-1]).abs().mean() + (logw[:, 1:] - logw[:, :-1]).abs().mean()
                total = lm.mean() * 1e3 + lam * (logw - torch.log(w0)).abs().mean() + 0.1 * tv
                opt.zero_grad()
                total.backward()
                opt.step()
            w = logw.detach().exp().clamp(1 / 20, 10)
            gt = torch.where(valid[t], d["gt"][t], w0)
            print(f"{lam:6g} | {t:5d} | {abs_rel(w0, t):.3f} -> {abs_rel(w, t):.3f} | "
                  f"{float(loss.map(w0, t).mean()) * 1e4:.1f} -> {float(loss.map(w, t).mean()) * 1e4:.1f} "
                  f"({float(loss.map(gt, t).mean()) * 1e4:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
