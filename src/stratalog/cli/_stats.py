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
        self._maximum = float("-inf")
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

    def _replace(self, value: float) -> None:
        if self._rng is None:
            # Switching to sampling: the running figures start from the
            # samples kept so far, which were every sample until now.
            self._rng = random.Random(self._limit)
            self._total = sum(self._samples)
            self._maximum = max(self._samples, default=float("-inf"))
        self._total += value
        self._maximum = max(self._maximum, value)
        slot = self._rng.randrange(self.count)
        if slot < self._limit:
            self._samples[slot] = value
