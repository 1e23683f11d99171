"""Occlusion-aware layered thin-lens defocus renderer (torch, batched, CPU-fast).

From an all-in-focus linear-light image and its z-depth, render what a thin lens focused at
``focus_distance_m`` with blur scale ``fx * D`` records:

1. Slice the scene into layers uniform in inverse depth (uniform in signed blur, since
   c = fx D (1/focus - 1/z) is linear in 1/z). Each pixel is split between its two
   neighbouring layers (linear weights), so slanted surfaces show no layer steps.
2. Blur each layer's premultiplied colour, its alpha, and the cumulative alpha of it and
   everything behind it with the layer's disc PSF (diameter from ``optics``), via FFT.
3. Composite from front to back with the normalisation of Ikoma et al. (ICCP 2021): layer
   opacity o_l = (h_l * a_l) / (h_l * sum_{k<=l} a_k), colour c_l likewise. The result is
   divided by the accumulated opacity, so regions whose occluded background is missing
   from the all-in-focus image take the visible layers' colours instead of going dark: the
   output is a convex combination of layer colours, hence no halo at occlusion boundaries.

Then ``apply_sensor`` adds shot and read noise and gamma-encodes.
Shapes: B batch, C channels, H x W pixels. Inputs are float32 tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["disc_kernels", "psf_kernels", "render_defocus", "apply_sensor", "srgb_to_linear", "linear_to_srgb",
           "vignette"]

_EPS = 1e-6
_COVERED = 1e-4  # smallest blurred coverage treated as content


def disc_kernels(diameter_px: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased uniform disc PSFs: (N,) diameters -> (N, size, size) kernels summing to 1.

    A pixel's weight is its approximate coverage clamp(r + 0.5 - d, 0, 1), d its centre's
    distance from the kernel centre, r = diameter/2. Diameters below 1 px give a delta.
    """
    half = size // 2
    coords = torch.arange(size, dtype=torch.float32, device=diameter_px.device) - half
    d = torch.sqrt(coords[None, :] ** 2 + coords[:, None] ** 2)  # (size, size)
    r = (diameter_px.float() / 2).clamp_min(0.0)[:, None, None]
    k = (r + 0.5 - d[None]).clamp(0.0, 1.0)
    return k / k.sum(dim=(1, 2), keepdim=True)


