"""Recurrent depth-from-defocus network (runtime code: the torch backend and training both use it).

    forward(image, lens, state) -> (depth_m, confidence, state)

How it reads a frame (``head="defocus"``):
1. A small strided CNN encodes the frame, its lens channels and, at 1/8 resolution, the
   *prior blur*: the signed blur that the previous estimate predicts under the current lens,
   s_prior = fx D (1/focus - w_prev). Agreement between it and the blur the image shows is
   what resolves the front/back ambiguity over a focus change.
2. A ConvGRU at 1/8 resolution carries the evidence from frame to frame.
3. A decoder with skips predicts, at 1/2 resolution, the blur-circle diameter c >= 0 (px), the
   probability p that the point lies behind the focal plane, and a confidence.
4. Optics turns them into inverse depth: w = 1/focus - (2p - 1) c / (fx D)   (optics.py),
   so lens settings outside the training set are handled by physics, not memorised.

``head="direct"`` (the monocular baseline) predicts inverse depth directly, without lens input.

State: one explicit tensor (B, hidden + 2, ceil(H/8), ceil(W/8)) = [GRU hidden, w_prev,
valid_prev]; all zeros means "no memory" (a reset). H and W must be multiples of 8; the
runtime pads (dfd_depth_ros.depth_stream). Image: RGB in [0, 1] as the camera delivers it (sRGB).
Lens: (B, 2) = [fx * D in px*m at the network's input resolution, 1 / focus distance in 1/m].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dfd_depth_ros.config_dict import DictConfig

STRIDE = 8  # input height and width must be multiples of this
BLUR_NORM_PX = 10.0  # blur channels are divided by this
DIOPTER_NORM = 3.0  # dioptre channels are divided by this
BLUR_SCALE_NORM_PXM = 10.0


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    """Architecture of one model; saved inside every checkpoint and exported model.

    head: "defocus" (lens-conditioned, depth through optics) or "direct" (no lens input).
    recurrent: carry the ConvGRU state between frames (False: every frame starts from zeros).
    widths: encoder channels at 1/2, 1/4, 1/8 resolution.
    hidden: ConvGRU channels.
    min_depth_m, max_depth_m: output range.
    sharpness: feed the stem the fixed focus-measure channels of ``FocusMeasure`` (re-blur ratios
        and log local contrast) next to the image; False reproduces the first shipped models.
    """

    KIND = "model config"

    name: str = "dfd_recurrent"
    head: str = "defocus"
    recurrent: bool = True
    widths: tuple[int, int, int] = (16, 24, 32)
    hidden: int = 32
    min_depth_m: float = 0.1
    max_depth_m: float = 20.0
    sharpness: bool = False

    def __post_init__(self):
        if self.head not in ("defocus", "direct"):
            raise ValueError(f"head must be 'defocus' or 'direct', got {self.head!r}")
        if len(self.widths) != 3:
            raise ValueError("widths needs three entries (1/2, 1/4, 1/8 resolution)")

    @property
    def uses_lens(self) -> bool:
        return self.head == "defocus"


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, ch: int):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.c2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x):
        return F.leaky_relu(x + self.c2(F.leaky_relu(self.c1(x), 0.1)), 0.1)


class ConvGRU(nn.Module):
    """Convolutional GRU cell: (x (B, Cx, h, w), h (B, C, h, w)) -> new h."""

    def __init__(self, cin: int, ch: int):
        super().__init__()
        self.zr = nn.Conv2d(cin + ch, 2 * ch, 3, 1, 1)
        self.q = nn.Conv2d(cin + ch, ch, 3, 1, 1)

    def forward(self, x, h):
        z, r = torch.sigmoid(self.zr(torch.cat([x, h], 1))).chunk(2, 1)
        q = torch.tanh(self.q(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * q


def _gaussian_kernel(sigma_px: float) -> torch.Tensor:
    radius = max(1, int(round(3.0 * sigma_px)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


class FocusMeasure(nn.Module):
    """Fixed (not trained) local sharpness channels: image (B,3,H,W) in [0,1] -> (B, 1 + len(sigmas), H, W).

    The classical re-blur cue (Zhuo and Sim 2011): blurring an image again with a Gaussian of
    sigma s lowers the local gradient energy of a sharp patch a lot and of an already blurred one
    little. The ratio sqrt(E_s / E_0) of gradient energies, averaged over a window, therefore grows
    with the blur already present, and it does not depend on texture contrast. The channels are
    [ln(E_0 + eps) (is there texture at all?), ratio for each sigma]. A stack of fixed depthwise
    convolutions, so it exports to ONNX and TensorRT like the rest of the network.
    """

    def __init__(self, sigmas_px: tuple[float, ...] = (1.0, 2.0, 4.0), window_px: float = 2.0):
        super().__init__()
        self.sigmas = tuple(sigmas_px)
        # All Gaussians of one stage run as a single depthwise convolution: each kernel is zero-padded
        # to the widest one (the same result as its own convolution, a few ops instead of many).
        self.register_buffer("bank", self._stack([_gaussian_kernel(s) for s in self.sigmas]), persistent=False)
        win = _gaussian_kernel(window_px)
        self.register_buffer("win", self._stack([win] * self.channels), persistent=False)

    @staticmethod
    def _stack(kernels: list[torch.Tensor]) -> torch.Tensor:
        size = max(k.numel() for k in kernels)
        out = torch.zeros(len(kernels), size)
        for i, k in enumerate(kernels):
            pad = (size - k.numel()) // 2
            out[i, pad : pad + k.numel()] = k
        return out

    @property
    def channels(self) -> int:
        return 1 + len(self.sigmas)

    @staticmethod
    def _separable(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """Depthwise separable blur of x (B, C, H, W) with kernels (C, K), replicate borders."""
        c, size = kernels.shape
        r = (size - 1) // 2
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernels.view(c, 1, 1, size), groups=c)
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), kernels.view(c, 1, size, 1), groups=c)

    @staticmethod
    def _gradient_energy(g: torch.Tensor) -> torch.Tensor:
        p = F.pad(g, (1, 1, 1, 1), mode="replicate")
        gx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
        gy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
        return gx * gx + gy * gy

    # Energies are computed for the image times GAIN, so that they and EPS stay normal numbers in
    # FP16 (TensorRT): GAIN**2 * 1e-6 is EPS. Outputs equal those of gain 1 with eps 1e-6.
    GAIN = 16.0
    EPS = 256e-6
    LOG_GAIN2 = 2.0 * math.log(GAIN)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        gray = image.mean(1, keepdim=True) * self.GAIN
        n = len(self.sigmas)
        levels = torch.cat([gray, self._separable(gray.expand(-1, n, -1, -1), self.bank)], 1)
        energy = self._separable(self._gradient_energy(levels), self.win) + self.EPS
        e0 = energy[:, :1]
        return torch.cat([0.1 * (torch.log(e0) - self.LOG_GAIN2 + 7.0), torch.sqrt(energy[:, 1:] / e0)], 1)


class DfDNet(nn.Module):
    """Recurrent DfD network; see the module docstring for the interface."""

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.widths
        n_lens = 2 if cfg.uses_lens else 0
        self.focus = FocusMeasure() if cfg.sharpness else None
        n_focus = self.focus.channels if self.focus is not None else 0
        self.stem = nn.Sequential(_conv(3 + n_focus + n_lens, w1, 2), ResBlock(w1))  # 1/2
        self.down2 = nn.Sequential(_conv(w1, w2, 2), ResBlock(w2))  # 1/4
        self.down3 = nn.Sequential(_conv(w2, w3, 2), ResBlock(w3))  # 1/8
        n_prior = 2  # [s_prior, valid] with lens input, [w_prev, valid] without
        self.gru = ConvGRU(w3 + n_prior + n_lens, cfg.hidden)
        self.up2 = nn.Sequential(_conv(cfg.hidden + w3 + w2, w2), ResBlock(w2))
        self.up1 = nn.Sequential(_conv(w2 + w1, w1), ResBlock(w1))
        self.head = nn.Conv2d(w1, 3, 3, 1, 1)  # defocus: (c, p, conf); direct: (w, -, conf)

    def initial_state(self, batch: int, height: int, width: int, device=None) -> torch.Tensor:
        """The zero ("no memory") state for an input of height x width px."""
        h8, w8 = -(-height // STRIDE), -(-width // STRIDE)
        return torch.zeros(batch, self.cfg.hidden + 2, h8, w8, device=device)

    def _inv_depth_range(self):
        return 1.0 / self.cfg.max_depth_m, 1.0 / self.cfg.min_depth_m

    def forward(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor):
        """image (B,3,H,W) in [0,1], lens (B,2) [fx*D px*m, 1/focus 1/m], state -> depth_m, confidence (B,1,H,W), state.

        The three outputs are depth in metres, confidence in [0, 1] (both (B,1,H,W)) and the new state.
        """
        out = self.forward_all(image, lens, state)
        return out["depth_m"], out["confidence"], out["state"]

    def forward_all(self, image: torch.Tensor, lens: torch.Tensor, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Like forward, plus the intermediate maps that training supervises.

        Returns depth_m, inv_depth, confidence, state and, for head="defocus", blur_px (the
        predicted blur diameter) and p_behind (probability of lying behind the focal plane).
        """
        b, _, h, w = image.shape
        if h % STRIDE or w % STRIDE:
            raise ValueError(f"input height and width must be multiples of {STRIDE}, got {h}x{w}")
        x = (image - 0.45) / 0.25
        if self.focus is not None:
            x = torch.cat([x, self.focus(image)], 1)
        hidden, w_prev, valid = state[:, :-2], state[:, -2:-1], state[:, -1:]
        if self.cfg.uses_lens:
            k = lens[:, 0].reshape(b, 1, 1, 1)
            inv_f = lens[:, 1].reshape(b, 1, 1, 1)
            lens_ch = torch.cat([k / BLUR_SCALE_NORM_PXM, inv_f / DIOPTER_NORM], 1)
            x = torch.cat([x, lens_ch.expand(b, 2, h, w)], 1)
        f1 = self.stem(x)
        f2 = self.down2(f1)
        f3 = self.down3(f2)
        h8, w8 = f3.shape[-2:]
        if self.cfg.uses_lens:
            s_prior = valid * k * (inv_f - w_prev) / BLUR_NORM_PX
            gru_in = torch.cat([f3, s_prior, valid, lens_ch.expand(b, 2, h8, w8)], 1)
        else:
            gru_in = torch.cat([f3, w_prev * DIOPTER_NORM, valid], 1)
        hidden = self.gru(gru_in, hidden)
        d2 = self.up2(torch.cat([F.interpolate(hidden, scale_factor=2.0, mode="bilinear"),
                                 F.interpolate(f3, scale_factor=2.0, mode="bilinear"), f2], 1))
        d1 = self.up1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear"), f1], 1))
        raw = F.interpolate(self.head(d1), scale_factor=2.0, mode="bilinear")
        w_lo, w_hi = self._inv_depth_range()
        result = {}
        if self.cfg.uses_lens:
            blur_px = F.softplus(raw[:, 0:1]) * BLUR_NORM_PX
            p_behind = torch.sigmoid(raw[:, 1:2])
            inv_depth = inv_f - (2 * p_behind - 1) * blur_px / k.clamp_min(1e-3)
            result.update(blur_px=blur_px, p_behind=p_behind)
        else:
            # Log-linear in inverse depth around 2 m: a sigmoid over [w_lo, w_hi] saturated in training.
            inv_depth = 0.5 * torch.exp(raw[:, 0:1].clamp(-8.0, 8.0))
            # Ignores the lens, but keeps it in the graph so every exported model has the same inputs.
            inv_depth = inv_depth + 0.0 * lens[:, :1].reshape(b, 1, 1, 1)
        inv_depth = inv_depth.clamp(w_lo, w_hi)
        new_state = torch.cat([hidden, F.avg_pool2d(inv_depth, STRIDE), torch.ones(b, 1, h8, w8).to(image)], 1)
        if not self.cfg.recurrent:
            new_state = torch.zeros_like(new_state)
        result.update(depth_m=1.0 / inv_depth, inv_depth=inv_depth, confidence=torch.sigmoid(raw[:, 2:3]),
                      state=new_state)
        return result


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
