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
    __slots__ = ("crossed", "kind", "origin", "propagated")

    def __init__(self) -> None:
        self.origin: str | None = None
        self.kind: str | None = None
        self.propagated = 0
        self.crossed = 0

    def absorb(self, other: _Open) -> _Open:
        """Combine what two parts of the input saw of one error."""
        self.origin = self.origin or other.origin
        self.kind = self.kind or other.kind
        self.propagated += other.propagated
        self.crossed = max(self.crossed, other.crossed)
        return self


class ErrorTracker:
    """Settle errors seen in failure lines and summaries into totals.

    When the input is read in parts, the tracker of a later part holds its
    first *hold* summary errors open instead of settling them, because
    their failure lines may sit just before the part's start; ``merge``
    settles them together with the previous part's open errors.
    """

    def __init__(
        self, pending_limit: int = PENDING_LIMIT, hold: int = 0
    ) -> None:
        self._pending: dict[str, _Open] = {}
        self._limit = pending_limit
        self._hold = hold
        self.held: dict[str, _Open] = {}
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
        entry.kind = entry.kind or _text(line.get("error_type"))

    def on_summary_error(self, error: dict[str, Any]) -> None:
        """Account one entry of a summary's ``errors`` list and settle it."""
        error_id = error.get("error_id")
        if not isinstance(error_id, str):
            return
        entry = self._pending.pop(error_id, None) or _Open()
        entry.origin = entry.origin or _text(error.get("origin_layer"))
        entry.kind = entry.kind or _text(error.get("type"))
        layers = error.get("layers")
        if isinstance(layers, list):
            entry.crossed = max(len(layers) - 1, 0)
        if len(self.held) < self._hold:
            self.held[error_id] = entry
        else:
            self._settle(entry)

    def merge(self, later: ErrorTracker) -> None:
        """Absorb the tracker of the part of the input that follows."""
        for error_id, entry in later.held.items():
            mine = self._pending.pop(error_id, None)
            self._settle(mine.absorb(entry) if mine else entry)
        for error_id, entry in later._pending.items():
            mine = self._pending.pop(error_id, None)
            self._pending[error_id] = mine.absorb(entry) if mine else entry
        self._settle_past_limit()
        for counter, extra in (
            (self.by_origin, later.by_origin),
            (self.avoided_by_origin, later.avoided_by_origin),
            (self.types, later.types),
        ):
            for key, count in extra.items():
                bump(counter, key, count)

    def finish(self) -> None:
        """Settle every error still open."""
        for entry in (*self.held.values(), *self._pending.values()):
            self._settle(entry)
        self.held.clear()
        self._pending.clear()

    def _entry(self, error_id: str) -> _Open:
        entry = self._pending.get(error_id)
        if entry is None:
            self._settle_past_limit(1)
            entry = self._pending[error_id] = _Open()
        return entry

    def _settle_past_limit(self, room: int = 0) -> None:
        while len(self._pending) + room > self._limit:
            oldest = next(iter(self._pending))
            self._settle(self._pending.pop(oldest))

    def _settle(self, entry: _Open) -> None:
        origin = entry.origin or UNKNOWN
        bump(self.by_origin, origin)
        bump(
            self.avoided_by_origin,
            origin,
            max(entry.propagated, entry.crossed),
        )
        bump(self.types, entry.kind or UNKNOWN)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
