"""The shipped estimator: physics evidence over a lens-model cost volume, with an optional learned readout on top.

The shipped model (models/dfd_recurrent.onnx) is this graph with ``learned`` False and the evidence knobs chosen on the
path-traced dev set (decay 0.9, cost_window_px 5, fill_full_conf 0.05): no readout trained so far beat it there.

    forward(image, lens, state[, flow]) -> (depth_m, confidence, state)

How it reads a frame (everything up to step 3 has no parameters; ``evidence.FocusEvidence``):
1. Hypotheses: a fixed grid of K inverse depths w_k (uniform in dioptres between 1/grid_far_m and
   1/grid_near_m). The lens gives each its blur in this frame, c_k = fx D |w_k - 1/focus|: the only
   way the lens enters, so new lenses, schedules and resolutions are handled by the thin-lens model.
2. Evidence: a noise-floored band-pass focus measure q per pixel (1/2 resolution) and, per hypothesis,
   the measure its blur should give, h(c_k) (calibrated once on a 1/f texture). The state keeps the
   decayed per-pixel sufficient statistics of the fit q_t ~ a h(c_kt) + b over the whole history; a
   flow (optional input, computed outside the graph on blur-equalised frames, ``flow.FlowTracker``)
   aligns it to the current frame first, and content that comes into view starts with no evidence.
3. Physics estimate: the cost volume (mean squared residual of the fit per hypothesis), the best
   hypothesis with its margin confidence, and a confidence-weighted push-pull fill: the classical
   reference (evaluation/focus_reference.py) computed in the graph.
4. Learned readout (``Readout``, what physics leaves open): an image-guided encoder-decoder reads the
   cost volume, the physics estimate, its confidence, how far the focus has moved (front/back is tied
   under a fixed focus) and the frame, and predicts a residual inverse depth on the filled estimate
   and a calibrated confidence. It is zero-initialised: an untrained model is the physics estimate.

Shapes: image (B,3,H,W) sRGB in [0,1], H and W multiples of 8 (the contract's STRIDE). lens (B,2) =
[fx*D px*m at the input resolution, 1/focus 1/m]. state (B, 3K+6, H/2, W/2); zeros = reset.
flow (B,2,H/2,W/2) in state px, current(x) ~ previous(x + flow(x)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dfd_depth_ros.config_dict import DictConfig
from dfd_depth_ros.evidence import COST_WINDOW_PX, FILL_FULL_CONF, FOCUS_SPREAD_PX, FocusEvidence

STRIDE = 8  # input height and width must be multiples of this (the contract's)
STATE_STRIDE = 2  # the evidence and the state live at 1/2 resolution
ARCHITECTURE = "dfd_focus_volume"


@dataclass(frozen=True)
class FocusVolumeConfig(DictConfig):
    """Architecture of the focus-volume model; saved inside every checkpoint and exported model.

    name: the run / model name. architecture: ARCHITECTURE (tells loaders which class to build).
    num_hypotheses, grid_near_m, grid_far_m: the inverse-depth grid (uniform in dioptres).
    decay: per-frame factor of the accumulated evidence. cost_window_px: the box (1/2-resolution px) the cost volume
        is averaged over before the best hypothesis; fill_full_conf: the confidence from which a pixel keeps its own
        depth in the push-pull fill (FocusEvidence's; the defaults are the classical reference's).
    width: channels of the learned readout; top_width: of its full-resolution level (0: two convolutions of
        ``width``, the first layout; see ``Readout``).
    learned: False = the physics estimate alone (no learned readout; the classical reference in the graph, with this
        config's knobs): the shipped model.
    flow_input: the graph takes a flow input and aligns the state with it.
    readout_image: what the readout sees of the frame: "rgb", "gray" (the mean of the three channels, so colour
        statistics of the training renderer cannot matter) or "none".
    fixed_focus_gate: scale the learned residual by how far the focus has moved (the history's focus spread over
        evidence.FOCUS_SPREAD_PX px of blur, at most 1): while it has not, front and back of the focal plane are
        tied and only a prior can choose; then the physics estimate's own (near the focal plane) stands.
    lens_input: False = the ``monocular`` baseline of the ablation: the readout sees the frame alone (every channel
        the lens model made is zeroed in the graph) and its residual starts from the middle of the grid, not from
        the physics estimate; the graph keeps the lens input of the model contract and ignores it.
    ensemble: how many readouts of the same layout (independently trained runs) read the same features; their
        residual inverse depths and confidence logits are averaged (1: one readout, the shipped layout). Runs of
        the recipe differ on independent data by more than they gain over the physics; the mean of several
        varies less.
    min_depth_m, max_depth_m: output range.
    """

    KIND = "focus-volume config"

    name: str = "dfd_recurrent"
    architecture: str = ARCHITECTURE
    num_hypotheses: int = 32
    grid_near_m: float = 0.25
    grid_far_m: float = 12.0
    decay: float = 0.95
    cost_window_px: int = COST_WINDOW_PX
    fill_full_conf: float = FILL_FULL_CONF
    width: int = 24
    top_width: int = 0
    learned: bool = True
    flow_input: bool = False
    readout_image: str = "rgb"
    fixed_focus_gate: bool = False
    lens_input: bool = True
    ensemble: int = 1
    min_depth_m: float = 0.1
    max_depth_m: float = 20.0

    def __post_init__(self):
        if self.architecture != ARCHITECTURE:
            raise ValueError(f"architecture must be {ARCHITECTURE!r}, got {self.architecture!r}")
        if not 0 < self.grid_near_m < self.grid_far_m or self.num_hypotheses < 4 or not 0 < self.decay <= 1:
            raise ValueError("need 0 < grid_near_m < grid_far_m, num_hypotheses >= 4 and 0 < decay <= 1")
        if not 0 < self.min_depth_m < self.max_depth_m:
            raise ValueError("need 0 < min_depth_m < max_depth_m")
        if self.cost_window_px < 1 or self.cost_window_px % 2 == 0 or not 0 < self.fill_full_conf <= 1:
            raise ValueError("cost_window_px must be odd and >= 1, fill_full_conf in (0, 1]")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.readout_image not in ("rgb", "gray", "none"):
            raise ValueError(f"readout_image must be 'rgb', 'gray' or 'none', got {self.readout_image!r}")
        if not self.lens_input and (not self.learned or self.readout_image == "none" or self.fixed_focus_gate):
            raise ValueError("lens_input=False (monocular) needs the learned readout, the frame and no focus gate")


def warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Resample x (B,C,h,w) at pixel + flow (B,2,h,w) [dx, dy] px, bilinear; outside the map: grid_sample's
    ``padding_mode`` ("zeros": no evidence there, "border": the edge repeated)."""
    b, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device).reshape(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).reshape(1, 1, w).expand(b, h, w)
    gx = (xs + flow[:, 0] + 0.5) * (2.0 / w) - 1.0
    gy = (ys + flow[:, 1] + 0.5) * (2.0 / h) - 1.0
    return F.grid_sample(x, torch.stack([gx, gy], -1), mode="bilinear", padding_mode=padding_mode, align_corners=False)


