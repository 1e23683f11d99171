"""LensBuffer: recent timestamped lens samples, queried at an image's stamp.

Lens state (focus, f-number, focal length) may be reported at other times and rates than the
images (bag contract: "the lens state that belongs to a frame is the one at the image
stamp"). ``at(stamp_ns)`` interpolates linearly between the two samples around the stamp
(focus in dioptres, which is what a focus motor moves and what blur is linear in; f-number
and focal length as they are), takes the nearest sample within a tolerance beyond the first
or last sample, and returns None otherwise. Used by the ROS node and by bag evaluation.
"""

from __future__ import annotations

import bisect

from .optics import LensState

DEFAULT_MAX_SAMPLES = 200


def interpolate_lens(a: LensState, b: LensState, t: float) -> LensState:
    """Lens state a fraction ``t`` in [0, 1] of the way from ``a`` to ``b`` (focus linear in dioptres)."""
    focus_diopters = (1.0 - t) * a.focus_diopters + t * b.focus_diopters
    return LensState(
        focus_distance_m=1.0 / focus_diopters,
        f_number=(1.0 - t) * a.f_number + t * b.f_number,
        focal_length_m=(1.0 - t) * a.focal_length_m + t * b.focal_length_m,
    )


class LensBuffer:
    """The last ``max_samples`` lens samples (by stamp), any insertion order.

    When full, the oldest sample (smallest stamp) is dropped. A sample at a stamp already
    present replaces it.
    """

    def __init__(self, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self.max_samples = int(max_samples)
        self._stamps_ns: list[int] = []  # sorted ascending
        self._lenses: list[LensState] = []

    def __len__(self) -> int:
        return len(self._stamps_ns)

    def clear(self) -> None:
        self._stamps_ns.clear()
        self._lenses.clear()

    @property
    def latest(self) -> tuple[int, LensState] | None:
        """(stamp_ns, lens) of the newest sample, or None when empty."""
        return (self._stamps_ns[-1], self._lenses[-1]) if self._stamps_ns else None

    def add(self, stamp_ns: int, lens: LensState) -> None:
        """Insert a sample taken at ``stamp_ns`` (integer ns)."""
        if not isinstance(lens, LensState):
            raise TypeError(f"lens must be a LensState, got {type(lens).__name__}")
        stamp_ns = int(stamp_ns)
        i = bisect.bisect_left(self._stamps_ns, stamp_ns)
        if i < len(self._stamps_ns) and self._stamps_ns[i] == stamp_ns:
            self._lenses[i] = lens
            return
        self._stamps_ns.insert(i, stamp_ns)
        self._lenses.insert(i, lens)
        if len(self._stamps_ns) > self.max_samples:
            del self._stamps_ns[0], self._lenses[0]

    def at(self, stamp_ns: int, tolerance_s: float = 0.1) -> LensState | None:
        """The lens state at ``stamp_ns``: interpolated between the samples around it, else the
        nearest end sample if it is within ``tolerance_s`` seconds, else None."""
        stamps = self._stamps_ns
        if not stamps:
            return None
        stamp_ns = int(stamp_ns)
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self._lenses[i]
        if 0 < i < len(stamps):
            t = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
            return interpolate_lens(self._lenses[i - 1], self._lenses[i], t)
        nearest = 0 if i == 0 else len(stamps) - 1
        if abs(stamp_ns - stamps[nearest]) <= tolerance_s * 1e9:
            return self._lenses[nearest]
        return None
