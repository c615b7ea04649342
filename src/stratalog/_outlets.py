"""Hand batches of lines to every destination of a buffer, and keep count.

A destination that fails is not retried for every batch: its lines are
counted as lost until ``retry_interval`` seconds have passed, then the
next batch tries it again. The failure is reported once on standard
error, through :mod:`stratalog._diagnostics`, and so is the recovery,
with the number of lines lost in between.

Everything a late line needs during interpreter shutdown is reached
through the instance (methods, attributes, builtins), never through a
module global, which may already be cleared by then.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass

from . import _diagnostics
from ._destinations import Destination

__all__ = ["Outlets", "OutputStats"]


@dataclass(frozen=True, slots=True)
class OutputStats:
    """Line counts of one buffer in this process.

    *pending* lines wait for the writer; *written* counts lines handed to
    the destinations; *dropped* counts lines the overflow policy gave up;
    *lost* counts lines a destination failed to take, plus lines refused
    after a close that timed out.
    """

    pending: int
    written: int
    dropped: int
    lost: int


class _Outlet:
    """One destination with its failure state."""

    def __init__(self, destination: Destination, retry_interval: float):
        self.destination = destination
        self.retry_interval = retry_interval
        self.failing = False
        self.lost = 0
        self.retry_at = 0.0
        self._clock = time.monotonic
        self._report = _diagnostics.report

    def send(self, data: bytes, count: int) -> int:
        """Write *data*, holding *count* lines; return how many were lost."""
        if self.failing and self._clock() < self.retry_at:
            self.lost += count
            return count
        try:
            self.destination.write(data)
        except Exception as exc:
            self._fail(count, exc)
            return count
        if self.failing:
            self._recover()
        return 0

    def _fail(self, count: int, exc: Exception) -> None:
        self.lost += count
        self.retry_at = self._clock() + self.retry_interval
        if self.failing:
            return
        self.failing = True
        self._report(
            "output.failed",
            f"cannot write to {self.destination.name}: {self.lost} lines "
            f"lost; retrying every {self.retry_interval:g} s",
            exc,
        )

    def _recover(self) -> None:
        self._report(
            "output.recovered",
            f"writing to {self.destination.name} again after losing "
            f"{self.lost} lines",
        )
        self.failing = False
        self.lost = 0


class Outlets:
    """Every destination of one buffer, with the buffer's line counts."""

    def __init__(
        self, destinations: Iterable[Destination], retry_interval: float
    ) -> None:
        self._outlets = tuple(
            _Outlet(destination, retry_interval)
            for destination in destinations
        )
        self.written = 0
        self.lost = 0

    def send(self, lines: Sequence[bytes]) -> int:
        """Write *lines* to every destination; return the bytes taken."""
        data, nbytes = self._join(lines)
        self.written += len(lines)
        for outlet in self._outlets:
            self.lost += outlet.send(data, len(lines))

        return nbytes

    def send_own(self, line: bytes) -> None:
        """Write one line of the library's own, outside the counts."""
        for outlet in self._outlets:
            outlet.send(line, 1)

    def close(self) -> None:
        """Close every destination; a later write reopens what it needs."""
        for outlet in self._outlets:
            try:
                outlet.destination.close()
            except OSError:
                pass

    def after_fork(self) -> None:
        """Start the counts over and let destinations prepare the child."""
        self.written = self.lost = 0
        for outlet in self._outlets:
            outlet.destination.after_fork()

    def _join(self, lines: Sequence[bytes]) -> tuple[bytes, int]:
        try:
            data = b"".join(lines)
        except TypeError:
            return self._join_coerced(lines)
        return data, len(data)

    def _join_coerced(self, lines: Sequence[object]) -> tuple[bytes, int]:
        """Join lines of which some are not bytes: text gets encoded."""
        parts: list[bytes] = []
        counted = 0
        for line in lines:
            if isinstance(line, str):
                counted += len(line)
                parts.append(line.encode("utf-8", "backslashreplace"))
            elif isinstance(line, bytes | bytearray):
                counted += len(line)
                parts.append(bytes(line))
            else:
                counted += len(line) if isinstance(line, Sized) else 0
                self.lost += 1
        return b"".join(parts), counted
