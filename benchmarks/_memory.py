"""Comparison 9: memory per request and growth inside one long request.

Measured with ``tracemalloc`` (one frame), after ``gc.collect()``, as
the difference of traced memory before and after; lines go to a sink
that keeps nothing, so the figures are the request's own.

- ``context.bytes``: 10,000 requests opened with ``start_request`` (a
  user and a session id), each in its own ``contextvars.Context``
  (created beforehand), all kept open; the difference divided by 10,000.
  It includes everything an open request holds: the RequestContext, its
  error history and performance tracker, the context variable's token.
- ``open_request.bytes``: the same, after a typical request's work in
  each: one attribute, three nested operations (api, service, core),
  a warning, a metric.
- ``growth.bytes``: one request runs operations whose names cycle through
  25,000 (more than the 10,000 dedup keys and the 500 per-operation
  aggregates it keeps), with a warning of a changing key every tenth
  operation; after a warm-up past every bound, the difference over one
  million more operations.
"""

from __future__ import annotations

import contextvars
import gc
import time
import tracemalloc
from typing import Any

from ._family import Family, Unavailable, require
from ._subject import Options

__all__ = ["run"]

_REQUESTS = 10_000
_NAMES = 25_000


class _Discard:
    """A sink that keeps nothing."""

    def write(self, line: bytes, level: int) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float) -> bool:
        return True


class _Loggers:
    def __init__(self) -> None:
        stratalog = require("stratalog", "configure")
        stratalog.configure(
            sink=_Discard(), format="json", capture_stdlib=False
        )
        logger = require("stratalog.logger", "get_unified_logger")
        coordinator = require("stratalog.coordinator", "LoggingCoordinator")
        self.coordinator = coordinator.LoggingCoordinator()
        self.api = logger.get_unified_logger("bench.api", "api")
        self.service = logger.get_unified_logger("bench.service", "service")
        self.core = logger.get_unified_logger("bench.core", "core")

    def open(self) -> Any:
        return self.coordinator.start_request(
            user_id="u-1042", session_id="s-5521"
        )

    def typical(self) -> Any:
        ctx = self.open()
        ctx.bind(tenant="acme")
        with (
            self.api.operation("create_order"),
            self.service.operation("place_order", items=3),
            self.core.operation("reserve_stock"),
        ):
            self.core.warning("stock.low", sku="sku-1", left=2)
            self.service.log_metric("order.value", 129.95, "EUR")
        return ctx


def _traced() -> int:
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    return current


def _per_request(make: Any) -> float:
    contexts = [contextvars.Context() for _ in range(_REQUESTS)]
    held: list[Any] = [None] * _REQUESTS
    before = _traced()
    for index, context in enumerate(contexts):
        held[index] = context.run(make)
    after = _traced()
    return (after - before) / _REQUESTS


def _growth(loggers: _Loggers, warmup: int, measured: int) -> float:
    core = loggers.core
    names = [f"op_{i}" for i in range(_NAMES)]
    context = contextvars.Context()
    context.run(loggers.open)

    def operations(start: int, count: int) -> None:
        for i in range(start, start + count):
            with core.operation(names[i % _NAMES]):
                if not i % 10:
                    core.warning("cache.miss", key=f"k{i % 30_000}")

    context.run(operations, 0, warmup)
    before = _traced()
    context.run(operations, warmup, measured)
    after = _traced()
    return float(after - before)


def run(options: Options) -> Family:
    """Measure per-request memory and growth, under tracemalloc."""
    family = Family("memory", "Memory")
    try:
        loggers = _Loggers()
        loggers.typical()
        loggers.coordinator.end_request()
    except Exception as exc:
        reason = str(exc) if isinstance(exc, Unavailable) else repr(exc)
        for key in ("context.bytes", "open_request.bytes", "growth.bytes"):
            family.unavailable[key] = reason
        return family
    tracemalloc.start(1)
    rounds = options.rounds(3, 1)
    sizes = [_per_request(loggers.open) for _ in range(rounds)]
    opened = [_per_request(loggers.typical) for _ in range(rounds)]
    measured = 100_000 if options.quick else 1_000_000
    started = time.perf_counter()
    growth = _growth(loggers, 60_000, measured)
    elapsed = time.perf_counter() - started
    tracemalloc.stop()
    family.value(
        "context.bytes",
        "bytes per open request: start_request (2 ids), 10,000 requests",
        "bytes",
        sizes,
    )
    family.value(
        "open_request.bytes",
        "bytes per open request after a typical request's work",
        "bytes",
        opened,
    )
    family.value(
        "growth.bytes",
        f"traced growth over {measured:,} operations in one request, "
        "after a 60,000-operation warm-up past the bounds",
        "bytes",
        [growth],
    )
    family.notes.append(
        f"The growth run took {elapsed:.1f} s under tracemalloc."
    )
    return family
