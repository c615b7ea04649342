"""What a full buffer gives up, so that its memory stays bounded.

The queue holds ``(line, level)`` pairs, oldest first. A full queue drops
its oldest debug and info lines; warnings and above are kept until the
queue holds twice the bound, and only past that are the oldest lines of
any level dropped too.

Each pass goes a tenth below the bound it enforces, and the next pass
starts only a tenth of the bound later, so a queue that stays full pays
for one pass per tenth of the bound rather than one per line.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import orjson

from ._render import now_iso

__all__ = [
    "POLICIES",
    "WARNING",
    "Bound",
    "drop_report",
    "next_check",
    "shed",
]

POLICIES = ("drop_low", "block")
"""``drop_low`` never waits; ``block`` waits for the writer first."""

WARNING = 30

Entry = tuple[bytes, int]


@dataclass(frozen=True, slots=True)
class Bound:
    """A limit on the queue, in lines and in bytes."""

    lines: int
    bytes: int

    def doubled(self) -> Bound:
        """Return the hard bound, past which warnings are dropped too."""
        return Bound(2 * self.lines, 2 * self.bytes)


def shed(queue: deque[Entry], size: int, bound: Bound) -> tuple[int, int]:
    """Drop lines from *queue*, holding *size* bytes, to get below *bound*.

    Returns the number of lines and of bytes dropped. Only the caller
    removes lines from the left of *queue* meanwhile; other threads may
    append on the right.
    """
    lines, nbytes = _drop_oldest(
        queue,
        len(queue) - _tenth_below(bound.lines),
        size - _tenth_below(bound.bytes),
        keep_warnings=True,
    )
    size -= nbytes
    hard = bound.doubled()
    if len(queue) > hard.lines or size > hard.bytes:
        more_lines, more_bytes = _drop_oldest(
            queue,
            len(queue) - _tenth_below(hard.lines),
            size - _tenth_below(hard.bytes),
            keep_warnings=False,
        )
        lines += more_lines
        nbytes += more_bytes

    return lines, nbytes


def next_check(count: int, size: int, bound: Bound) -> Bound:
    """Return where the next pass starts, after a pass left *count* lines."""
    hard = bound.doubled()
    return Bound(
        min(hard.lines, max(bound.lines, count + bound.lines // 10 + 1)),
        min(hard.bytes, max(bound.bytes, size + bound.bytes // 10 + 1)),
    )


def drop_report(dropped: int, interval_s: float) -> bytes:
    """Return the ``log.dropped`` line for *dropped* lines in an interval."""
    event = {
        "timestamp": now_iso(),
        "level": "warning",
        "logger": "stratalog",
        "event": "log.dropped",
        "dropped": dropped,
        "interval_s": round(interval_s, 3),
    }
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


def _tenth_below(limit: int) -> int:
    return limit - limit // 10


def _drop_oldest(
    queue: deque[Entry],
    excess_lines: int,
    excess_bytes: int,
    *,
    keep_warnings: bool,
) -> tuple[int, int]:
    kept: list[Entry] = []
    lines = nbytes = 0
    for _ in range(len(queue)):
        if lines >= excess_lines and nbytes >= excess_bytes:
            break
        entry = queue.popleft()
        if keep_warnings and entry[1] >= WARNING:
            kept.append(entry)
        else:
            lines += 1
            nbytes += len(entry[0])
    # One C call puts the kept lines back in front, in order, without
    # interleaving with appends from other threads.
    queue.extendleft(reversed(kept))

    return lines, nbytes
