"""Classical depth from focus *and* defocus over the whole history: the physics reference.

Per pixel and per inverse-depth hypothesis w_k (a fixed grid of ``num_hypotheses`` between
1/far and 1/near), the thin-lens model gives the blur of every frame, c_kt = fx D |w_k - 1/focus_t|,
and the calibrated falloff h gives the focus measure that blur should produce (``dfd_depth_ros.evidence``).
The observed measure q_t is fitted as q_t ~ a h(c_kt) + b (a: the texture's gain, b: what is left
of the noise floor), with weak priors a ~ q0 (the calibration texture's sharp measure) and b ~ 0.
Only sufficient statistics are kept: per pixel sum q h_k (K slices), sum q, sum q^2; per frame
the lens is global, so sum h_k, sum h_k^2 and the frame count are scalars. They decay by
``decay`` per frame and are warped into the current frame with DIS optical flow computed on
blur-equalised images (both frames low-passed with a Gaussian of the larger expected blur, see
``_flow``), so a moving camera keeps its evidence.

The best hypothesis (parabola refinement on the cost) is the depth. A monotonic profile (focus
never reaches the point) still tells hypotheses apart by how fast the measure falls, which is how
depths outside the swept focus range are reached. Confidence is the margin between the best cost and
the best cost at least ``ALT_GAP`` hypotheses away, relative to the cost noise: it is low where the
texture is flat, the focus has not moved, or two depths fit equally well. With a fixed focus the two
sides of the focal plane fit the same blur equally and only the absolute (texture-dependent) measure is
left: a prior for small blur (``BLUR_PRIOR``, on only while the focus spread of the history is below
``FOCUS_SPREAD_PX``) pulls the estimate towards the focal plane, ties go to the far side
(``NEAR_SIDE_PENALTY``), and the margin, hence the confidence, is low. Pixels with little evidence get
their depth from confident surroundings (push-pull fill in inverse depth). The evidence, the cost volume
and the fill live at half resolution; depth and confidence are upsampled bilinearly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from dfd_depth_ros.evidence import (  # the priors and constants the torch graph (evidence.FocusEvidence) uses too
    ALT_GAP,
    BLUR_PRIOR,
    COST_NOISE_REL,
    COST_WINDOW_PX,
    FILL_FULL_CONF,
    FOCUS_SPREAD_PX,
    GAIN_PRIOR_FRAMES,
    NEAR_SIDE_PENALTY,
    OFFSET_PRIOR_FRAMES,
    falloff,
    falloff_table,
    focus_measure,
    linear_gray,
    noise_sigma,
    push_pull_fill,
)
from dfd_depth_ros.flow import FlowTracker, warp
from dfd_depth_ros.optics import LensState

GRID_NEAR_M, GRID_FAR_M = 0.25, 12.0  # the hypothesis grid never extends beyond these


class FocusReference:
    """Depth from focus/defocus with a flow-aligned, decaying history. ``process`` -> (depth_m, confidence).

    min_depth_m, max_depth_m: output range (the hypothesis grid is clipped to GRID_NEAR_M..GRID_FAR_M).
    num_hypotheses: inverse-depth grid size. decay: per-frame factor of the history's weight.
    gain_prior_frames, offset_prior_frames: strength of the priors a ~ q0, b ~ 0, in frames.
    align: warp the history by optical flow (False: assume a static camera).
    cost_window_px: box window (half-resolution px) the cost volume is aggregated over before the best hypothesis
        is taken. The evidence, the cost volume and the fill live at half resolution; depth and confidence are
        upsampled bilinearly (in inverse depth).
    fill_full_conf: confidence from which a pixel keeps its own depth entirely (below it, it blends in the fill).
    """

    def __init__(self, min_depth_m: float = 0.1, max_depth_m: float = 20.0, num_hypotheses: int = 32,
                 decay: float = 0.95, gain_prior_frames: float = GAIN_PRIOR_FRAMES,
                 offset_prior_frames: float = OFFSET_PRIOR_FRAMES, align: bool = True,
                 cost_window_px: int = COST_WINDOW_PX, fill_full_conf: float = FILL_FULL_CONF):  # fmt: skip
        if not 0 < min_depth_m < max_depth_m:
            raise ValueError("need 0 < min_depth_m < max_depth_m")
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        near, far = max(min_depth_m, GRID_NEAR_M), min(max_depth_m, GRID_FAR_M)
        self.w_k = np.linspace(1.0 / far, 1.0 / near, num_hypotheses)  # (K,) dioptres: equal blur steps
        self.decay = decay
        self.prior_a, self.prior_b = gain_prior_frames, offset_prior_frames
        self.align = align
        self.cost_window_px = cost_window_px
        self.fill_full_conf = fill_full_conf
        self.q0 = falloff_table()[2]
        self._tracker = FlowTracker.for_grid(near, far)  # blur-equalised DIS flow into the previous frame
        self._shape: tuple[int, int] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the history (also done on a resolution change or a stamp going backwards)."""
        self._acc = None  # (H, W, K + 2): sum q h_k, sum q, sum q^2
        self._sw = 0.0
        self._sh = np.zeros(self.w_k.size)
        self._shh = np.zeros(self.w_k.size)
        self._sf = self._sf2 = 0.0  # decayed sums of the focus (dioptres) and its square
        self._tracker.reset()
        self._stamp_ns: int | None = None
        self._noise_sigma = math.inf  # linear gray

    # ------------------------------------------------------------------ public

    def process(self, image: np.ndarray, K: np.ndarray, lens: LensState, stamp_ns: int = 0,
                frame_id: str = "") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(H, W, 3) uint8 RGB, (3, 3) K, lens -> depth_m (H, W) float32 metres, confidence (H, W) in [0, 1]."""
        self._begin(image, stamp_ns)
        scale_pxm = lens.blur_scale_pxm(float(K[0, 0]))
        gray = linear_gray(image)
        # Texture inflates the per-frame noise estimate most in the sharpest frames; the noise itself does not
        # change, so keep the smallest estimate of the history.
        self._noise_sigma = min(self._noise_sigma, noise_sigma(gray))
        q_full, _ = focus_measure(gray, self._noise_sigma**2)
        q = cv2.resize(q_full, self._acc_size, interpolation=cv2.INTER_AREA)  # the evidence lives at half resolution
        h_k = falloff(scale_pxm * (self.w_k - lens.focus_diopters))
        flow = self._flow(image, lens.focus_diopters, scale_pxm)
        if self._acc is not None and flow is not None:
            self._acc = warp(self._acc, flow)
        self._accumulate(q, h_k, lens.focus_diopters)
        return self._output(*self._estimate(lens.focus_diopters, scale_pxm))

    # ------------------------------------------------------------------ internals

    def _begin(self, image: np.ndarray, stamp_ns: int) -> None:
        """Reset on a resolution change or a stamp going backwards; note the frame's stamp."""
        if image.shape[:2] != self._shape or (self._stamp_ns is not None and stamp_ns < self._stamp_ns):
            self.reset()
            self._shape = image.shape[:2]
            self._acc_size = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)  # (w, h), as cv2.pyrDown
        self._stamp_ns = stamp_ns

    def _output(self, inv_depth: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half-resolution estimate and confidence -> the filled, full-resolution depth (m) and confidence."""
        filled = self._fill(inv_depth, conf)
        self._tracker.observe(filled)  # sets the blur the next frame's flow equalises to
        size = (self._shape[1], self._shape[0])
        filled, conf = (cv2.resize(x, size, interpolation=cv2.INTER_LINEAR) for x in (filled, conf))
        depth = 1.0 / np.clip(filled, 1.0 / self.max_depth_m, 1.0 / self.min_depth_m)
        return depth.astype(np.float32), np.clip(conf, 0.0, 1.0).astype(np.float32)

    def _fill(self, inv_depth: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """Dense inverse depth from the confident pixels: push-pull weighted by conf^2."""
        return push_pull_fill(inv_depth, conf * conf, self.fill_full_conf)[0]

    def _flow(self, image: np.ndarray, focus_diopters: float, scale_pxm: float) -> np.ndarray | None:
        """Flow (H/2, W/2, 2), half-res px, from this frame into the previous one (``flow.FlowTracker``: DIS on
        frames low-passed to the larger blur the last estimate's typical depths have in either); None on the first
        frame after a reset or without ``align``."""
        return self._tracker.flow(image, scale_pxm, focus_diopters) if self.align else None

    def _accumulate(self, q: np.ndarray, h_k: np.ndarray, focus_diopters: float) -> None:
        new = np.concatenate([q[..., None] * h_k.astype(np.float32), q[..., None], (q * q)[..., None]], axis=2)
        if self._acc is None:
            self._acc = new
        else:
            self._acc *= np.float32(self.decay)
            self._acc += new
        self._sh = self.decay * self._sh + h_k
        self._shh = self.decay * self._shh + h_k * h_k
        self._count_frame(focus_diopters)

    def _count_frame(self, focus_diopters: float) -> None:
        """The decayed frame count and focus sums (the lens is global: scalars)."""
        self._sw = self.decay * self._sw + 1.0
        self._sf = self.decay * self._sf + focus_diopters
        self._sf2 = self.decay * self._sf2 + focus_diopters**2

    def _cost(self) -> np.ndarray:
        """(H, W, K) mean squared residual of the best ridge fit q ~ a h_k + b per hypothesis (a >= 0)."""
        s_qh, s_q, s_qq = self._acc[..., :-2], self._acc[..., -2:-1], self._acc[..., -1:]
        la, lb, q0 = self.prior_a, self.prior_b, self.q0
        # Normal equations [[Shh + la, Sh], [Sh, Sw + lb]] [a, b] = [Sqh + la q0, Sq]; the matrix is per hypothesis.
        a11, a12, a22 = self._shh + la, self._sh, self._sw + lb
        det = a11 * a22 - a12 * a12
        m11, m12, m22 = (a22 / det).astype(np.float32), (-a12 / det).astype(np.float32), (a11 / det).astype(np.float32)
        r1 = s_qh + np.float32(la * q0)
        gain = m11 * r1 + m12 * s_q
        explained = r1 * (m11 * r1 + 2 * m12 * s_q) + m22 * s_q * s_q
        cost = s_qq + np.float32(la * q0 * q0) - explained
        # A negative gain is unphysical (sharper when more blurred): use the best fit with a = 0 there.
        cost_a0 = s_qq + np.float32(la * q0 * q0) - s_q * s_q / np.float32(a22)
        cost = np.where(gain > 0, cost, cost_a0)
        return np.maximum(cost, 0.0) / np.float32(self._sw + la + lb)

    def _estimate(self, focus_diopters: float, scale_pxm: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel inverse depth (H, W) dioptres (refined on the grid) and its confidence (H, W) in [0, 1]."""
        cost = self._cost()
        if self.cost_window_px > 1:
            cost = cv2.boxFilter(cost, -1, (self.cost_window_px, self.cost_window_px))
        noise = np.float32(COST_NOISE_REL * self.q0 * self.q0)
        prior = np.where(self.w_k > focus_diopters, NEAR_SIDE_PENALTY, 0.0)
        # Without focus motion only the absolute measure (texture-dependent) is left: favour small blur then.
        spread_px = scale_pxm * math.sqrt(max(self._sf2 / self._sw - (self._sf / self._sw) ** 2, 0.0))
        fixed_focus = max(0.0, 1.0 - spread_px / FOCUS_SPREAD_PX)
        prior += BLUR_PRIOR * fixed_focus * scale_pxm * np.abs(self.w_k - focus_diopters) / 10.0
        cost = cost + (prior * noise).astype(np.float32)
        num_k = self.w_k.size
        best = np.argmin(cost, axis=2)
        c_best = np.take_along_axis(cost, best[..., None], axis=2)[..., 0]
        k_idx = np.arange(num_k)
        far_from_best = np.abs(k_idx[None, None, :] - best[..., None]) >= ALT_GAP
        c_alt = np.where(far_from_best, cost, np.inf).min(axis=2)
        conf = (c_alt - c_best) / (c_alt + noise)
        # Parabola through the best and its neighbours (in grid steps), clamped to half a step.
        k0 = np.clip(best, 1, num_k - 2)
        c_m, c_0, c_p = (np.take_along_axis(cost, (k0 + d)[..., None], axis=2)[..., 0] for d in (-1, 0, 1))
        curv = c_m - 2 * c_0 + c_p
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.where(curv > 0, 0.5 * (c_m - c_p) / curv, 0.0)
        offset = np.where(best == k0, np.clip(offset, -0.5, 0.5), 0.0)
        inv_depth = np.interp(best + offset, np.arange(num_k), self.w_k)
        return inv_depth.astype(np.float32), np.clip(np.nan_to_num(conf), 0.0, 1.0).astype(np.float32)
