"""LensHistory: timestamped lens samples, queried at an image's stamp; the one lens rule of node and bags.

Lens state (focus, f-number, focal length) may be reported at other times and rates than the
images (bag contract: "the lens state that belongs to a frame is the one at the image
stamp"). The rule, the same for the live node (``nodes/depth_node.py``) and bag reading
(``evaluation/bagio/read.py``), with the same defaults:

1. a sample at the image stamp is the answer;
2. else the two samples around the stamp are interpolated linearly (focus in dioptres, which
   is what a focus motor moves and what blur is linear in; f-number and focal length as they
   are), when they are at most ``max_gap_s`` apart (default 1 s: beyond that the lens may have
   done anything in between);
3. else the nearest sample stands for the stamp if it is within ``tolerance_s`` (default 0.05 s);
4. else the static ``fallback`` lens, when one is given; else there is no lens state.

Live, a sample is worth waiting for only as long as the lens stream's own latency: ``add`` takes
the arrival time, the history keeps the recent arrival latencies (arrival - stamp) and
``wait_budget_s`` says how long an image may still wait for its sample (the largest recent lens
latency + a margin, minus the image's own latency, capped by the caller's limit).

A sample more than ``restart_s`` (default 1 s) older than the newest one starts a new history (a
bag replayed from its start, a restarted driver), so that samples from the old "future" are never
interpolated with; smaller reorderings are sorted in. A bag is read whole and in stamp order,
as its frames are, so there the history never goes back.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque

from dfd_depth_ros.optics import LensState

DEFAULT_TOLERANCE_S = 0.05
DEFAULT_MAX_GAP_S = 1.0
DEFAULT_RESTART_S = 1.0
DEFAULT_MAX_SAMPLES = 200
LATENCY_HISTORY = 64  # lens arrival latencies kept for the wait budget (about 2 s at 30 Hz)
WAIT_MARGIN_S = 0.005


def interpolate_lens(a: LensState, b: LensState, t: float) -> LensState:
    """Lens state a fraction ``t`` in [0, 1] of the way from ``a`` to ``b`` (focus linear in dioptres)."""
    focus_diopters = (1.0 - t) * a.focus_diopters + t * b.focus_diopters
    return LensState(
        focus_distance_m=1.0 / focus_diopters,
        f_number=(1.0 - t) * a.f_number + t * b.f_number,
        focal_length_m=(1.0 - t) * a.focal_length_m + t * b.focal_length_m,
    )


class LensHistory:
    """The lens samples of one stream (by stamp, any insertion order) and the lens state at a stamp.

    tolerance_s: how far the nearest sample may be from a stamp it stands for, s (may be changed
        at run time). max_samples: samples kept (the oldest stamps go first); None keeps every one
        (a whole bag). max_gap_s: samples further apart are not interpolated between, s.
        restart_s: a sample this much older than the newest restarts the history, s (inf: never).
        fallback: the lens state to answer when the samples give none (static lens parameters).

    Thread-safe: samples arrive in one ROS callback group while frames are processed in another,
    and ``at`` can wait a little for a sample that is still on its way.
    """

    def __init__(self, tolerance_s: float = DEFAULT_TOLERANCE_S, max_samples: int | None = DEFAULT_MAX_SAMPLES,
                 max_gap_s: float = DEFAULT_MAX_GAP_S, restart_s: float = DEFAULT_RESTART_S,
                 fallback: LensState | None = None) -> None:
        if max_samples is not None and max_samples < 2:
            raise ValueError(f"max_samples must be >= 2 or None, got {max_samples}")
        for name, value in (("tolerance_s", tolerance_s), ("max_gap_s", max_gap_s), ("restart_s", restart_s)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.tolerance_s = float(tolerance_s)
        self.max_samples = None if max_samples is None else int(max_samples)
        self.max_gap_ns = float(max_gap_s) * 1e9
        self.restart_ns = float(restart_s) * 1e9
        self.fallback = fallback
        self._stamps_ns: list[int] = []  # sorted ascending
        self._lenses: list[LensState] = []
        self._newest_ns: int | None = None
        self._latencies_ns: deque[int] = deque(maxlen=LATENCY_HISTORY)
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._stamps_ns)

    @property
    def newest_ns(self) -> int | None:
        """Stamp of the newest sample, or None before the first (and right after a restart's clearing)."""
        return self._newest_ns

    def clear(self) -> None:
        with self._cond:
            self._stamps_ns.clear()
            self._lenses.clear()
            self._newest_ns = None

    def add(self, stamp_ns: int, lens: LensState, arrival_ns: int | None = None) -> bool:
        """Store the sample taken at ``stamp_ns`` (integer ns; one at a stamp already present replaces it).

        arrival_ns: when it arrived, on the clock of the stamps (ns); recorded for ``wait_budget_s``.
        Returns True when it restarted the history (its stamp is more than ``restart_s`` before the newest).
        """
        if not isinstance(lens, LensState):
            raise TypeError(f"lens must be a LensState, got {type(lens).__name__}")
        stamp_ns = int(stamp_ns)
        with self._cond:
            if arrival_ns is not None:
                self._latencies_ns.append(int(arrival_ns) - stamp_ns)
            restarted = self._newest_ns is not None and stamp_ns < self._newest_ns - self.restart_ns
            if restarted:
                self._stamps_ns.clear()
                self._lenses.clear()
                self._newest_ns = None
            self._insert(stamp_ns, lens)
            self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
            self._cond.notify_all()
        return restarted

    def lens_latency_s(self) -> float | None:
        """The largest recent lens arrival latency (arrival - stamp), s; None before the first timed sample."""
        with self._cond:
            return max(self._latencies_ns) * 1e-9 if self._latencies_ns else None

    def wait_budget_s(self, stamp_ns: int, now_ns: int, cap_s: float, margin_s: float = WAIT_MARGIN_S) -> float:
        """How long an image stamped ``stamp_ns`` that is being handled at ``now_ns`` may wait for its lens sample, s.

        The sample is due by stamp + the largest recent lens latency + ``margin_s``; the image has used
        ``now_ns - stamp_ns`` of that already. In [0, ``cap_s``]; ``cap_s`` until the lens latency is known.
        Only latencies matter, not the clocks' offset: both streams' stamps are on one clock.
        """
        latency_s = self.lens_latency_s()
        if latency_s is None:
            return cap_s
        return min(cap_s, max(0.0, latency_s + margin_s - (int(now_ns) - int(stamp_ns)) * 1e-9))

    def _insert(self, stamp_ns: int, lens: LensState) -> None:
        i = bisect.bisect_left(self._stamps_ns, stamp_ns)
        if i < len(self._stamps_ns) and self._stamps_ns[i] == stamp_ns:
            self._lenses[i] = lens
            return
        self._stamps_ns.insert(i, stamp_ns)
        self._lenses.insert(i, lens)
        if self.max_samples is not None and len(self._stamps_ns) > self.max_samples:
            del self._stamps_ns[0], self._lenses[0]

    def at(self, stamp_ns: int, wait_s: float = 0.0) -> tuple[LensState | None, str]:
        """(lens state at ``stamp_ns`` by the module's rule, where it came from: "samples" | "static" | "none").

        With ``wait_s`` > 0, waits up to ``wait_s`` seconds for a sample at or after ``stamp_ns``
        when none has arrived yet: an image that overtakes its own lens sample would otherwise
        take the previous frame's lens (the nearest sample within the tolerance). Lens publishers
        slower than the camera pay up to ``wait_s`` latency per frame; set it to 0 for them.
        """
        stamp_ns = int(stamp_ns)

        def arrived() -> bool:
            return self._newest_ns is not None and self._newest_ns >= stamp_ns

        with self._cond:
            if wait_s > 0 and not arrived():
                self._cond.wait_for(arrived, wait_s)
            lens = self._from_samples(stamp_ns)
        if lens is not None:
            return lens, "samples"
        if self.fallback is not None:
            return self.fallback, "static"
        return None, "none"

    def _from_samples(self, stamp_ns: int) -> LensState | None:
        """Rules 1-3 of the module docstring; None when they give nothing."""
        stamps = self._stamps_ns
        if not stamps:
            return None
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self._lenses[i]
        if 0 < i < len(stamps) and stamps[i] - stamps[i - 1] <= self.max_gap_ns:
            t = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
            return interpolate_lens(self._lenses[i - 1], self._lenses[i], t)
        nearest = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamp_ns - stamps[j]))
        if abs(stamp_ns - stamps[nearest]) <= self.tolerance_s * 1e9:
            return self._lenses[nearest]
        return None