def psf_kernels(diameter_px: torch.Tensor, size: int, gauss_mix: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(N,) diameters -> (N, size, size) PSFs between a disc (``gauss_mix`` 0) and a Gaussian of the same second
    moment (1: sigma = diameter / 4 per axis, a disc's), mixed linearly; ``gauss_mix`` a float or (N,). Real lenses
    lie between the two (aberrations, diffraction, apodised apertures), and a learned readout should not rely on
    the disc's sharp spectral zeros."""
    disc = disc_kernels(diameter_px, size)
    mix = torch.as_tensor(gauss_mix, dtype=torch.float32, device=diameter_px.device).reshape(-1, 1, 1)
    if not bool((mix > 0).any()):
        return disc
    half = size // 2
    coords = torch.arange(size, dtype=torch.float32, device=diameter_px.device) - half
    d2 = coords[None, :] ** 2 + coords[:, None] ** 2
    sigma = (diameter_px.float() / 4).clamp_min(0.3)[:, None, None]
    gauss = torch.exp(-d2[None] / (2 * sigma**2))
    gauss = gauss / gauss.sum(dim=(1, 2), keepdim=True)
    return (1 - mix) * disc + mix * gauss


def vignette(img_linear: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
    """Radial fall-off of illumination: (B, C, H, W) linear light times 1 - strength * r^2, r = 1 at the corners;
    ``strength`` a float or (B,)."""
    b, _, h, w = img_linear.shape
    ys = torch.linspace(-1.0, 1.0, h, device=img_linear.device).reshape(h, 1)
    xs = torch.linspace(-1.0, 1.0, w, device=img_linear.device).reshape(1, w)
    r2 = (xs**2 + ys**2) / 2.0
    k = torch.as_tensor(strength, dtype=img_linear.dtype, device=img_linear.device).reshape(-1, 1, 1, 1)
    return img_linear * (1.0 - k * r2)


def _kernel_spectrum(kernels: torch.Tensor, hp: int, wp: int) -> torch.Tensor:
    """(N, k, k) kernels centred at k//2 -> rfft2 of the kernel placed with its centre at (0, 0)."""
    n, k, _ = kernels.shape
    full = kernels.new_zeros(n, hp, wp)
    full[:, :k, :k] = kernels
    full = torch.roll(full, shifts=(-(k // 2), -(k // 2)), dims=(1, 2))
    return torch.fft.rfft2(full)


def render_defocus(
    aif_linear: torch.Tensor,
    depth_m: torch.Tensor,
    blur_scale_pxm: torch.Tensor,
    focus_distance_m: torch.Tensor,
    layer_step_px: float = 1.0,
    max_layers: int = 48,
    gauss_mix: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Render thin-lens defocus.

    aif_linear: (B, C, H, W) all-in-focus image, linear light.
    depth_m: (B, 1, H, W) z-depth in metres, > 0 and finite.
    blur_scale_pxm: (B,) fx * D in pixel-metres (see optics.blur_scale_pxm).
    focus_distance_m: (B,) focus distance in metres.
    layer_step_px: the largest blur difference between adjacent layers, px.
    max_layers: cap on the number of layers (the step grows beyond it).
    gauss_mix: PSF shape, float or (B,): 0 a uniform disc, 1 a Gaussian of the same second moment (``psf_kernels``).
    Returns (B, C, H, W) defocused linear image.
    """
    b, c, h, w = aif_linear.shape
    if depth_m.shape != (b, 1, h, w):
        raise ValueError(f"depth_m must be {(b, 1, h, w)}, got {tuple(depth_m.shape)}")
    if not torch.isfinite(depth_m).all() or (depth_m <= 0).any():
        raise ValueError("depth_m must be finite and > 0 everywhere")
    scale = blur_scale_pxm.reshape(b, 1).float()
    inv_focus = 1.0 / focus_distance_m.reshape(b, 1).float()
    inv_z = 1.0 / depth_m.float()

    # Layers uniform in inverse depth, per sample, ordered far (index 0) to near.
    w_min = inv_z.amin(dim=(1, 2, 3)).reshape(b, 1)
    w_max = inv_z.amax(dim=(1, 2, 3)).reshape(b, 1)
    span_px = (scale * (w_max - w_min)).max().item()
    n_layers = int(min(max_layers, max(2, math.ceil(span_px / layer_step_px) + 1)))
    t = torch.linspace(0.0, 1.0, n_layers, device=aif_linear.device)[None, :]
    w_layers = w_min + (w_max - w_min) * t  # (B, L)
    diam_px = (scale * (inv_focus - w_layers)).abs()  # (B, L)

    # Linear split of each pixel between its two neighbouring layers.
    pos = (inv_z - w_min.reshape(b, 1, 1, 1)) / (w_max - w_min).clamp_min(1e-12).reshape(b, 1, 1, 1)
    pos = pos.clamp(0, 1) * (n_layers - 1)
    lo = pos.floor().clamp(max=n_layers - 2) if n_layers > 1 else pos.floor()
    frac = pos - lo
    layer_idx = torch.arange(n_layers, device=aif_linear.device).reshape(1, n_layers, 1, 1)
    alpha = (1 - frac) * (layer_idx == lo) + frac * (layer_idx == lo + 1)  # (B, L, H, W)
    cum_alpha = alpha.cumsum(dim=1)  # coverage of layer l and everything behind it

    pad = int(math.ceil(diam_px.max().item() / 2)) + 2
    k = 2 * pad + 1
    hp, wp = h + 2 * pad, w + 2 * pad

    def padded(x):
        mode = "reflect" if pad < min(h, w) else "replicate"
        return F.pad(x, (pad, pad, pad, pad), mode=mode)

    aif_p = padded(aif_linear)
    num = aif_linear.new_zeros(b, c, hp, wp)
    den = aif_linear.new_zeros(b, 1, hp, wp)
    trans = aif_linear.new_ones(b, 1, hp, wp)
    for l in range(n_layers - 1, -1, -1):  # front to back
        a = padded(alpha[:, l : l + 1])
        stack = torch.cat([aif_p * a, a, padded(cum_alpha[:, l : l + 1])], dim=1)  # (B, C+2, hp, wp)
        spec = _kernel_spectrum(psf_kernels(diam_px[:, l], k, gauss_mix), hp, wp)  # (B, hp, wp//2+1)
        blurred = torch.fft.irfft2(torch.fft.rfft2(stack) * spec[:, None], s=(hp, wp))
        col, a_b, e_b = blurred[:, :c], blurred[:, c : c + 1], blurred[:, c + 1 :]
        # Where nothing lies at or behind this layer, FFT round-off must not become colour.
        covered = e_b > _COVERED
        e_b = torch.where(covered, e_b, torch.ones_like(e_b))
        opacity = torch.where(covered, (a_b / e_b).clamp(0.0, 1.0), torch.zeros_like(a_b))
        num = num + torch.where(covered, trans * col / e_b, torch.zeros_like(col))
        den = den + trans * opacity
        trans = trans * (1.0 - opacity)
    out = num / den.clamp_min(_EPS)
    return out[:, :, pad : pad + h, pad : pad + w].clamp_min(0.0)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded [0, 1] -> linear light (the standard piecewise curve)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB-encoded [0, 1]."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def apply_sensor(
    img_linear: torch.Tensor,
    full_well_e: float | torch.Tensor = 4000.0,
    read_noise_e: float | torch.Tensor = 4.0,
    gamma: bool = True,
    generator: torch.Generator | None = None,
    tone_power: float = 1.0,
) -> torch.Tensor:
    """Sensor model: shot noise (Poisson, Gaussian approx.) + read noise, clip, optional sRGB gamma.

    img_linear: (B, C, H, W) linear light in [0, 1] (1 = full well).
    full_well_e: electrons at saturation; fewer electrons means more shot noise. 0 disables noise.
    read_noise_e: read-noise standard deviation, electrons.
    tone_power: the encoded value is raised to this power after the sRGB curve (a camera's own tone curve, which
        is rarely exactly sRGB; 1 = sRGB). Applies only with ``gamma``.
    Returns (B, C, H, W) in [0, 1], sRGB-encoded when ``gamma``.
    """
    x = img_linear.clamp(0.0, 1.0)
    fw = torch.as_tensor(full_well_e, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    rn = torch.as_tensor(read_noise_e, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    if bool((fw > 0).all()):
        electrons = x * fw
        std = torch.sqrt(electrons + rn**2)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = ((electrons + std * noise) / fw).clamp(0.0, 1.0)
    if not gamma:
        return x
    enc = linear_to_srgb(x)
    return enc if tone_power == 1.0 else enc.clamp_min(0.0) ** tone_power
