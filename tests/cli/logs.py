"""Builders of log lines in stratalog's schema, for the CLI's tests."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import orjson

START = dt.datetime(2026, 12, 3, 14, 0, 0, tzinfo=dt.UTC)


def stamp(ms: float) -> str:
    """Return the RFC 3339 timestamp *ms* milliseconds after START."""
    moment = START + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def nearest_rank(values: Iterable[float], percent: int) -> float:
    """Return the nearest-rank percentile, written independently of _stats.

    The smallest sample such that at least *percent* % of all samples are
    less than or equal to it.
    """
    ordered = sorted(values)
    for value in ordered:
        at_most = sum(1 for other in ordered if other <= value)
        if at_most * 100 >= percent * len(ordered):
            return value
    raise ValueError("no samples")


def line(event: str, at_ms: float, **fields: Any) -> dict[str, Any]:
    """Return one log line; *fields* override the defaults."""
    record: dict[str, Any] = {
        "timestamp": stamp(at_ms),
        "level": "info",
        "logger": "tests.cli",
        "layer": "api",
        "event": event,
    }
    record.update(fields)
    return record


def request(
    correlation_id: str,
    route: str,
    duration_ms: float,
    status: int = 200,
    at_ms: float = 0.0,
    **fields: Any,
) -> dict[str, Any]:
    """Return a ``request.completed`` line with a consistent summary."""
    summary: dict[str, Any] = {
        "correlation_id": correlation_id,
        "method": "GET",
        "route": route,
        "path": route.replace("{id}", "7"),
        "status": status,
        "duration_ms": duration_ms,
        "outcome": "error" if status >= 500 else "ok",
        "start_time": stamp(at_ms - duration_ms),
        "counts": {"lines": 3, "suppressed": 0, "operations": 1, "errors": 0},
        "error": False,
        "error_count": 0,
        "request_timeline": {
            "start": stamp(at_ms - duration_ms),
            "api_layer": {
                "start": stamp(at_ms - duration_ms),
                "end": stamp(at_ms),
                "duration": duration_ms / 1000,
                "threshold": 0.5,
                "violation": duration_ms > 500,
            },
            "end": stamp(at_ms),
            "total_duration": duration_ms / 1000,
        },
        "dedup": {"suppressed": 0, "keys": {}},
    }
    summary.update(fields)
    return line("request.completed", at_ms, **summary)


def operation(
    event: str,
    layer: str,
    name: str,
    duration_ms: float,
    at_ms: float = 0.0,
    **fields: Any,
) -> dict[str, Any]:
    """Return a terminal operation line of *layer*."""
    level = {"operation.slow": "warning", "operation.failed": "error"}
    return line(
        event,
        at_ms,
        level=level.get(event, "info"),
        layer=layer,
        operation=name,
        duration_ms=duration_ms,
        **fields,
    )


def encode(records: Iterable[dict[str, Any] | bytes]) -> bytes:
    """Return NDJSON for *records*; bytes are written as they are."""
    return b"".join(
        item if isinstance(item, bytes) else orjson.dumps(item) + b"\n"
        for item in records
    )


def ceil_rank(count: int, percent: int) -> int:
    """Return the 1-based nearest rank, for tests that index by hand."""
    return max(math.ceil(percent * count / 100), 1)
