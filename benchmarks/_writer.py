"""Comparison 8: the buffered writer's rate, and the event loop beside it.

Rate. One thread offers pre-rendered 260-byte lines to an
``AsyncLogBuffer`` (default settings: batches of 1,000 lines, flushed
every second) with a file destination, as fast as it can, for a fixed
window. The rate is what the writer wrote *during* the window (its
``stats().written``) divided by the window: a drain after the producer
stops would flatter it, since the writer then has the GIL to itself.
``overflow="block"`` is measured beside the default ``drop_low``.

Stall. On one event loop, a monitor task sleeps 1 ms at a time and
records how late it wakes, while a producer coroutine logs
``order.placed`` lines through the whole pipeline (stratalog configured
to a file) as fast as it can, yielding to the loop every 20 lines. Two
baselines run the same way: the monitor alone, and the producer writing
to a sink that keeps nothing (so the producer's own 20-line slices are
seen apart from anything the writer thread adds). During that run the
lines the writer wrote and the lines the overflow policy dropped are
counted too, and once more with the producer alone on the loop, which
then never idles: the writer thread's share of the GIL beside a busy
event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from ._family import Family, Unavailable, require
from ._peers import FIELDS, IDS, count_lines
from ._subject import Options, configure_file, open_request

__all__ = ["run"]

_LINE = (
    b'{"timestamp":"2026-12-03T14:16:50.123456Z","level":"info",'
    b'"logger":"bench.orders","layer":"service","event":"order.placed",'
    b'"correlation_id":"6f1d3c2a-8e4b-4b7a-9d2e-1c5f7a9b3e21",'
    b'"order_id":"o-81723","items":3,"amount":129.95,"currency":"EUR",'
    b'"express":true,"pad":"xxxxxxxxxxxxxxxx"}\n'
)
_SLICE = 20


def _rate_once(
    path: Path, overflow: str, seconds: float
) -> tuple[float, int, int]:
    """Write for *seconds*; return (lines/s written meanwhile, written,
    produced)."""
    output = require("stratalog.output", "AsyncLogBuffer", "FileDestination")
    path.unlink(missing_ok=True)
    buffer = output.AsyncLogBuffer(
        destinations=[output.FileDestination(path)], overflow=overflow
    )
    write = buffer.write
    line = _LINE
    clock = time.perf_counter
    produced = 0
    started = clock()
    until = started + seconds
    while clock() < until:
        for _ in range(1000):
            write(line, 20)
        produced += 1000
    window = clock() - started
    during = buffer.stats().written
    buffer.flush()
    buffer.close(5.0)
    return during / window, count_lines(path), produced


def _rates(family: Family, options: Options) -> None:
    seconds = 0.5 if options.quick else 1.0
    rounds = options.rounds(5, 2)
    rates: dict[str, list[float]] = {"drop_low": [], "block": []}
    written: dict[str, int] = {"drop_low": 0, "block": 0}
    produced: dict[str, int] = {"drop_low": 0, "block": 0}
    for _ in range(rounds):
        for overflow in rates:
            rate, lines, made = _rate_once(
                options.var / "writer-rate.log", overflow, seconds
            )
            rates[overflow].append(rate)
            written[overflow] += lines
            produced[overflow] += made
    for overflow, key in (
        ("drop_low", "rate.file"),
        ("block", "rate.file_block"),
    ):
        family.value(
            key,
            f"AsyncLogBuffer to a file (overflow={overflow}): lines written "
            f"per second while one thread writes pre-rendered lines for "
            f"{seconds:g} s as fast as it can",
            "lines/s",
            rates[overflow],
            produced=produced[overflow],
            written=written[overflow],
        )
        share = 1 - written[overflow] / produced[overflow]
        family.notes.append(
            f"overflow={overflow}: {produced[overflow]:,} lines offered, "
            f"{written[overflow]:,} in the file after the final flush "
            f"({share:.1%} dropped by the overflow policy)."
        )


class _Discard:
    """A sink that keeps nothing: the producer's cost without the writer."""

    def write(self, line: bytes, level: int) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float) -> bool:
        return True


class _RunDelay:
    """This thread's time spent runnable but not running (Linux schedstat).

    On a shared machine other processes preempt the loop's thread for
    milliseconds at a time; that wait is the machine's, not the
    writer's, so it is taken out of each lag. Waiting for the GIL is
    sleeping, not runnable, so a writer holding the GIL still counts.
    """

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(
                "/proc/thread-self/schedstat", os.O_RDONLY
            )
        except OSError:
            self._fd = None

    def now_ms(self) -> float:
        """Return the run-queue wait so far, in ms (0 when unknown)."""
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e6

    def close(self) -> None:
        """Close the descriptor."""
        if self._fd is not None:
            os.close(self._fd)


