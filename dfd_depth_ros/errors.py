"""How the package turns exceptions into one readable line (library errors can be pages long)."""

from __future__ import annotations


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an exception's message (or of a text); the type name if it has none."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__ if isinstance(exc, BaseException) else ""
