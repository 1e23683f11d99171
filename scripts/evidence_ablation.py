"""Ablation of the evidence: variants of the classical reference's cost, scored on generated and path-traced data.

    .venv/bin/python scripts/evidence_ablation.py [--bags data/benchmark] [--out docs/evidence_ablation.md]

Every row is ``evaluation.focus_reference.FocusReference`` (the classical reference, the physics the shipped
network's graph computes) with one change, run frame by frame, fresh per sequence:

- knobs of the reference: the cost window, the decay, the hypothesis count, the fill's full confidence;
- ``multiband``: the fit q ~ a h(c) + b in three bands (sigma 1, 2, 4 px), each with its own gain and calibrated
  falloff, costs summed: more sensitivity to large blur;
- ``fine band``: the band at sigma 0.5 px instead of 1 px: more sensitivity to small blur;
- ``texture-adaptive falloff``: the falloff of a 1/f texture pre-blurred by s0 in {0, 0.75, 1.5} px, the best s0
  per pixel and hypothesis (a coarse texture keeps its measure over the first pixels of blur);
- ``re-blur``: beside the fit, the residual of re-blurring, per hypothesis, the sharper of (this frame, the sharpest
  frame kept for that hypothesis) to the other's blur (Gaussian sigma = c / 4), relative to the local band energy;
  ``re-blur alone``: that residual without the fit (it tests relative, not absolute, sharpness);
- ``guided fill``: the push-pull fill's upsampling step weighted by the colour (Lab) difference to the coarse pixel.

Sets: the generated validation clips (training.train_focus_volume.VAL_SET: the training renderer, unseen scenes and
lenses) and the path-traced benchmark bags (frame-weighted over the 12 bags with 8-25 px lenses, as
docs/benchmark.md). Prints one row per variant; ``--out`` writes the markdown table. About 25 s per variant and set
on one core.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evidence import (
    COST_NOISE_REL,
    calibrate_falloff,
    calibration_texture,
    focus_measure,
    linear_gray,
    noise_sigma,
)
from dfd_depth_ros.flow import warp
from dfd_depth_ros.metrics import frame_metrics

WEAK_BAGS = {"afhunt_pan_tabletop_weak", "sweep_arc_room_weak"}  # lenses under 8 px: docs/benchmark.md's split


# ----------------------------------------------------------------------------- calibration of variant measures


@lru_cache(None)
def band_table(sigma: float, window: int):
    return calibrate_falloff(lambda img: focus_measure(img, 0.0, sigma, window)[0], calibration_texture())


@lru_cache(None)
def preblurred_table(s0: float):
    return calibrate_falloff(lambda img: focus_measure(img)[0], calibration_texture(s0))


# ----------------------------------------------------------------------------- variants


class MultiBand(FocusReference):
    """The fit in several bands (sigma px, window px), each with its own gain and falloff; costs summed (q0 units)."""

    def __init__(self, bands=((1.0, 9), (2.0, 13), (4.0, 21)), **kw):
        self.bands = bands
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._bands = None  # per band: [acc (h, w, K + 2), sum h_k, sum h_k^2]

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        self._begin(image, stamp_ns)
        scale, gray = lens.blur_scale_pxm(float(K[0, 0])), linear_gray(image)
        self._noise_sigma = min(self._noise_sigma, noise_sigma(gray))
        c = scale * np.abs(self.w_k - lens.focus_diopters)
        flow = self._flow(image, lens.focus_diopters, scale)  # every frame: the tracker keeps the previous one
        new_bands = []
        for i, (sigma, window) in enumerate(self.bands):
            table_c, table_h, q0 = band_table(sigma, window)
            q = focus_measure(gray, self._noise_sigma**2, sigma, window)[0] / q0
            q = cv2.resize(q, self._acc_size, interpolation=cv2.INTER_AREA)
            h = np.interp(c, table_c, table_h)
            new = np.concatenate([q[..., None] * h.astype(np.float32), q[..., None], (q * q)[..., None]], 2)
            if self._bands is None:
                new_bands.append([new, h, h * h])
            else:
                acc, sh, shh = self._bands[i]
                acc = warp(acc, flow) if flow is not None else acc
                new_bands.append([self.decay * acc + new, self.decay * sh + h, self.decay * shh + h * h])
        self._bands = new_bands
        self._count_frame(lens.focus_diopters)
        q0, self.q0 = self.q0, 1.0  # the bands' measures are in units of their own q0
        try:
            inv_depth, conf = self._estimate(lens.focus_diopters, scale)
        finally:
            self.q0 = q0
        return self._output(inv_depth, conf)

    def _cost(self):
        total = 0.0
        for acc, sh, shh in self._bands:
            self._acc, self._sh, self._shh = acc, sh, shh
            total = total + FocusReference._cost(self) / len(self._bands)
        return total


class TextureAdaptive(FocusReference):
    """The falloff of a texture pre-blurred by s0, s0 a per-pixel nuisance: min cost over ``s0s`` per hypothesis."""

    def __init__(self, s0s=(0.0, 0.75, 1.5), **kw):
        self.s0s = s0s
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._per_s0, self._flow_now = None, None  # per s0: [sum q h_k (h, w, K), sum h_k, sum h_k^2]

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        self._c_now = lens.blur_scale_pxm(float(K[0, 0])) * np.abs(self.w_k - lens.focus_diopters)
        self._flow_now = None
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _flow(self, *args):
        self._flow_now = super()._flow(*args)
        return self._flow_now

    def _accumulate(self, q, h_k, focus_diopters):
        super()._accumulate(q, h_k, focus_diopters)  # sum q, sum q^2 (and the s0 = 0 slices, unused), focus sums
        hs = [np.interp(self._c_now, *preblurred_table(s)[:2]) for s in self.s0s]
        if self._per_s0 is None:
            self._per_s0 = [[q[..., None] * h.astype(np.float32), h, h * h] for h in hs]
            return
        d = self.decay
        for entry, h in zip(self._per_s0, hs, strict=True):
            acc = warp(entry[0], self._flow_now) if self._flow_now is not None else entry[0]
            entry[:] = [d * acc + q[..., None] * h.astype(np.float32), d * entry[1] + h, d * entry[2] + h * h]

    def _cost(self):
        kept = self._acc, self._sh, self._shh
        q_stats, best = self._acc[..., -2:], None
        try:
            for acc, sh, shh in self._per_s0:
                self._acc, self._sh, self._shh = np.concatenate([acc, q_stats], 2), sh, shh
                cost = FocusReference._cost(self)
                best = cost if best is None else np.minimum(best, cost)
        finally:
            self._acc, self._sh, self._shh = kept
        return best


class Reblur(FocusReference):
    """The fit's cost + ``lam`` cost-noise units x the re-blur residual against a per-hypothesis sharpest frame."""

    def __init__(self, lam: float = 5.0, alone: bool = False, **kw):
        self.lam, self.alone = lam, alone
        super().__init__(**kw)

    def reset(self):
        super().reset()
        self._sharp = None  # (h, w, K): per hypothesis, the frame it predicts sharpest so far; _sharp_sigma (K,)

    @staticmethod
    def _blur(x, sigma):
        return cv2.GaussianBlur(x, (0, 0), sigma) if sigma > 0.05 else x

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        self._begin(image, stamp_ns)  # a reset clears the sharp references too (``reset``); process's own is a no-op
        scale = lens.blur_scale_pxm(float(K[0, 0]))
        size = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        g = cv2.resize(linear_gray(image), size, interpolation=cv2.INTER_AREA)
        sigma = scale * np.abs(self.w_k - lens.focus_diopters) / 8.0  # disc diameter c (full res) -> sigma c/4 at 1/2
        self._flow_now = FocusReference._flow(self, image, lens.focus_diopters, scale)  # once per frame (``_flow``)
        if self._sharp is not None and self._flow_now is not None:
            flow = self._flow_now
            self._sharp, self._res = warp(self._sharp, flow), warp(self._res, flow)
            self._n = warp(self._n, flow).reshape(g.shape + (1,))
        if self._sharp is None:
            self._sharp = np.repeat(g[..., None], self.w_k.size, 2).astype(np.float32)
            self._sharp_sigma = sigma.copy()
            self._res, self._n = np.zeros_like(self._sharp), np.zeros(g.shape + (1,), np.float32)
        else:
            highpass = lambda x: x - cv2.GaussianBlur(x, (0, 0), 3.0)  # noqa: E731
            res = np.empty_like(self._sharp)
            for k in range(self.w_k.size):
                ref, s_ref = self._sharp[..., k], self._sharp_sigma[k]
                if sigma[k] >= s_ref:
                    pred, target = self._blur(ref, math.sqrt(sigma[k] ** 2 - s_ref**2)), g
                else:
                    pred, target = self._blur(g, math.sqrt(s_ref**2 - sigma[k] ** 2)), ref
                    self._sharp[..., k], self._sharp_sigma[k] = g, sigma[k]
                d, e1, e2 = highpass(pred - target), highpass(target), highpass(pred)
                box = lambda x: cv2.boxFilter(x, -1, (5, 5))  # noqa: E731
                res[..., k] = box(d * d) / (box(e1 * e1) + box(e2 * e2) + 1e-7)
            self._res, self._n = self.decay * self._res + res, self.decay * self._n + 1.0
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _flow(self, *args):
        return self._flow_now  # the reference's own warp uses the flow ``process`` computed for this frame

    def _cost(self):
        cost = super()._cost()
        if self._n.max() > 0:
            res = self._res / np.maximum(self._n, 1e-3)
            res = (res - res.min(2, keepdims=True)) * np.minimum(self._n, 3.0) / 3.0
            cost = (0.0 if self.alone else cost) + self.lam * COST_NOISE_REL * self.q0**2 * res
        return cost.astype(np.float32)


