"""LensBuffer: recent timestamped lens samples, queried at an image's stamp.

Lens state (focus, f-number, focal length) may be reported at other times and rates than the
images (bag contract: "the lens state that belongs to a frame is the one at the image
stamp"). ``at(stamp_ns)`` interpolates linearly between the two samples around the stamp
(focus in dioptres, which is what a focus motor moves and what blur is linear in; f-number
and focal length as they are), takes the nearest sample within a tolerance beyond the first
or last sample (or, with ``max_gap_s``, between two samples too far apart to interpolate),
and returns None otherwise. The one implementation of this rule: the ROS node (bounded, no
gap limit) and bag reading (``bagio``: unbounded, 1 s gap limit) both use it.
"""

from __future__ import annotations

import bisect

from dfd_depth_ros.optics import LensState

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

    When full, the oldest sample (smallest stamp) is dropped; ``max_samples=None`` keeps every
    sample (a whole bag). A sample at a stamp already present replaces it. ``max_gap_s``: two
    samples further apart than this are not interpolated between (None: no limit).
    """

    def __init__(self, max_samples: int | None = DEFAULT_MAX_SAMPLES, max_gap_s: float | None = None) -> None:
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        if max_gap_s is not None and not max_gap_s >= 0:
            raise ValueError(f"max_gap_s must be >= 0 or None, got {max_gap_s}")
        self.max_samples = None if max_samples is None else int(max_samples)
        self.max_gap_s = None if max_gap_s is None else float(max_gap_s)
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
        if self.max_samples is not None and len(self._stamps_ns) > self.max_samples:
            del self._stamps_ns[0], self._lenses[0]

    def at(self, stamp_ns: int, tolerance_s: float = 0.1) -> LensState | None:
        """The lens state at ``stamp_ns``: the sample at that stamp; else interpolated between the
        samples around it (when at most ``max_gap_s`` apart); else the nearest of those samples
        (or the end sample) if it is within ``tolerance_s`` seconds; else None."""
        stamps = self._stamps_ns
        if not stamps:
            return None
        stamp_ns = int(stamp_ns)
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self._lenses[i]
        if 0 < i < len(stamps) and (self.max_gap_s is None or stamps[i] - stamps[i - 1] <= self.max_gap_s * 1e9):
            t = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
            return interpolate_lens(self._lenses[i - 1], self._lenses[i], t)
        nearest = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamp_ns - stamps[j]))
        if abs(stamp_ns - stamps[nearest]) <= tolerance_s * 1e9:
            return self._lenses[nearest]
        return None
