"""Interleaved timing: every contender runs one batch per round, in turn.

Design note. pyperf runs one benchmark to the end before starting the
next, so a machine that slows down halfway (another engineer's test run,
a noisy neighbour) penalises whichever contender ran then. Here every
round runs one batch of each contender, in a fresh random order, so drift
spreads over all of them alike, and a ratio is taken per round between
batches that ran seconds apart. Each batch is timed on two clocks: the
process CPU clock (every thread of the process, so a background writer
thread's work is charged to the contender that caused it) and the wall
clock. Figures are judged on CPU time: the machines are shared.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Contender",
    "Sample",
    "Stopwatch",
    "interleave",
    "ratio",
    "summarise",
]


@dataclass
class Contender:
    """One thing to time: *run(n)* performs *n* calls.

    *before* and *after* run untimed around every batch (opening and
    closing a request, for instance); *run* must leave nothing pending
    that a later batch would pay for, so a buffered writer flushes
    inside it. A *self_timed* run times itself, leaving out what it
    must do between calls, and returns ``(cpu_ns, wall_ns)``.
    """

    name: str
    run: Callable[[int], Any]
    before: Callable[[], Any] | None = None
    after: Callable[[], Any] | None = None
    self_timed: bool = False
    batch: int = 0
    cpu_ns: list[float] = field(default_factory=list)
    wall_ns: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """Per-call times of one contender, one value per round (µs)."""

    cpu: list[float]
    wall: list[float]
    batch: int


class Stopwatch:
    """Accumulate CPU and wall time over the stretches it is running."""

    __slots__ = ("_cpu0", "_wall0", "cpu", "wall")

    def __init__(self) -> None:
        self.cpu = self.wall = self._cpu0 = self._wall0 = 0

    def start(self) -> None:
        """Start a stretch."""
        self._cpu0 = time.process_time_ns()
        self._wall0 = time.perf_counter_ns()

    def stop(self) -> None:
        """End the stretch and add it."""
        wall = time.perf_counter_ns()
        self.cpu += time.process_time_ns() - self._cpu0
        self.wall += wall - self._wall0

    def totals(self) -> tuple[int, int]:
        """Return ``(cpu_ns, wall_ns)`` so far."""
        return self.cpu, self.wall


def _timed(contender: Contender, n: int) -> tuple[int, int]:
    if contender.before is not None:
        contender.before()
    if contender.self_timed:
        cpu, wall = contender.run(n)
        if contender.after is not None:
            contender.after()
        return cpu, wall
    cpu0 = time.process_time_ns()
    wall0 = time.perf_counter_ns()
    contender.run(n)
    wall1 = time.perf_counter_ns()
    cpu1 = time.process_time_ns()
    if contender.after is not None:
        contender.after()
    return cpu1 - cpu0, wall1 - wall0


def _calibrate(contender: Contender, target_s: float, cap: int) -> int:
    n = 16
    while True:
        _, wall = _timed(contender, n)
        if wall >= 5_000_000 or n >= cap:
            break
        n = min(cap, n * 4)
    per_call = max(wall / n, 1.0)
    return max(16, min(cap, int(target_s * 1e9 / per_call)))


def interleave(
    contenders: list[Contender],
    rounds: int,
    target_s: float = 0.05,
    cap: int = 200_000,
    seed: int = 1,
) -> dict[str, Sample]:
    """Run *rounds* rounds of one batch per contender; return per-call µs.

    Batch sizes are calibrated first so that each batch takes about
    *target_s* seconds of wall time (at most *cap* calls).
    """
    order = random.Random(seed)
    for contender in contenders:
        contender.batch = contender.batch or _calibrate(
            contender, target_s, cap
        )
        _timed(contender, contender.batch)
    for _ in range(rounds):
        gc.collect()
        turn = list(contenders)
        order.shuffle(turn)
        for contender in turn:
            cpu, wall = _timed(contender, contender.batch)
            contender.cpu_ns.append(cpu / contender.batch)
            contender.wall_ns.append(wall / contender.batch)
    return {
        c.name: Sample(
            cpu=[v / 1000 for v in c.cpu_ns],
            wall=[v / 1000 for v in c.wall_ns],
            batch=c.batch,
        )
        for c in contenders
    }


def summarise(values: list[float]) -> dict[str, float]:
    """Median, quartiles, standard deviation and minimum of *values*."""
    if not values:
        return {}
    if len(values) == 1:
        only = values[0]
        return {"median": only, "q1": only, "q3": only, "stdev": 0.0}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {
        "median": median,
        "q1": q1,
        "q3": q3,
        "stdev": statistics.stdev(values),
        "min": min(values),
    }


def ratio(numerator: list[float], denominator: list[float]) -> dict[str, Any]:
    """Summarise per-round ratios of two interleaved series.

    Rounds pair up when both series have the same length; otherwise the
    ratio of medians stands alone.
    """
    if not numerator or not denominator:
        return {}
    if len(numerator) == len(denominator):
        paired = [
            a / b for a, b in zip(numerator, denominator, strict=True) if b
        ]
        result = summarise(paired)
        result["paired"] = True
        return result
    median = statistics.median(numerator) / statistics.median(denominator)
    return {"median": median, "paired": False}
