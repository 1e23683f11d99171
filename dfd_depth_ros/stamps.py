"""FramePeriod: the frame period of a stream, estimated from the steps between its stamps.

The one estimator of "how often frames come": ``DepthStream`` uses it to call a stamp jump a
gap (and reset its temporal state), the depth node's statistics to count dropped frames and
report the camera rate. The period is the median of the last ``history`` positive stamp steps,
so a few dropped or delayed frames do not move it.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FramePeriod:
    """Median of the last ``history`` positive stamp steps, ns; unknown until ``min_steps`` are known."""

    def __init__(self, history: int = 15, min_steps: int = 1) -> None:
        if history < 1 or not 1 <= min_steps <= history:
            raise ValueError(f"need history >= 1 and 1 <= min_steps <= history, got {history}, {min_steps}")
        self.min_steps = int(min_steps)
        self._steps_ns: deque[int] = deque(maxlen=int(history))

    def add_step(self, step_ns: int) -> None:
        """One step between consecutive stamps, ns; steps <= 0 (repeated or backwards stamps) are ignored."""
        if step_ns > 0:
            self._steps_ns.append(int(step_ns))

    def clear(self) -> None:
        """Forget every step (the stream restarted)."""
        self._steps_ns.clear()

    def median_ns(self) -> float | None:
        """The estimated frame period, ns, or None while fewer than ``min_steps`` steps are known."""
        return float(np.median(self._steps_ns)) if len(self._steps_ns) >= self.min_steps else None

    def period_s(self) -> float | None:
        """The estimated frame period, s (None: unknown yet)."""
        median = self.median_ns()
        return None if median is None else median * 1e-9
