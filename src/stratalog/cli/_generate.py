"""Generate realistic stratalog NDJSON logs for tests and benchmarks.

The traffic model: requests arrive as a Poisson process against a handful
of routes, each request runs one api operation, one service operation,
a few core operations and infrastructure operations nested inside them,
and ends with a ``request.completed`` summary. Some requests fail deep
down and the error propagates outwards, some operations exceed their
layer's threshold, external calls are retried now and then, and circuit
breakers open and close. Lines of concurrent requests interleave in
timestamp order, as they do in a real service's log.

Everything is drawn from one seeded generator, so a seed always yields
the same bytes.
"""

from __future__ import annotations

import gzip
import heapq
import io
import os
import random
from collections.abc import Iterator
from typing import Any

import orjson

from stratalog.cli._gen_request import RequestBuilder

__all__ = ["iter_lines", "write_log"]

_ARRIVAL_MEAN_US = 2_000.0


def iter_lines(seed: int = 0) -> Iterator[bytes]:
    """Yield an endless stream of log lines, each ending in a newline."""
    rng = random.Random(seed)
    builder = RequestBuilder(rng)
    pending: list[tuple[int, int, dict[str, Any]]] = []
    order = 0
    now_us = 0
    yield from _startup_lines()
    while True:
        now_us += int(rng.expovariate(1.0 / _ARRIVAL_MEAN_US)) + 1
        while pending and pending[0][0] <= now_us:
            yield orjson.dumps(heapq.heappop(pending)[2]) + b"\n"
        for at_us, line in builder.build(now_us):
            order += 1
            heapq.heappush(pending, (at_us, order, line))


def write_log(
    path: str | os.PathLike[str], target_bytes: int, seed: int = 0
) -> int:
    """Write about *target_bytes* of log lines to *path*; return the count.

    The count is the number of lines written. A path ending in ``.gz`` is
    gzip-compressed, and *target_bytes* then counts uncompressed bytes.
    Writing stops at the first line boundary past *target_bytes*.
    """
    written = 0
    lines = 0
    with _open_for_writing(os.fspath(path)) as out:
        batch: list[bytes] = []
        for line in iter_lines(seed):
            batch.append(line)
            written += len(line)
            lines += 1
            if len(batch) >= 4096 or written >= target_bytes:
                out.write(b"".join(batch))
                batch.clear()
            if written >= target_bytes:
                break

    return lines


def _open_for_writing(path: str) -> io.BufferedIOBase:
    if path.endswith(".gz"):
        return gzip.open(path, "wb", compresslevel=3)
    return open(path, "wb")


def _startup_lines() -> Iterator[bytes]:
    for message in ("Started server process", "Application startup complete"):
        line = {
            "timestamp": "2026-12-03T14:00:00.000000Z",
            "level": "info",
            "logger": "uvicorn.error",
            "event": message,
        }
        yield orjson.dumps(line) + b"\n"
