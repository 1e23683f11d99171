"""How readable is the defocus cue in the generated data, and how much of it does a model read?

    python -m training.diagnose_cue [--checkpoint models/dfd_recurrent.pt]

On the validation set (training.validate.VAL_SET) it prints
1. the classical re-blur ratio sqrt(E_1 / E_0) (gradient energy after and before a sigma 1 px
   Gaussian; FocusMeasure in dfd_depth_ros/network.py) averaged over textured pixels, binned by
   the true blur diameter: if the bins barely differ, a single frame says little about blur size;
2. for a defocus model, per schedule: mean fx*D, the error of the predicted blur diameter, the
   pixel correlation between predicted and true blur, the share of pixels blurred by more than
   2 px placed on the right side of the focal plane, and abs_rel.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

from dfd_depth_ros.network import FocusMeasure
from dfd_depth_ros.synthetic import SCHEDULES
from training.data import ClipCache, build_cache
from training.train import load_model
from training.validate import VAL_SET

BLUR_BINS_PX = (0, 1, 2, 4, 8, 16, 40)


def reblur_ratio_by_blur(data: ClipCache, frames=(0, 8)) -> list[tuple[str, float, int]]:
    """[(bin label, mean ratio, pixel count)] over textured pixels of the given frames of every clip."""
    fm = FocusMeasure()  # channel 0: 0.1 (ln(E_0 + eps) + 7); channel 1: sqrt(E_1 / E_0) (sigma 1 px)
    ratios, blurs = [], []
    for i in range(len(data)):
        b = data.batch([i])
        for t in frames:
            with torch.no_grad():
                channels = fm(b["image"][:, t])[0]
            k, inv_f = (float(x) for x in b["lens"][0, t])
            blur = (k * (inv_f - 1.0 / b["depth"][0, t, 0])).abs()
            textured = torch.isfinite(blur) & (channels[0] > -0.2)  # ln(E_0 + eps) > -9
            ratios.append(channels[1][textured].numpy())
            blurs.append(blur[textured].numpy())
    r, c = np.concatenate(ratios), np.concatenate(blurs)
    out = []
    for lo, hi in zip(BLUR_BINS_PX, BLUR_BINS_PX[1:]):
        sel = (c >= lo) & (c < hi)
        out.append((f"{lo}-{hi} px", float(r[sel].mean()) if sel.any() else float("nan"), int(sel.sum())))
    return out


def model_blur_reading(checkpoint: str, data: ClipCache) -> dict[str, dict[str, float]]:
    """Per schedule: mean fx*D, blur error (px), blur correlation, side accuracy where |c| > 2 px, abs_rel."""
    net, _ = load_model(checkpoint)
    if not net.cfg.uses_lens:
        raise SystemExit(f"{checkpoint} has no defocus head")
    rows: dict[str, list] = {s: [] for s in SCHEDULES}
    for i in tqdm(range(len(data)), desc="clips", unit="clip"):
        b = data.batch([i])
        _, t_len, _, h, w = b["image"].shape
        state = net.initial_state(1, h, w)
        for t in range(t_len):
            with torch.no_grad():
                out = net.forward_all(b["image"][:, t], b["lens"][:, t], state)
            state = out["state"]
            gt = b["depth"][0, t, 0]
            k, inv_f = (float(x) for x in b["lens"][0, t])
            valid = torch.isfinite(gt) & (gt > 0.1) & (gt < 20.0)
            signed = k * (inv_f - 1.0 / gt)
            pred_c, p_behind = out["blur_px"][0, 0][valid], out["p_behind"][0, 0]
            true_c = signed.abs()[valid]
            big = valid & (signed.abs() > 2.0)
            rows[SCHEDULES[int(data.schedule[i])]].append([
                k, float((pred_c - true_c).abs().mean()), float(np.corrcoef(pred_c.numpy(), true_c.numpy())[0, 1]),
                float(((p_behind[big] > 0.5) == (signed[big] > 0)).float().mean()) if big.any() else np.nan,
                float(((out["depth_m"][0, 0][valid] - gt[valid]).abs() / gt[valid]).mean())])
    keys = ("fx_D_pxm", "blur_err_px", "blur_corr", "side_acc_gt2px", "abs_rel")
    return {s: dict(zip(keys, np.nanmean(np.array(v, float), axis=0).tolist())) for s, v in rows.items() if v}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a defocus model's checkpoint (.pt) to inspect as well")
    ap.add_argument("--cache", default="data/cache", help="folder for the rendered validation cache")
    args = ap.parse_args(argv)
    data = ClipCache(build_cache(VAL_SET, args.cache))
    print("re-blur ratio sqrt(E1/E0) on textured pixels, by true blur diameter:")
    for label, ratio, n in reblur_ratio_by_blur(data):
        print(f"  {label:>9s}: {ratio:.3f}  ({n} px)")
    if args.checkpoint:
        print(f"\n{args.checkpoint}:")
        for sched, m in model_blur_reading(args.checkpoint, data).items():
            print(f"  {sched:12s} " + "  ".join(f"{k} {v:.2f}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