async def _monitor(until: float, lags: list[tuple[float, float]]) -> None:
    clock = time.perf_counter
    delay = _RunDelay()
    try:
        while clock() < until:
            waited = delay.now_ms()
            before = clock()
            await asyncio.sleep(0.001)
            lag = (clock() - before - 0.001) * 1000
            lags.append((lag, lag - (delay.now_ms() - waited)))
    finally:
        delay.close()


async def _produce(log: Any, until: float) -> int:
    info = log.info
    clock = time.perf_counter
    count = 0
    while clock() < until:
        for _ in range(_SLICE):
            info("order.placed", **FIELDS)
        count += _SLICE
        await asyncio.sleep(0)
    return count


async def _stall(
    log: Any, seconds: float, produce: bool, monitor: bool = True
) -> tuple[Any, int]:
    until = time.perf_counter() + seconds
    lags: list[tuple[float, float]] = []
    work = []
    if monitor:
        work.append(_monitor(until, lags))
    if produce:
        work.append(_produce(log, until))
    done = await asyncio.gather(*work)
    return lags, done[-1] if produce else 0


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _stalls(family: Family, options: Options) -> None:
    path = options.var / "writer-stall.log"
    path.unlink(missing_ok=True)
    stratalog = configure_file(path)
    logger = require("stratalog.logger", "get_unified_logger")
    log = logger.get_unified_logger("bench.orders", "service")
    open_request(**IDS)
    seconds = 1.0 if options.quick else 3.0
    setups = {
        "stall.idle": (None, False),
        "stall.discard": (_Discard(), True),
        "stall.p99": (None, True),
        "busy": (None, True),
    }
    state = require("stratalog._state", "PIPELINE")
    found: dict[str, list[float]] = {key: [] for key in setups}
    raw: dict[str, list[float]] = {key: [] for key in setups}
    counts: dict[str, dict[str, list[float]]] = {
        key: {"rate": [], "written": [], "dropped": []}
        for key in ("stall.p99", "busy")
    }
    for _ in range(options.rounds(5, 2)):
        for key, (sink, produce) in setups.items():
            if sink is not None:
                stratalog.configure(sink=sink, capture_stdlib=False)
            else:
                configure_file(path)
            lags, count = asyncio.run(
                _stall(log, seconds, produce, monitor=key != "busy")
            )
            if key in counts:
                during = state.PIPELINE.sink.stats()
                counts[key]["rate"].append(count / seconds)
                counts[key]["written"].append(during.written / seconds)
                counts[key]["dropped"].append(during.dropped / max(count, 1))
            stratalog.flush()
            if lags:
                raw[key].append(_p99([lag for lag, _ in lags]))
                found[key].append(_p99([own for _, own in lags]))
    _record_stalls(family, found, raw, counts)


def _record_stalls(
    family: Family,
    found: dict[str, list[float]],
    raw: dict[str, list[float]],
    counts: dict[str, dict[str, list[float]]],
) -> None:
    family.value(
        "stall.p99",
        "event-loop lag p99 while a coroutine logs to the file as fast as "
        f"it can (yielding every {_SLICE} lines), run-queue wait removed",
        "ms",
        found["stall.p99"],
    )
    family.value(
        "stall.discard",
        "the same producer, lines rendered but discarded (no writer), "
        "run-queue wait removed",
        "ms",
        found["stall.discard"],
    )
    family.value(
        "stall.idle",
        "the monitor alone, run-queue wait removed",
        "ms",
        found["stall.idle"],
    )
    for key in ("stall.idle", "stall.discard", "stall.p99"):
        family.value(
            f"{key}.raw",
            f"{key} as the wall clock saw it (other processes' preemption "
            "included)",
            "ms",
            raw[key],
        )
    runs = {
        "stall": "beside the monitor",
        "busy": "with no other task (the loop never idles)",
    }
    for prefix, key in (("stall", "stall.p99"), ("busy", "busy")):
        where = runs[prefix]
        family.value(
            f"{prefix}.rate",
            f"lines per second the producer logged, {where}",
            "lines/s",
            counts[key]["rate"],
        )
        family.value(
            f"{prefix}.written",
            f"lines per second the writer put in the file meanwhile, {where}",
            "lines/s",
            counts[key]["written"],
        )
        family.value(
            f"{prefix}.dropped",
            f"share of the producer's lines dropped meanwhile, {where}",
            "fraction",
            counts[key]["dropped"],
        )


def run(options: Options) -> Family:
    """Measure the writer's rate and the loop's lag beside it."""
    family = Family("writer", "The buffered writer")
    try:
        _rates(family, options)
        _stalls(family, options)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, Unavailable) else repr(exc)
        for key in ("rate.file", "stall.p99"):
            family.unavailable.setdefault(key, reason)
    return family
