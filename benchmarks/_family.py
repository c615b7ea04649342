"""What one comparison family reports: figures, gaps, notes, commands.

A family runs in its own process and prints its :class:`Family` as one
JSON document; the parent gathers them into the results.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._timing import Sample, summarise

__all__ = ["Family", "Unavailable", "require"]


class Unavailable(Exception):
    """A contender cannot run here: a module has not landed, a tool is
    missing. The message says what is missing."""


def require(module: str, *names: str) -> Any:
    """Import *module* and check it has *names*, or raise Unavailable."""
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{module} is not importable ({exc})") from None
    missing = [name for name in names if not hasattr(found, name)]
    if missing:
        raise Unavailable(f"{module} has no {', '.join(missing)}")
    return found


@dataclass
class Family:
    """The figures of one comparison family, ready for JSON."""

    name: str
    title: str
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    compare: list[tuple[str, str]] = field(default_factory=list)

    def timing(self, key: str, label: str, sample: Sample) -> None:
        """Record per-call times: CPU judged, wall shown beside it."""
        self.figures[key] = {
            "label": label,
            "unit": "µs",
            "kind": "timing",
            "cpu": summarise(sample.cpu),
            "wall": summarise(sample.wall),
            "samples": sample.cpu,
            "batch": sample.batch,
            "rounds": len(sample.cpu),
        }

    def value(
        self,
        key: str,
        label: str,
        unit: str,
        samples: list[float],
        **extra: Any,
    ) -> None:
        """Record a measured quantity, one sample per round."""
        self.figures[key] = {
            "label": label,
            "unit": unit,
            "kind": "value",
            "stats": summarise(samples),
            "samples": samples,
            "rounds": len(samples),
            **extra,
        }

    def attempt(self, key: str, build: Callable[[], Any]) -> Any:
        """Call *build*; if it cannot be set up, note why and return None.

        Any exception counts: a module half-way through a change must not
        take the other contenders of the family down with it.
        """
        try:
            return build()
        except Unavailable as exc:
            self.unavailable[key] = str(exc)
        except Exception as exc:
            self.unavailable[key] = f"setup failed: {exc!r}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return the family as plain JSON-ready data."""
        return {
            "name": self.name,
            "title": self.title,
            "figures": self.figures,
            "unavailable": self.unavailable,
            "notes": self.notes,
            "commands": self.commands,
            "compare": self.compare,
        }
