"""CameraInfoHistory: the camera calibrations of one stream by stamp; the one camera_info rule of node and bags.

Image and camera_info of one frame share ``header.stamp`` (REP 118; bag contract), but they
travel separately and a driver may publish camera_info less often or only once. The calibration
of an image of size W x H at stamp t is, among the calibrations of that size (or of unknown
size, 0 x 0):

1. the one stamped t ("exact");
2. else the newest stamped before t (the calibration in force when the image was taken);
3. else the newest one (a camera_info that comes a little after its image).

The live node keeps a short history (``max_entries``) as messages arrive, and starts it anew
when a calibration is stamped more than ``restart_s`` before the newest (a bag replayed from its
start, a restarted driver: else the bounded history would drop the new, older-stamped entries
first); bag reading keeps them all and never restarts. Entries carry K (validated by the caller:
``input_checks.check_intrinsics``) and an opaque payload (the node keeps the message, to republish it with the depth).
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_ENTRIES = 50


@dataclass(frozen=True)
class CameraCalibration:
    """One camera_info: (3, 3) K in px, the image size it is for ((0, 0): unknown), its stamp, payload."""

    K: np.ndarray
    width: int
    height: int
    stamp_ns: int
    payload: object = None

    def fits(self, width: int, height: int) -> bool:
        """True if this calibration may be used for a ``width`` x ``height`` image."""
        return (self.width, self.height) in ((0, 0), (int(width), int(height)))


class CameraInfoHistory:
    """Calibrations by stamp (any insertion order); ``at`` picks one for an image by the module's rule.

    max_entries: how many stamps are kept (the oldest go first); None keeps all. A calibration at
    a stamp already present replaces it. restart_s: a calibration stamped this much before the
    newest clears the history first, s (inf: never). Thread-safe.
    """

    def __init__(self, max_entries: int | None = DEFAULT_MAX_ENTRIES, restart_s: float = math.inf) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, got {max_entries}")
        if not restart_s >= 0:
            raise ValueError(f"restart_s must be >= 0, got {restart_s}")
        self.max_entries = max_entries
        self.restart_ns = float(restart_s) * 1e9
        self._stamps_ns: list[int] = []  # sorted ascending
        self._entries: list[CameraCalibration] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._stamps_ns)

    def add(self, stamp_ns: int, K: np.ndarray, width: int, height: int, payload: object = None) -> None:
        """Store the calibration stamped ``stamp_ns`` (ns): (3, 3) K (px) for ``width`` x ``height`` images."""
        entry = CameraCalibration(np.asarray(K, dtype=np.float64).reshape(3, 3), int(width), int(height),
                                  int(stamp_ns), payload)
        with self._lock:
            if self._stamps_ns and entry.stamp_ns < self._stamps_ns[-1] - self.restart_ns:
                self._stamps_ns.clear()
                self._entries.clear()
            i = bisect.bisect_left(self._stamps_ns, entry.stamp_ns)
            if i < len(self._stamps_ns) and self._stamps_ns[i] == entry.stamp_ns:
                self._entries[i] = entry
                return
            self._stamps_ns.insert(i, entry.stamp_ns)
            self._entries.insert(i, entry)
            if self.max_entries is not None and len(self._stamps_ns) > self.max_entries:
                del self._stamps_ns[0], self._entries[0]

    @property
    def newest(self) -> CameraCalibration | None:
        """The calibration with the largest stamp (of any size), or None when empty."""
        with self._lock:
            return self._entries[-1] if self._entries else None

    def at(self, stamp_ns: int, width: int, height: int) -> tuple[CameraCalibration | None, bool]:
        """(calibration for a ``width`` x ``height`` image stamped ``stamp_ns``, exact stamp?); (None, False)
        when no calibration fits that size."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            stamps, entries = self._stamps_ns, self._entries
            i = bisect.bisect_right(stamps, stamp_ns)  # entries[:i] are at or before the stamp
            for j in range(i - 1, -1, -1):
                if entries[j].fits(width, height):
                    return entries[j], stamps[j] == stamp_ns
            for j in range(len(entries) - 1, i - 1, -1):
                if entries[j].fits(width, height):
                    return entries[j], False
        return None, False