def warp_state(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The state aligned by a flow; content that comes into view has no evidence (zeros)."""
    return warp(x, flow, "zeros")


def conv_block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation), nn.LeakyReLU(0.1, inplace=True))


class Readout(nn.Module):
    """Features (B, cin, h, w) -> residual inverse depth and confidence logit (B, 2, h, w).

    A three-level encoder-decoder (1/1, 1/2, 1/4, 1/8 of the state resolution, dilated at the bottom), so
    a flat region takes its depth from textured surroundings tens of pixels away. ``top_width`` > 0: the
    full-resolution level is one convolution of that width on each side (the half of the readout's time
    that level took, for the speed target); 0: two convolutions of ``width`` (the first shipped layout).
    """

    def __init__(self, cin: int, width: int = 24, top_width: int = 0):
        super().__init__()
        top = top_width or width
        self.e0 = conv_block(cin, top) if top_width else nn.Sequential(conv_block(cin, width), conv_block(width, width))
        self.e1 = conv_block(top, width, 2)
        self.e2 = conv_block(width, width, 2)
        self.e3 = nn.Sequential(conv_block(width, width, 2), conv_block(width, width, 1, 2),
                                conv_block(width, width, 1, 4))
        self.d2 = conv_block(2 * width, width)
        self.d1 = conv_block(2 * width, width)
        self.d0 = conv_block(top + width, top)
        self.out = nn.Conv2d(top, 2, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.e0(x)
        f1 = self.e1(f0)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        g2 = self.d2(torch.cat([f2, self._up(f3, f2)], 1))
        g1 = self.d1(torch.cat([f1, self._up(g2, f1)], 1))
        g0 = self.d0(torch.cat([f0, self._up(g1, f0)], 1))
        return self.out(g0)


class FocusVolumeNet(nn.Module):
    """Cost-volume depth from defocus; see the module docstring for the interface."""

    STATE_STRIDE = STATE_STRIDE
    TAKES_FLOW = True  # forward aligns the state by a flow whatever cfg.flow_input says (that flag shapes the ONNX)
    COST_CLIP = 50.0  # normalised cost (noise units) beyond which hypotheses count as equally bad for the readout

    def __init__(self, cfg: FocusVolumeConfig = FocusVolumeConfig()):
        super().__init__()
        self.cfg = cfg
        w_k = torch.linspace(1.0 / cfg.grid_far_m, 1.0 / cfg.grid_near_m, cfg.num_hypotheses)
        self.evidence = FocusEvidence(w_k, decay=cfg.decay, cost_window_px=cfg.cost_window_px,
                                      fill_full_conf=cfg.fill_full_conf)  # the config's: the weights are the readout's
        k = cfg.num_hypotheses
        self.readout = Readout(k + 3 + 6, cfg.width, cfg.top_width) if cfg.learned else None
        n_extra = cfg.ensemble - 1 if cfg.learned else 0  # members 2..N of an ensemble (none: the shipped layout)
        self.extra_readouts = nn.ModuleList(Readout(k + 3 + 6, cfg.width, cfg.top_width) for _ in range(n_extra))

    @property
    def w_k(self) -> torch.Tensor:
        """(K,) the inverse-depth hypotheses (1/m), the evidence's."""
        return self.evidence.w_k

    @property
    def state_channels(self) -> int:
        return FocusEvidence.channels(self.cfg.num_hypotheses)

    def initial_state(self, batch: int, height: int, width: int, device=None) -> torch.Tensor:
        """The zero ("no memory") state (B, state_channels, H/2, W/2) for an input of height x width px."""
        return torch.zeros(batch, self.state_channels, -(-height // STATE_STRIDE), -(-width // STATE_STRIDE),
                           device=device)  # fmt: skip

    def forward(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor, flow: torch.Tensor | None = None):
        """image (B,3,H,W), lens (B,2), state (B,S,H/2,W/2)[, flow] -> depth_m (B,1,H,W), confidence, state."""
        out = self.forward_all(image, lens, state, flow)
        return out["depth_m"], out["confidence"], out["state"]

    def physics(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor,
                flow: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """Steps 1-3 (no parameters): the new state and the physics estimate (FocusEvidence.estimate) + features."""
        h, w = image.shape[-2:]
        if h % STRIDE or w % STRIDE:
            raise ValueError(f"input height and width must be multiples of {STRIDE}, got {h}x{w}")
        if flow is not None:
            state = warp_state(state, flow)
        measured, noise_var = self.evidence.measure(image)
        state = self.evidence.accumulate(state, measured, noise_var, lens)
        est = self.evidence.estimate(state, lens)
        est["state"] = state
        est["features"] = self.features(est, image)
        return est

    def features(self, est: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The readout's input (B, K + 9, h, w): compressed cost volume, physics estimate and the frame."""
        w0, span = self.w_k[0], self.w_k[-1] - self.w_k[0]
        cost = torch.log1p(est["cost"].clamp(0.0, self.COST_CLIP)) / 4.0  # 0 at the best hypothesis
        small = F.avg_pool2d(image, STATE_STRIDE)
        return torch.cat([cost, (small - 0.45) / 0.25, (est["inv_best"] - w0) / span * 2 - 1,
                          (est["inv_filled"] - w0) / span * 2 - 1, est["conf"],
                          (est["spread_px"] / 4.0).clamp(max=2.0), est["evidence"] / 3.0,
                          (est["conf"] > 0.05).to(image.dtype)], 1)  # fmt: skip

    def estimate_from_features(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """What ``head`` reads, recovered from ``features`` alone (training caches only the features): the fill, the
        confidence and the focus spread (clamped at 8 px by ``features``, beyond anything ``head`` distinguishes)."""
        k, w0, span = self.cfg.num_hypotheses, self.w_k[0], self.w_k[-1] - self.w_k[0]
        return {"features": features, "inv_filled": (features[:, k + 4 : k + 5] + 1) / 2 * span + w0,
                "conf": features[:, k + 5 : k + 6], "spread_px": features[:, k + 6 : k + 7] * 4.0}  # fmt: skip

    def _image_mode(self, features: torch.Tensor) -> torch.Tensor:
        """The features with the frame's channels as cfg.readout_image says (rgb: unchanged), and with every
        channel but the frame's zeroed when cfg.lens_input is False (the monocular baseline)."""
        k = self.cfg.num_hypotheses
        if self.cfg.readout_image == "rgb" and self.cfg.lens_input:
            return features
        image = features[:, k : k + 3]
        if self.cfg.readout_image != "rgb":
            image = image.mean(1, keepdim=True).expand_as(image) if self.cfg.readout_image == "gray" else image * 0.0
        if not self.cfg.lens_input:
            return torch.cat([features[:, :k] * 0.0, image, features[:, k + 3 :] * 0.0], 1)
        return torch.cat([features[:, :k], image, features[:, k + 3 :]], 1)

    def head(self, est: dict[str, torch.Tensor], image_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Step 4: inverse depth and confidence at 1/2 and full resolution from ``physics``' output."""
        w_lo, w_hi = 1.0 / self.cfg.max_depth_m, 1.0 / self.cfg.min_depth_m
        span = self.w_k[-1] - self.w_k[0]
        if self.readout is not None:
            x = self._image_mode(est["features"])
            outs = [member(x) for member in (self.readout, *self.extra_readouts)]
            step = sum(span * torch.tanh(o[:, :1]) for o in outs) / len(outs)
            logit = sum(o[:, 1:2] for o in outs) / len(outs)
            if self.cfg.fixed_focus_gate:
                step = step * (est["spread_px"] / FOCUS_SPREAD_PX).clamp(0.0, 1.0)
            if self.cfg.lens_input:
                inv_lo = est["inv_filled"] + step
                conf_lo = torch.sigmoid(logit + 4.0 * est["conf"] - 2.0)
            else:  # monocular: from the middle of the grid, the physics estimate unread
                inv_lo = (self.w_k[0] + self.w_k[-1]) / 2 + step
                conf_lo = torch.sigmoid(logit)
        else:
            inv_lo, conf_lo = est["inv_filled"], est["conf"]
        inv_lo = inv_lo.clamp(w_lo, w_hi)
        inv_depth = F.interpolate(inv_lo, size=image_hw, mode="bilinear", align_corners=False)
        confidence = F.interpolate(conf_lo, size=image_hw, mode="bilinear", align_corners=False)
        return {"depth_m": 1.0 / inv_depth, "inv_depth": inv_depth, "confidence": confidence, "inv_depth_lo": inv_lo,
                "confidence_lo": conf_lo}

    def forward_all(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor,
                    flow: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """Like forward, plus the physics estimate (inv_best, inv_filled, conf, cost) and half-resolution outputs."""
        est = self.physics(image, lens, state, flow)
        return {**est, **self.head(est, image.shape[-2:])}
