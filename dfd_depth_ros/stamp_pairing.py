"""Pairing messages of several streams by their header stamp: one rule for bags, the live evaluator and the demo.

    pairer = StampPairer(("image", "depth_gt"), required=("image",), window=16)
    pairer.add("image", stamp_ns, msg)
    entry = pairer.take(stamp_ns)          # {"image": ..., "depth_gt": ...} once every stream has its item
    for stamp_ns, entry in pairer.release(final=False): ...   # in stamp order (bag reading)
    for stamp_ns, entry in pairer.evict(): ...                # the oldest beyond the window (live scoring)

Items of one stamp wait until the stamp is complete (every stream has its item) or until more than
``window`` stamps are pending, whichever comes first. Stamps are integer nanoseconds; pairing is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class StampPairer:
    """Items of named streams grouped by exact stamp; see the module docstring.

    streams: the stream names. complete_with: the streams whose items make a stamp complete
        (default: all of them); the others are attached when they are there.
    window: how many stamps may wait; beyond it the oldest are released or evicted.
    """

    def __init__(self, streams: Iterable[str], complete_with: Iterable[str] | None = None, window: int = 64):
        self.streams = tuple(streams)
        self.complete_with = tuple(self.streams if complete_with is None else complete_with)
        unknown = set(self.complete_with) - set(self.streams)
        if unknown:
            raise ValueError(f"complete_with names unknown streams {sorted(unknown)}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self._pending: dict[int, dict[str, object]] = {}

    def __len__(self) -> int:
        """Stamps waiting."""
        return len(self._pending)

    def waiting(self, stream: str) -> int:
        """Items of ``stream`` waiting for their partners."""
        return sum(stream in entry for entry in self._pending.values())

    def add(self, stream: str, stamp_ns: int, item) -> None:
        """Store one item; a later item of the same stream and stamp replaces the earlier."""
        if stream not in self.streams:
            raise ValueError(f"unknown stream {stream!r}; expected one of {self.streams}")
        self._pending.setdefault(int(stamp_ns), {})[stream] = item

    def is_complete(self, stamp_ns: int) -> bool:
        entry = self._pending.get(int(stamp_ns))
        return entry is not None and all(s in entry for s in self.complete_with)

    def take(self, stamp_ns: int) -> dict[str, object] | None:
        """The items of ``stamp_ns`` (removed) when that stamp is complete, else None (they keep waiting)."""
        if not self.is_complete(stamp_ns):
            return None
        return self._pending.pop(int(stamp_ns))

    def release(self, final: bool = False) -> Iterator[tuple[int, dict[str, object]]]:
        """In stamp order: the oldest stamps while each is complete, or beyond the window, or all when ``final``.

        An incomplete stamp released this way comes with what it has; the caller decides whether to use it.
        """
        while self._pending:
            stamp = min(self._pending)
            if not (self.is_complete(stamp) or final or len(self._pending) > self.window):
                return
            yield stamp, self._pending.pop(stamp)

    def evict(self) -> list[tuple[int, dict[str, object]]]:
        """Drop the oldest stamps beyond the window; returns them (stamp order) so the caller can count them."""
        dropped = []
        while len(self._pending) > self.window:
            stamp = min(self._pending)
            dropped.append((stamp, self._pending.pop(stamp)))
        return dropped
