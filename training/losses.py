"""Training losses. Every function takes (B, 1, H, W) maps (or (B, T, 1, H, W) clips) and a validity mask.

- ``inverse_depth_l1`` + ``silog``: metric depth (no scale alignment: the optics fix the scale).
- ``gradient_matching``: edge-aware term; matches the spatial gradients of log depth at several
  scales, so depth edges land where the image has them and flat regions stay flat.
- ``temporal_consistency``: penalises the frame-to-frame change of the log-depth error
  e_t = ln p_t - ln g_t (the bag contract's ``flicker``), which needs no warping.
- ``blur_l1`` + ``sign_bce``: auxiliary supervision of the defocus head (blur size in px, side of
  the focal plane), weighted by blur so that pixels near focus, whose side is irrelevant, count little.
- ``confidence_bce``: confidence learns to predict exp(-|ln p - ln g| / tau).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-6


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def inverse_depth_l1(pred_m: torch.Tensor, gt_m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |1/p - 1/g| in dioptres over valid pixels."""
    return _masked_mean((1.0 / pred_m - 1.0 / gt_m.clamp_min(_EPS)).abs(), mask)


def silog(pred_m: torch.Tensor, gt_m: torch.Tensor, mask: torch.Tensor, lam: float = 0.85) -> torch.Tensor:
    """Scale-invariant log loss sqrt(mean d^2 - lam mean(d)^2), d = ln p - ln g; lam < 1 keeps a metric part."""
    d = (torch.log(pred_m.clamp_min(_EPS)) - torch.log(gt_m.clamp_min(_EPS))) * mask
    n = mask.sum().clamp_min(1.0)
    return torch.sqrt(((d**2).sum() / n - lam * (d.sum() / n) ** 2).clamp_min(1e-8))


def gradient_matching(pred_m: torch.Tensor, gt_m: torch.Tensor, mask: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale L1 on the x/y gradients of the log-depth error (edge-aware: sharp, aligned depth edges)."""
    d = torch.log(pred_m.clamp_min(_EPS)) - torch.log(gt_m.clamp_min(_EPS))
    d = torch.where(mask > 0, d, torch.zeros_like(d))
    m = mask
    total = pred_m.new_zeros(())
    for s in range(scales):
        if s:
            d = F.avg_pool2d(d, 2)
            m = (F.avg_pool2d(m, 2) > 0.999).float()
        gx = (d[..., :, 1:] - d[..., :, :-1]).abs() * m[..., :, 1:] * m[..., :, :-1]
        gy = (d[..., 1:, :] - d[..., :-1, :]).abs() * m[..., 1:, :] * m[..., :-1, :]
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1.0)
    return total / scales


def temporal_consistency(pred_m: torch.Tensor, gt_m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Clips (B, T, 1, H, W): mean |e_t - e_(t-1)|, e = ln p - ln g, over pixels valid in both frames."""
    e = torch.log(pred_m.clamp_min(_EPS)) - torch.log(gt_m.clamp_min(_EPS))
    both = mask[:, 1:] * mask[:, :-1]
    return _masked_mean((e[:, 1:] - e[:, :-1]).abs(), both)


def blur_l1(pred_blur_px: torch.Tensor, gt_blur_px: torch.Tensor, mask: torch.Tensor, norm_px: float = 10.0):
    """Mean |c_pred - c_gt| / norm_px."""
    return _masked_mean((pred_blur_px - gt_blur_px).abs() / norm_px, mask)


def sign_bce(p_behind: torch.Tensor, gt_signed_blur_px: torch.Tensor, mask: torch.Tensor, soft_px: float = 1.0):
    """BCE of 'behind the focal plane', weighted by min(|c| / soft_px, 1): near-focus pixels barely count."""
    target = (gt_signed_blur_px > 0).float()
    weight = mask * (gt_signed_blur_px.abs() / soft_px).clamp(max=1.0)
    bce = F.binary_cross_entropy(p_behind.clamp(1e-5, 1 - 1e-5), target, reduction="none")
    return (bce * weight).sum() / weight.sum().clamp_min(1.0)


def confidence_bce(confidence: torch.Tensor, pred_m: torch.Tensor, gt_m: torch.Tensor, mask: torch.Tensor,
                   tau: float = 0.1) -> torch.Tensor:
    """Teach confidence to predict exp(-|ln p - ln g| / tau) (1 = error well under tau, 0 = far off)."""
    err = (torch.log(pred_m.detach().clamp_min(_EPS)) - torch.log(gt_m.clamp_min(_EPS))).abs()
    target = torch.exp(-err / tau)
    bce = F.binary_cross_entropy(confidence.clamp(1e-5, 1 - 1e-5), target, reduction="none")
    return _masked_mean(bce, mask)