def _down(x):
    h, w = x.shape[:2]
    hh, ww = (h + 1) // 2, (w + 1) // 2
    p = np.pad(x, ((0, 2 * hh - h), (0, 2 * ww - w)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    return p.reshape(hh, 2, ww, 2, *x.shape[2:]).mean((1, 3))


def guided_fill(value, weight, guide, full_weight=0.5, sigma_g=0.05, levels=8):
    """push_pull_fill whose upsampling is a joint-bilateral step: coarse 3x3 neighbours weighted by guide similarity."""
    num, den, gd = [value * weight], [weight.astype(np.float32)], [guide]
    for _ in range(levels):
        if min(num[-1].shape[:2]) <= 2:
            break
        num.append(_down(num[-1]))
        den.append(_down(den[-1]))
        gd.append(_down(gd[-1]))
    total = float(den[0].sum())
    filled = np.where(den[-1] > 1e-9 * total, num[-1] / np.maximum(den[-1], 1e-30),
                      float(num[0].sum() / max(total, 1e-30)))  # fmt: skip
    density = den[-1]
    for lvl in range(len(num) - 2, -1, -1):
        h, w = den[lvl].shape
        coarse_g = gd[lvl + 1]
        acc, wsum = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        ys, xs = np.arange(h) // 2, np.arange(w) // 2
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = np.clip(ys + dy, 0, coarse_g.shape[0] - 1), np.clip(xs + dx, 0, coarse_g.shape[1] - 1)
                cy, cx = (np.arange(h) + 0.5) / 2 - (yy + 0.5), (np.arange(w) + 0.5) / 2 - (xx + 0.5)
                spatial = np.exp(-(cy[:, None] ** 2 + cx[None, :] ** 2) / 0.5)
                similar = np.exp(-((coarse_g[yy][:, xx] - gd[lvl]) ** 2).sum(-1) / (2 * sigma_g**2))
                wt = spatial * similar * np.minimum(density[yy][:, xx] + 1e-6, 1.0)
                acc += wt * filled[yy][:, xx]
                wsum += wt
        alpha = np.clip(den[lvl] / full_weight, 0.0, 1.0)
        filled = alpha * (num[lvl] / np.maximum(den[lvl], 1e-12)) + (1 - alpha) * acc / np.maximum(wsum, 1e-12)
        density = np.maximum(den[lvl] / full_weight,
                             0.5 * cv2.resize(density, (w, h), interpolation=cv2.INTER_NEAREST))  # fmt: skip
    return filled.astype(np.float32), np.clip(den[0] / full_weight, 0.0, 1.0)


class GuidedFill(FocusReference):
    """The reference with ``guided_fill`` (Lab colour of the half-resolution frame) in place of push_pull_fill."""

    def process(self, image, K, lens, stamp_ns=0, frame_id=""):
        half = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        self._lab = cv2.cvtColor(cv2.resize(image, half, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB) / 255.0
        return super().process(image, K, lens, stamp_ns, frame_id)

    def _fill(self, inv_depth, conf):
        return guided_fill(inv_depth, conf * conf, self._lab.astype(np.float32), self.fill_full_conf)[0]


VARIANTS = {
    "classical reference (as shipped)": FocusReference,
    "cost window 5 px (11)": lambda: FocusReference(cost_window_px=5),
    "decay 0.90 (0.95)": lambda: FocusReference(decay=0.9),
    "48 hypotheses (32)": lambda: FocusReference(num_hypotheses=48),
    "fill full confidence 0.25 (0.5)": lambda: FocusReference(fill_full_conf=0.25),
    "multiband: sigma 1, 2, 4 px": MultiBand,
    "fine band: sigma 0.5 px (1)": lambda: MultiBand(bands=((0.5, 5),)),
    "texture-adaptive falloff": TextureAdaptive,
    "re-blur + fit": Reblur,
    "re-blur alone": lambda: Reblur(alone=True),
    "guided fill": GuidedFill,
}


# ----------------------------------------------------------------------------- data and scoring


def val_sequences():
    """The generated validation clips as {name: [(image, K, lens, stamp_ns, depth)]}."""
    from training.data import ClipCache, build_cache, unit_lens_camera
    from training.train_focus_volume import VAL_SET

    data = ClipCache(build_cache(VAL_SET))
    h, w = data.images.shape[2:4]
    out = {}
    for i in range(len(data)):
        frames = []
        for t in range(data.images.shape[1]):
            K, unit_lens = unit_lens_camera(data.lens[i, t], h, w)
            frames.append((np.asarray(data.images[i, t]), K, unit_lens, 10**9 * (t + 1),
                           data.depth[i, t].astype(np.float32)))  # fmt: skip
        out[f"val_{i:02d}"] = frames
    return out


def bag_sequences(folder: Path):
    from dfd_depth_ros.evaluation.bagio import read_sequence_bag

    out = {}
    for meta in sorted(folder.glob("*/metadata.yaml")):
        seq = read_sequence_bag(meta.parent, require_depth=True)
        out[meta.parent.name] = [(f.image, f.K, f.lens, f.stamp_ns, f.depth_m) for f in seq.frames]
    return out


def score(factory, sequences) -> dict[str, tuple[float, int]]:
    """{sequence: (mean abs_rel over its frames, frames)}, a fresh estimator per sequence."""
    out = {}
    for name, frames in sequences.items():
        est = factory()
        rel = [frame_metrics(est.process(img, K, lens, stamp, "")[0], gt)["abs_rel"]
               for img, K, lens, stamp, gt in frames]
        out[name] = (float(np.nanmean(rel)), len(rel))
    return out


def frame_weighted(rows: dict[str, tuple[float, int]], skip=()) -> float:
    kept = [v for k, v in rows.items() if k not in skip]
    return sum(a * n for a, n in kept) / sum(n for _, n in kept)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bags", default="data/benchmark", help="folder of benchmark bags (python -m benchmark.build)")
    p.add_argument("--no-val", action="store_true", help="skip the generated validation clips")
    p.add_argument("--out", help="write the markdown table here")
    a = p.parse_args(argv)
    sets = {}
    if not a.no_val:
        sets["val (generated, 30 clips)"] = (val_sequences(), ())
    bags = Path(a.bags)
    if any(bags.glob("*/metadata.yaml")):
        sets["benchmark (path-traced, 12 bags)"] = (bag_sequences(bags), WEAK_BAGS)
    else:
        print(f"no bags under {bags}: benchmark column skipped", file=sys.stderr)
    header = "| variant | " + " | ".join(sets) + " |"
    lines = [header, "|---|" + "---|" * len(sets)]
    print(header, flush=True)
    for label, factory in VARIANTS.items():
        t0 = time.time()
        cells = [f"{frame_weighted(score(factory, seqs), skip):.3f}" for seqs, skip in sets.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], f"({time.time() - t0:.0f} s)", flush=True)
    if a.out:
        intro = ("abs_rel (frame-weighted mean over the set's frames) of the classical reference with one change each; "
                 "`.venv/bin/python scripts/evidence_ablation.py --out docs/evidence_ablation.md` "
                 "(see the script's docstring for what each variant is).\n\n")  # fmt: skip
        Path(a.out).write_text("# Evidence ablation\n\n" + intro + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
