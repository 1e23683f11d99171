"""Depth from defocus over a lens-model cost volume: physics in the graph, learning only what it leaves open.

    forward(image, lens, state[, flow]) -> (depth_m, confidence, state)

How it reads a frame:
1. Hypotheses: a fixed grid of K inverse depths w_k (dioptres, uniform between 1/max_depth and
   1/min_depth of the grid). The lens gives each its blur in this frame, c_k = fx D |w_k - 1/focus| px
   (``hypothesis_blur_px``, optics.blur_diameter_px); this is the only way the lens enters the graph.
2. Evidence: ``BlurNet``, a small fully-convolutional CNN, reads the frame (and the fixed
   ``FocusMeasure`` channels) and gives per pixel, at 1/2 resolution, log-probabilities over
   ``BLUR_BINS_PX`` (blur diameters in input px). The evidence of hypothesis k is that log-likelihood
   interpolated piecewise-linearly at c_k (``blur_bin_weights`` @ (log p - a learned log prior per bin)).
3. State: the decayed running sum S_k of the evidence, aligned to the current frame by an optional dense
   flow before the new evidence is added (``warp``, grid_sample), and a decayed frame count n.
4. Readout: a posterior softmax(beta S) over the grid (S box-averaged over a few pixels first). Its peak
   (expectation within a window around the argmax), mean, spread and peak mass feed a small image-guided
   refinement CNN that predicts a residual inverse depth and a confidence (filling flat regions from their
   surroundings); bilinear upsampling to the input size. Depth outside the swept focus range is reachable:
   the grid is fixed.

Front/back: two depths with the same blur in one frame get the same evidence; a focus change moves
their blurs apart and the sum tells them apart. Under a fixed focus the two stay tied.

Shapes: image (B,3,H,W) RGB in [0,1], H and W multiples of 8 (the contract's STRIDE). lens (B,2) =
[fx*D px*m at the input resolution, 1/focus 1/m]. state (B, K+1, H/2, W/2) = [S_k, n]; zeros = reset.
With pair_evidence the state also carries BlurNet's features and the lens of the previous frame.
flow (B,2,H/2,W/2), in state px, with current(x) ~ previous(x + flow(x)) (flow.blur_equalised_flow).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dfd_depth_ros.config_dict import DictConfig
from dfd_depth_ros.focus_volume_network import conv_block as _conv
from dfd_depth_ros.focus_volume_network import warp as warp_bilinear
from dfd_depth_ros.network import FocusMeasure

STRIDE = 8  # input height and width must be multiples of this (the contract's)
STATE_STRIDE = 2  # the evidence and the state live at 1/2 resolution
BLUR_BINS_PX = (0.0, 1.0, 2.0, 3.0, 4.5, 6.5, 9.0, 12.0, 16.0, 21.0, 28.0)
PEAK_WINDOW = 2.0  # hypotheses: width (sigma) of the window around the argmax that the peak is read in


@dataclass(frozen=True)
class VolumeConfig(DictConfig):
    """Architecture of a cost-volume model; saved inside every checkpoint and exported model.

    name: the run / model name. architecture: "dfd_volume" (tells loaders which class to build).
    num_hypotheses, grid_near_m, grid_far_m: the inverse-depth grid (uniform in dioptres).
    decay: per-frame factor of the accumulated evidence. blur_width, refine_width: CNN channels.
    aggregate_px: odd box window (state px) the evidence is averaged over before the posterior (1: none).
    pair_evidence: from the second frame on, the evidence is a joint likelihood over (blur now, blur in the previous
        frame) from BlurNet's features of both frames (the state keeps the previous features and lens), so the
        texture's own sharpness cancels between the two; False: one frame's blur likelihood only.
    min_depth_m, max_depth_m: output range. flow_input: the graph takes a flow input and aligns the state.
    """

    KIND = "volume config"

    name: str = "dfd_volume"
    architecture: str = "dfd_volume"
    num_hypotheses: int = 32
    grid_near_m: float = 0.25
    grid_far_m: float = 12.0
    decay: float = 0.93
    blur_width: int = 24
    refine_width: int = 24
    aggregate_px: int = 5
    pair_evidence: bool = False
    min_depth_m: float = 0.1
    max_depth_m: float = 20.0
    flow_input: bool = False

    def __post_init__(self):
        if self.architecture != "dfd_volume":
            raise ValueError(f"architecture must be 'dfd_volume', got {self.architecture!r}")
        if not 0 < self.grid_near_m < self.grid_far_m or self.num_hypotheses < 2 or not 0 < self.decay <= 1:
            raise ValueError("need 0 < grid_near_m < grid_far_m, num_hypotheses >= 2 and 0 < decay <= 1")
        if self.aggregate_px < 1 or self.aggregate_px % 2 == 0:
            raise ValueError(f"aggregate_px must be odd and >= 1, got {self.aggregate_px}")


def hypothesis_blur_px(w_k: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Blur diameter (B, K) px of each hypothesis: fx D |w_k - 1/focus|; w_k (K,) 1/m, lens (B, 2)."""
    return lens[:, 0:1] * (w_k[None, :] - lens[:, 1:2]).abs()


