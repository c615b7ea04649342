"""Count distinct errors by origin layer and the cascade lines they avoided.

An error raised in the infrastructure layer and re-raised through core,
service and api would, with naive per-layer logging, print its traceback
four times. stratalog prints it once, where it first appears, and each
outer layer writes a short ``operation.failed`` line with
``propagated=true`` instead. Two sources tell how many layers an error
crossed after its origin:

* P, the ``operation.failed`` lines with ``propagated=true`` for its
  ``error_id``;
* L - 1, where L is the length of ``layers`` in the ``errors`` entry of
  the request's summary.

The rule: an error avoided ``max(P, L - 1)`` cascade lines. Both sources
describe the same crossings, so adding them would count each twice; the
maximum still counts an error whose summary or whose reference lines are
missing from the input (filtered by level, or cut off by rotation).

An error is settled when its request's summary arrives, since the summary
is a request's last line. Errors whose summary never arrives are settled
oldest first once more than ``PENDING_LIMIT`` are open, and at the end.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PENDING_LIMIT", "ErrorTracker", "bump"]

PENDING_LIMIT = 100_000
KEY_LIMIT = 2_000
OTHER = "(other)"
UNKNOWN = "(unknown)"


def bump(counter: dict[str, int], key: str, by: int = 1) -> None:
    """Add *by* to *key*, folding new keys past ``KEY_LIMIT`` into OTHER."""
    if key not in counter and len(counter) >= KEY_LIMIT:
        key = OTHER
    counter[key] = counter.get(key, 0) + by


class _Open:
    __slots__ = ("crossed", "origin", "propagated", "typed")

    def __init__(self) -> None:
        self.origin: str | None = None
        self.propagated = 0
        self.crossed = 0
        self.typed = False


class ErrorTracker:
    """Settle errors seen in failure lines and summaries into totals."""

    def __init__(self, pending_limit: int = PENDING_LIMIT) -> None:
        self._pending: dict[str, _Open] = {}
        self._limit = pending_limit
        self.by_origin: dict[str, int] = {}
        self.avoided_by_origin: dict[str, int] = {}
        self.types: dict[str, int] = {}

    def on_failed(self, line: dict[str, Any]) -> None:
        """Account one ``operation.failed`` line."""
        error_id = line.get("error_id")
        if not isinstance(error_id, str):
            return
        entry = self._entry(error_id)
        if line.get("propagated") is True:
            entry.propagated += 1
            entry.origin = entry.origin or _text(line.get("origin_layer"))
        else:
            entry.origin = _text(line.get("layer")) or entry.origin
        self._type(entry, line.get("error_type"))

    def on_summary_error(self, error: dict[str, Any]) -> None:
        """Account one entry of a summary's ``errors`` list and settle it."""
        error_id = error.get("error_id")
        if not isinstance(error_id, str):
            return
        entry = self._pending.pop(error_id, None) or _Open()
        entry.origin = entry.origin or _text(error.get("origin_layer"))
        layers = error.get("layers")
        if isinstance(layers, list):
            entry.crossed = max(len(layers) - 1, 0)
        self._type(entry, error.get("type"))
        self._settle(entry)

    def finish(self) -> None:
        """Settle every error still open."""
        for entry in self._pending.values():
            self._settle(entry)
        self._pending.clear()

    def _entry(self, error_id: str) -> _Open:
        entry = self._pending.get(error_id)
        if entry is None:
            if len(self._pending) >= self._limit:
                oldest = next(iter(self._pending))
                self._settle(self._pending.pop(oldest))
            entry = self._pending[error_id] = _Open()
        return entry

    def _type(self, entry: _Open, kind: object) -> None:
        if not entry.typed:
            entry.typed = True
            bump(self.types, _text(kind) or UNKNOWN)

    def _settle(self, entry: _Open) -> None:
        origin = entry.origin or UNKNOWN
        bump(self.by_origin, origin)
        avoided = max(entry.propagated, entry.crossed)
        bump(self.avoided_by_origin, origin, avoided)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
