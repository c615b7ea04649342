"""Latency samples and nearest-rank percentiles in bounded memory.

Percentiles use the nearest-rank definition: the p-th percentile of n
sorted samples is the sample at 1-based rank ``ceil(p * n / 100)``, always
a value that was observed, never an interpolation.

A series keeps every sample in an ``array('d')`` (8 bytes per sample), so
percentiles are exact up to ``EXACT_LIMIT`` samples, which covers a series
from a log of tens of gigabytes in this schema. Past the limit the array
becomes a uniform reservoir of ``EXACT_LIMIT`` samples (Vitter's algorithm
R with a fixed seed). A percentile estimated from a uniform sample of k
values sits, with 99.7 % confidence, within ``3 * sqrt(q * (1 - q) / k)``
in rank of the true one: for k = 2**21 and q = 0.99 the estimate lies
between the true p98.98 and p99.02. Count, mean and maximum stay exact.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterable

__all__ = ["EXACT_LIMIT", "PERCENTILES", "LatencySeries", "nearest_rank"]

EXACT_LIMIT = 1 << 21
PERCENTILES = (50, 95, 99)


def nearest_rank(ordered: list[float], percent: int) -> float:
    """Return the nearest-rank *percent* percentile of sorted samples."""
    if not ordered:
        raise ValueError("no samples: a percentile needs at least one")
    rank = -(-percent * len(ordered) // 100)

    return ordered[max(rank, 1) - 1]


class LatencySeries:
    """Collect durations in milliseconds and summarise their distribution.

    Not thread-safe: one series belongs to one reader.
    """

    __slots__ = ("_limit", "_maximum", "_rng", "_samples", "_total", "count")

    def __init__(self, limit: int = EXACT_LIMIT) -> None:
        self._samples = array("d")
        self._limit = limit
        self._rng: random.Random | None = None
        self._total = 0.0
        self._maximum = -math.inf
        self.count = 0

    @property
    def exact(self) -> bool:
        """Whether every sample is still kept."""
        return self.count <= self._limit

    def add(self, value: float) -> None:
        """Record one duration."""
        self.count += 1
        if self.count <= self._limit:
            self._samples.append(value)
        else:
            self._replace(value)

    def extend(self, values: Iterable[float]) -> None:
        """Record several durations."""
        for value in values:
            self.add(value)

    def merge(self, other: LatencySeries) -> None:
        """Absorb *other*, the series of another part of the same input.

        Past the limit the merged reservoir is stratified: each side keeps
        a share of the slots proportional to the samples it stands for.
        """
        count = self.count + other.count
        if count <= self._limit:
            self._samples.extend(other._samples)
            self.count = count
            return
        total = self._running()[0] + other._running()[0]
        maximum = max(self._running()[1], other._running()[1])
        rng = self._rng or random.Random(count)
        mine = sum(
            rng.random() * count < self.count for _ in range(self._limit)
        )
        mine = min(mine, len(self._samples))
        theirs = min(self._limit - mine, len(other._samples))
        kept = rng.sample(list(self._samples), mine)
        kept += rng.sample(list(other._samples), theirs)
        self._samples = array("d", kept)
        self._rng, self._total, self._maximum = rng, total, maximum
        self.count = count

    def summary(self) -> dict[str, float | int | bool | None]:
        """Return count, mean, maximum and the nearest-rank percentiles."""
        result: dict[str, float | int | bool | None] = {"count": self.count}
        if not self.count:
            result.update({"mean": None, "max": None, "exact": True})
            result.update({f"p{p}": None for p in PERCENTILES})
            return result
        ordered = sorted(self._samples)
        total, maximum = self._totals(ordered)
        result["mean"] = total / self.count
        for percent in PERCENTILES:
            result[f"p{percent}"] = nearest_rank(ordered, percent)
        result["max"] = maximum
        result["exact"] = self.exact

        return result

    def _totals(self, ordered: list[float]) -> tuple[float, float]:
        if self.exact:
            return sum(ordered), ordered[-1]
        return self._total, self._maximum

    def _running(self) -> tuple[float, float]:
        if self._rng is None:
            return sum(self._samples), max(self._samples, default=-math.inf)
        return self._total, self._maximum

    def _replace(self, value: float) -> None:
        if self._rng is None:
            # Switching to sampling: the running figures start from the
            # samples kept so far, which were every sample until now.
            self._total, self._maximum = self._running()
            self._rng = random.Random(self._limit)
        self._total += value
        self._maximum = max(self._maximum, value)
        slot = self._rng.randrange(self.count)
        if slot < self._limit:
            self._samples[slot] = value