def blur_bin_weights(c_px: torch.Tensor, bins_px: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation weights (..., J) of blurs c_px (...) over bins (J,); rows sum to 1.

    Blurs beyond the last bin take the last bin entirely (and below the first, the first).
    """
    c = c_px.clamp(float(bins_px[0]), float(bins_px[-1]))[..., None]
    left = torch.cat([bins_px[:1] - 1.0, bins_px[:-1]])  # previous bin (a dummy before the first)
    right = torch.cat([bins_px[1:], bins_px[-1:] + 1.0])
    up = (c - left) / (bins_px - left)  # rises from the previous bin to this one
    down = (right - c) / (right - bins_px)  # falls from this bin to the next
    return torch.minimum(up, down).clamp(0.0, 1.0)


def evidence_from_log_likelihood(log_p: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Evidence (B, K, h, w) of each hypothesis from blur log-probabilities (B, J, h, w) and weights (B, K, J)."""
    b, j, h, w = log_p.shape
    return torch.matmul(weights, log_p.reshape(b, j, h * w)).reshape(b, -1, h, w)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample x (B, C, h, w) at pixel + flow (B, 2, h, w) [dx, dy] px, bilinear, border replicated."""
    return warp_bilinear(x, flow, "border")


def accumulate(state: torch.Tensor, evidence: torch.Tensor, decay: float) -> torch.Tensor:
    """New [decay S + evidence, decay n + 1] (B, K+1, h, w) from [S, n, ...] (B, >= K+1, h, w), evidence (B,K,h,w)."""
    k = evidence.shape[1]
    return torch.cat([decay * state[:, :k] + evidence, decay * state[:, k : k + 1] + 1.0], 1)


class BlurNet(nn.Module):
    """Local blur likelihood: image (B,3,H,W) in [0,1] -> log-probabilities (B, J, H/2, W/2) over BLUR_BINS_PX.

    Dilated convolutions at 1/2 resolution give a receptive field of about 60 input px (the largest bin
    is 28 px), without any further downsampling, so the likelihood stays local.
    """

    def __init__(self, width: int = 24, bins: int = len(BLUR_BINS_PX), pair: bool = False):
        super().__init__()
        self.width = width
        self.focus = FocusMeasure()
        cin = 3 + self.focus.channels
        self.body = nn.Sequential(_conv(cin, width, 2), _conv(width, width), _conv(width, width, 1, 2),
                                  _conv(width, width, 1, 4), _conv(width, width, 1, 8), _conv(width, width, 1, 2))
        self.head = nn.Conv2d(width, bins, 1)
        # (features now, features before) -> joint log-probabilities (B, J*J, h, w), index j_now * J + j_before
        self.pair = nn.Sequential(_conv(2 * width, width), nn.Conv2d(width, bins * bins, 1)) if pair else None

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B, width, H/2, W/2)."""
        return self.body(torch.cat([(image - 0.45) / 0.25, self.focus(image)], 1))

    def single(self, feat: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.head(feat), dim=1)

    def joint(self, feat: torch.Tensor, feat_prev: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.pair(torch.cat([feat, feat_prev], 1)), dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.single(self.features(image))


class Refine(nn.Module):
    """Image-guided readout: (B, 3 + 4, h, w) -> residual inverse depth (B,1,h,w) and confidence logit (B,1,h,w).

    A two-level encoder-decoder (1/2 and 1/4 of the state resolution, with dilation there) so flat regions
    take their depth from textured surroundings.
    """

    def __init__(self, width: int = 24, cin: int = 7):
        super().__init__()
        self.inp = _conv(cin, width)
        self.down = nn.Sequential(_conv(width, width, 2), _conv(width, width, 2), _conv(width, width, 1, 2),
                                  _conv(width, width, 1, 4))
        self.up = nn.Sequential(_conv(2 * width, width), _conv(width, width))
        self.out = nn.Conv2d(width, 2, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.inp(x)
        g = F.interpolate(self.down(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.up(torch.cat([f, g], 1)))


class VolumeNet(nn.Module):
    """Cost-volume depth-from-defocus network; see the module docstring for the interface."""

    STATE_STRIDE = STATE_STRIDE

    def __init__(self, cfg: VolumeConfig = VolumeConfig()):
        super().__init__()
        self.cfg = cfg
        w_k = torch.linspace(1.0 / cfg.grid_far_m, 1.0 / cfg.grid_near_m, cfg.num_hypotheses)
        self.register_buffer("w_k", w_k)  # (K,) dioptres
        self.register_buffer("bins_px", torch.tensor(BLUR_BINS_PX))
        self.blur = BlurNet(cfg.blur_width, pair=cfg.pair_evidence)
        self.refine = Refine(cfg.refine_width)
        self.log_beta = nn.Parameter(torch.zeros(()))  # posterior sharpness: softmax(beta S)
        # Subtracted from BlurNet's log p(c | image) so that the evidence is a likelihood (ratio), not the training
        # set's prior over blur summed once per frame (learned end to end; 0 = no correction).
        self.log_prior = nn.Parameter(torch.zeros(len(BLUR_BINS_PX)))
        self.res_scale = nn.Parameter(torch.tensor(0.1))  # residual inverse depth per unit output, in grid spans

    @property
    def state_channels(self) -> int:
        """K + 1 ([S_k, n]), plus blur_width + 2 (previous features and lens) with pair_evidence."""
        return self.cfg.num_hypotheses + 1 + (self.cfg.blur_width + 2 if self.cfg.pair_evidence else 0)

    def initial_state(self, batch: int, height: int, width: int, device=None) -> torch.Tensor:
        """The zero ("no memory") state (B, state_channels, H/2, W/2) for an input of height x width px."""
        return torch.zeros(batch, self.state_channels, -(-height // STATE_STRIDE), -(-width // STATE_STRIDE),
                           device=device)  # fmt: skip

    def forward(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor, flow: torch.Tensor | None = None):
        """image (B,3,H,W), lens (B,2), state (B,K+1,H/2,W/2)[, flow] -> depth_m (B,1,H,W), confidence, state."""
        out = self.forward_all(image, lens, state, flow)
        return out["depth_m"], out["confidence"], out["state"]

    def posterior(self, state: torch.Tensor) -> torch.Tensor:
        """Posterior (B, K, h, w) over the grid from a state (evidence box-averaged); uniform for the zero state."""
        s, k = state[:, : self.cfg.num_hypotheses], self.cfg.aggregate_px
        if k > 1:  # mean over the window's pixels inside the image (count_include_pad=False exports size-bound)
            s = F.avg_pool2d(s, k, 1, k // 2) / F.avg_pool2d(torch.ones_like(s[:, :1]), k, 1, k // 2)
        return torch.softmax(torch.exp(self.log_beta) * s, dim=1)

    def readout(self, prob: torch.Tensor) -> dict[str, torch.Tensor]:
        """Peak and mean inverse depth, spread (all (B,1,h,w) 1/m) and peak mass of a posterior (B,K,h,w)."""
        w = self.w_k.reshape(1, -1, 1, 1)
        k_idx = torch.arange(self.cfg.num_hypotheses, dtype=prob.dtype, device=prob.device).reshape(1, -1, 1, 1)
        best = (prob >= prob.amax(1, keepdim=True)).to(prob.dtype)
        k_best = (best * k_idx).sum(1, keepdim=True) / best.sum(1, keepdim=True)
        window = prob * torch.exp(-0.5 * ((k_idx - k_best) / PEAK_WINDOW) ** 2)
        mass = window.sum(1, keepdim=True)
        w_peak = (window * w).sum(1, keepdim=True) / mass.clamp_min(1e-12)
        w_mean = (prob * w).sum(1, keepdim=True)
        spread = ((prob * (w - w_mean) ** 2).sum(1, keepdim=True) + 1e-12).sqrt()
        return {"w_peak": w_peak, "w_mean": w_mean, "spread": spread, "peak_mass": mass}

    def forward_all(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor,
                    flow: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """Like forward, plus what training supervises: log_p (B,J,h,w), inv_depth_lo (B,1,h,w), prob (B,K,h,w)."""
        h, w = image.shape[-2:]
        if h % STRIDE or w % STRIDE:
            raise ValueError(f"input height and width must be multiples of {STRIDE}, got {h}x{w}")
        weights = blur_bin_weights(hypothesis_blur_px(self.w_k, lens), self.bins_px)  # (B, K, J)
        if flow is not None:
            state = warp(state, flow)
        extra = {}
        if self.cfg.pair_evidence:
            feat = self.blur.features(image)
            log_p = self.blur.single(feat)
        else:
            log_p = self.blur(image)
        evidence = evidence_from_log_likelihood(log_p - self.log_prior.reshape(1, -1, 1, 1), weights)
        if self.cfg.pair_evidence:
            k, c = self.cfg.num_hypotheses, self.cfg.blur_width
            lens_prev = state[:, k + 1 + c :].mean((2, 3))  # (B, 2), constant channels
            weights_prev = blur_bin_weights(hypothesis_blur_px(self.w_k, lens_prev), self.bins_px)
            joint = (weights[..., :, None] * weights_prev[..., None, :]).flatten(2)  # (B, K, J*J)
            log_pair = self.blur.joint(feat, state[:, k + 1 : k + 1 + c])
            has_prev = (state[:, k : k + 1] > 0).to(image.dtype)
            evidence = has_prev * evidence_from_log_likelihood(log_pair, joint) + (1 - has_prev) * evidence
            extra = {"log_pair": log_pair}
            lens_map = lens.reshape(-1, 2, 1, 1).expand(-1, 2, feat.shape[2], feat.shape[3])
            state = torch.cat([accumulate(state, evidence, self.cfg.decay), feat, lens_map], 1)
        else:
            state = accumulate(state, evidence, self.cfg.decay)
        prob = self.posterior(state)
        r = self.readout(prob)
        span = float(self.w_k[-1] - self.w_k[0])
        small = F.avg_pool2d(image, STATE_STRIDE)
        feats = torch.cat([(small - 0.45) / 0.25, (r["w_peak"] - self.w_k[0]) / span * 2 - 1,
                           (r["w_mean"] - self.w_k[0]) / span * 2 - 1, r["spread"] / span * 4, r["peak_mass"]], 1)
        res = self.refine(feats)
        w_lo, w_hi = 1.0 / self.cfg.max_depth_m, 1.0 / self.cfg.min_depth_m
        inv_lo = (r["w_peak"] + self.res_scale * span * torch.tanh(res[:, :1])).clamp(w_lo, w_hi)
        conf_lo = torch.sigmoid(res[:, 1:2] + 4.0 * r["peak_mass"] - 2.0)
        inv_depth = F.interpolate(inv_lo, size=(h, w), mode="bilinear", align_corners=False)
        confidence = F.interpolate(conf_lo, size=(h, w), mode="bilinear", align_corners=False)
        return {"depth_m": 1.0 / inv_depth, "inv_depth": inv_depth, "confidence": confidence, "state": state,
                "log_p": log_p, "inv_depth_lo": inv_lo, "prob": prob, **r, **extra}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
