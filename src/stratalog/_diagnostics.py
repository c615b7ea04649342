"""Report stratalog's own failures without going through its pipeline.

A logging library that logs about itself through its own pipeline can
recurse or amplify the very failure it reports. Internal problems are
therefore counted per kind and written straight to ``sys.__stderr__``, at
most once per interval per kind, with the number of occurrences since the
last report.
"""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["counts", "report", "reset"]

INTERVAL_S = 60.0

_lock = threading.Lock()
_counts: dict[str, int] = {}
_unreported: dict[str, int] = {}
_last_report: dict[str, float] = {}


def report(kind: str, message: str, exc: BaseException | None = None) -> None:
    """Count one internal failure of *kind*; print it if the interval allows.

    Never raises, also during interpreter shutdown.
    """
    try:
        now = time.monotonic()
        with _lock:
            _counts[kind] = _counts.get(kind, 0) + 1
            pending = _unreported.get(kind, 0) + 1
            last = _last_report.get(kind)
            if last is not None and now - last < INTERVAL_S:
                _unreported[kind] = pending
                return
            _last_report[kind] = now
            _unreported[kind] = 0
        _write(kind, message, exc, pending)
    except BaseException:
        pass


def counts() -> dict[str, int]:
    """Return how often each kind of internal failure happened so far."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget every count and report time (for tests)."""
    with _lock:
        _counts.clear()
        _unreported.clear()
        _last_report.clear()


def _write(
    kind: str, message: str, exc: BaseException | None, pending: int
) -> None:
    stream = sys.__stderr__
    if stream is None:
        return
    detail = f": {type(exc).__name__}: {exc!r:.200}" if exc else ""
    repeats = f" ({pending} since last report)" if pending > 1 else ""
    stream.write(f"stratalog: {kind}: {message}{detail}{repeats}\n")
    stream.flush()
