"""Aggregate large inputs in parts on several processes, then merge them.

A plain file is cut into byte ranges at line starts; a gzip file is one
part, and standard input is never read in parts. This process reads the
first part and spawned workers the others (spawn, not fork: a forked child
would inherit the locks of the progress bar's thread). Parts are merged in
input order (``_merge``), and errors whose lines straddle a cut are still
counted once (``_cascade``). Workers report their bytes read through
shared memory so that the progress bar keeps moving.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_EXCEPTION,
    Future,
    ProcessPoolExecutor,
    wait,
)
from dataclasses import dataclass
from functools import partial
from typing import Any

from stratalog.cli._aggregate import ReportAggregator
from stratalog.cli._input import STDIN, Source, open_part, total_size
from stratalog.cli._merge import merge
from stratalog.cli._scan import new_tally, progress, read_source, scan

__all__ = ["AUTO_MIN_BYTES", "Part", "aggregate", "plan"]

AUTO_MIN_BYTES = 192 << 20
AUTO_MAX_JOBS = 4
_shared: Any = None


@dataclass(frozen=True)
class Part:
    """A byte range of one input; *end* None means to its end."""

    index: int
    name: str
    start: int
    end: int | None


def aggregate(
    names: Sequence[str], top: int, jobs: int
) -> tuple[ReportAggregator, dict[str, Any]]:
    """Aggregate *names* with *jobs* processes (0: choose by input size)."""
    jobs = jobs or _auto_jobs(names)
    if jobs <= 1 or STDIN in names:
        aggregator = ReportAggregator(top=top)
        return aggregator, scan(names, aggregator.feed)
    return _in_parallel(names, plan(names, jobs), top, jobs)


def plan(names: Sequence[str], jobs: int) -> list[Part]:
    """Cut plain files into about *jobs* ranges that start at line starts."""
    sizes = {name: os.stat(name).st_size for name in names}
    target = max(sum(sizes.values()) // jobs, 1)
    parts: list[Part] = []
    for name in names:
        cuts = [] if name.endswith(".gz") else _cuts(name, sizes[name], target)
        bounds = [0, *cuts, None]
        for start, end in itertools.pairwise(bounds):
            parts.append(Part(len(parts), name, start or 0, end))
    return parts


def _auto_jobs(names: Sequence[str]) -> int:
    size = total_size(names)
    if size is None or size < AUTO_MIN_BYTES:
        return 1
    return max(1, min(_usable_cpus(), AUTO_MAX_JOBS))


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cuts(name: str, size: int, target: int) -> list[int]:
    pieces = max(1, round(size / target))
    cuts: list[int] = []
    with open(name, "rb") as handle:
        for piece in range(1, pieces):
            handle.seek(size * piece // pieces)
            handle.readline()
            cut = handle.tell()
            if cut < size and (not cuts or cut > cuts[-1]):
                cuts.append(cut)
    return cuts


def _in_parallel(
    names: Sequence[str], parts: list[Part], top: int, jobs: int
) -> tuple[ReportAggregator, dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    shared = context.Array("q", len(parts), lock=False)
    pool = ProcessPoolExecutor(
        max_workers=jobs - 1,
        mp_context=context,
        initializer=_remember,
        initargs=(shared,),
    )
    with pool, progress(total_size(names)) as show:
        futures = [pool.submit(_work, part, top) for part in parts[1:]]
        # This process reads the first part itself: one spawn and one
        # interpreter's memory less than a worker per part.
        _remember(shared)
        try:
            first = _work(parts[0], top, lambda: show(sum(shared)))
        finally:
            _remember(None)
        _wait(futures, lambda: show(sum(shared)))
        results = [first, *(future.result() for future in futures)]
    return _combine(names, results)


def _wait(futures: list[Future[Any]], tick: Callable[[], None]) -> None:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, 0.2, return_when=FIRST_EXCEPTION)
        tick()
        if any(future.exception() for future in done):
            return


def _combine(
    names: Sequence[str],
    results: list[tuple[ReportAggregator, dict[str, Any]]],
) -> tuple[ReportAggregator, dict[str, Any]]:
    total, tally = results[0]
    tally["files"] = list(names)
    for aggregator, part_tally in results[1:]:
        merge(total, aggregator)
        tally["bytes"] += part_tally["bytes"]
        tally["oversized_lines"] += part_tally["oversized_lines"]
        tally["unreadable"] += part_tally["unreadable"]
    return total, tally


def _remember(shared: Any) -> None:
    global _shared
    _shared = shared


def _work(
    part: Part, top: int, tick: Callable[[], None] | None = None
) -> tuple[ReportAggregator, dict[str, Any]]:
    aggregator = ReportAggregator(top=top, part=part.index)
    tally = new_tally([part.name])
    source = open_part(part.name, part.start, part.end)
    try:
        on_read = partial(_publish, part.index, source, tick)
        read_source(source, aggregator.feed, tally, on_read)
    finally:
        source.raw.close()
    return aggregator, tally


def _publish(
    index: int, source: Source, tick: Callable[[], None] | None
) -> None:
    if _shared is not None:
        _shared[index] = source.consumed()
    if tick is not None:
        tick()
