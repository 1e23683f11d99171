"""DictConfig: the dict round trip of the architecture configs saved in checkpoints and ONNX metadata."""

from __future__ import annotations

from dataclasses import asdict, fields


class DictConfig:
    """Mixin for a frozen dataclass config: ``to_dict`` (JSON-ready: tuples as lists) and ``from_dict``.

    ``from_dict`` refuses keys the class does not know (a model file from another version says so instead of
    loading wrong) and turns lists back into tuples. ``KIND`` names the config in that error.
    """

    KIND = "config"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.KIND} keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
