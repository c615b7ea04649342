"""Counters and a bounded latency window for one external client.

Failures are sorted into a few kinds that say where to look: ``timeout``,
``connection``, ``http_5xx``, ``http_4xx``, ``validation`` and ``other``.
httpx errors are recognised only when httpx is already imported, since no
httpx error can exist otherwise.
"""

from __future__ import annotations

import math
import socket
import sys
from collections import deque
from typing import Any

from ._retry import http_status
from .exceptions import ResponseValidationError

__all__ = ["FAILURE_KINDS", "ClientMetrics", "failure_kind", "reached"]

FAILURE_KINDS = (
    "timeout",
    "connection",
    "http_5xx",
    "http_4xx",
    "validation",
    "other",
)

LATENCY_WINDOW = 1024
OUTCOME_WINDOW = 100


def failure_kind(exc: BaseException) -> str:
    """Return the failure kind of *exc* (see the module docstring)."""
    if isinstance(exc, ResponseValidationError):
        return "validation"
    status = http_status(exc)
    if status is not None:
        return "http_5xx" if status >= 500 else "http_4xx"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | socket.gaierror):
        return "connection"
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        if isinstance(exc, httpx.TransportError):
            return "connection"

    return "other"


def reached(exc: BaseException) -> bool:
    """Tell whether a request that failed with *exc* may have reached
    the service.

    Only failures to connect are known not to have: the request was never
    sent, so repeating it is safe even when it is not idempotent.
    """
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return False
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return True

    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


class ClientMetrics:
    """What one client's calls did, for ``get_metrics`` and health checks.

    ``calls`` counts every call, refused and cancelled ones included;
    latencies and the recent outcomes cover the calls that were made and
    ended with a result or an error.

    Updated from the event loop; a snapshot taken from another thread may
    be one call behind.
    """

    __slots__ = (
        "calls",
        "cancelled",
        "failures",
        "failures_by_kind",
        "latencies",
        "recent",
        "retries",
        "short_circuits",
        "successes",
        "timeouts",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.successes = 0
        self.failures = 0
        self.cancelled = 0
        self.timeouts = 0
        self.retries = 0
        self.short_circuits = 0
        self.failures_by_kind = dict.fromkeys(FAILURE_KINDS, 0)
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.recent: deque[bool] = deque(maxlen=OUTCOME_WINDOW)

    def succeeded(self, latency: float) -> None:
        """Count a call that returned, after *latency* seconds."""
        self.calls += 1
        self.successes += 1
        self.latencies.append(latency)
        self.recent.append(True)

    def failed(self, latency: float, kind: str) -> None:
        """Count a call that raised an error of *kind*."""
        self.calls += 1
        self.failures += 1
        self.failures_by_kind[kind] += 1
        self.latencies.append(latency)
        self.recent.append(False)

    def short_circuited(self) -> None:
        """Count a call the breaker refused; it reached nothing."""
        self.calls += 1
        self.short_circuits += 1

    def was_cancelled(self) -> None:
        """Count a call abandoned by its caller; no verdict on health."""
        self.calls += 1
        self.cancelled += 1

    def failure_rate(self) -> tuple[float, int]:
        """Return the failure share of the recent calls and their number."""
        recent = tuple(self.recent)
        if not recent:
            return 0.0, 0

        return recent.count(False) / len(recent), len(recent)

    def snapshot(self) -> dict[str, Any]:
        """Return the counters and latency percentiles in milliseconds."""
        rate, sample = self.failure_rate()
        return {
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "failures_by_kind": dict(self.failures_by_kind),
            "timeouts": self.timeouts,
            "retries": self.retries,
            "short_circuits": self.short_circuits,
            "cancelled": self.cancelled,
            "recent_failure_rate": round(rate, 4),
            "recent_calls": sample,
            "latency_ms": percentiles(tuple(self.latencies)),
        }


def percentiles(samples: tuple[float, ...]) -> dict[str, float | None]:
    """Return p50, p95 and p99 of *samples* (seconds) in milliseconds.

    Nearest-rank on the sorted window; ``None`` when there is no sample.
    """
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "count": 0}
    ordered = sorted(samples)
    count = len(ordered)

    def rank(p: float) -> float:
        index = max(0, math.ceil(p * count) - 1)
        return round(ordered[index] * 1000, 3)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "count": count,
    }
