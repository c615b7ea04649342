"""Per-request timing: thresholds per layer, the layer timeline, aggregates.

Every duration comes from ``time.perf_counter()``. Wall-clock times in the
timeline are derived from the request's start time plus the monotonic
offset, so a clock step during a request moves no duration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from . import _state
from ._render import iso_at
from .config import DEFAULT_THRESHOLDS

__all__ = ["PerformanceTracker"]

_MAX_OPERATIONS = 500
_MAX_VIOLATIONS = 50


class _LayerTiming:
    """One layer's share of a request: outermost spans, merged."""

    __slots__ = ("count", "depth", "first", "last", "opened", "slow", "spent")

    def __init__(self, start: float) -> None:
        self.first = start
        self.last = start
        self.opened = start
        self.depth = 0
        self.spent = 0.0
        self.count = 0
        self.slow = False


class PerformanceTracker:
    """Compare operation durations with per-layer thresholds.

    Thresholds default to api 0.1 s, service 0.5 s, core 0.3 s and
    infrastructure 1.0 s, or what ``LOG_PERF_THRESHOLD_<LAYER>`` and
    :func:`stratalog.configure` set. A layer's time spent counts
    overlapping operations of that layer once.
    """

    __slots__ = ("_layers", "_operations", "thresholds", "violations")

    def __init__(self, thresholds: Mapping[str, float] | None = None) -> None:
        if thresholds is None:
            thresholds = _state.config().thresholds
        # Shared, never written: the configuration's mapping is read-only.
        self.thresholds: Mapping[str, float] = thresholds
        self.violations: list[dict[str, Any]] = []
        self._layers: dict[str, _LayerTiming] = {}
        self._operations: dict[str, list[float]] = {}

    def threshold(self, layer: str) -> float:
        """Return the threshold of *layer* in seconds."""
        return self.thresholds.get(layer, DEFAULT_THRESHOLDS["infrastructure"])

    def record_timing(
        self, layer: str, operation: str, duration: float
    ) -> tuple[bool, float]:
        """Record one operation; return (exceeds threshold, threshold)."""
        threshold = self.thresholds.get(layer)
        if threshold is None:
            threshold = self.threshold(layer)
        exceeds = duration > threshold
        self._aggregate(f"{layer}.{operation}", duration)
        if exceeds:
            timing = self._layers.get(layer)
            if timing is not None:
                timing.slow = True
            if len(self.violations) < _MAX_VIOLATIONS:
                self.violations.append(
                    {
                        "layer": layer,
                        "operation": operation,
                        "duration_ms": round(duration * 1000, 3),
                        "threshold_ms": round(threshold * 1000, 3),
                    }
                )
        return exceeds, threshold

    def _aggregate(self, key: str, duration: float) -> None:
        entry = self._operations.get(key)
        if entry is None:
            if len(self._operations) >= _MAX_OPERATIONS:
                key = "other"
                entry = self._operations.get(key)
            if entry is None:
                entry = self._operations[key] = [0, 0.0, 0.0]
        entry[0] += 1
        entry[1] += duration
        if duration > entry[2]:
            entry[2] = duration

    def enter(self, layer: str, now: float) -> None:
        """Note that an operation of *layer* started at *now* (perf)."""
        timing = self._layers.get(layer)
        if timing is None:
            timing = self._layers[layer] = _LayerTiming(now)
        if timing.depth == 0:
            timing.opened = now
        timing.depth += 1
        timing.count += 1

    def leave(self, layer: str, now: float) -> None:
        """Note that an operation of *layer* ended at *now* (perf)."""
        timing = self._layers.get(layer)
        if timing is None or timing.depth == 0:
            return
        timing.depth -= 1
        if now > timing.last:
            timing.last = now
        if timing.depth == 0:
            timing.spent += now - timing.opened

    def timeline(
        self, start: dt.datetime, start_perf: float, end_perf: float
    ) -> dict[str, Any]:
        """Return the request timeline: per layer start, end, duration."""

        offset = start.timestamp() - start_perf

        def wall(perf: float) -> str:
            return iso_at(perf + offset)

        timeline: dict[str, Any] = {"start": wall(start_perf)}
        for layer, timing in self._layers.items():
            spent = timing.spent
            if timing.depth:
                spent += end_perf - timing.opened
            timeline[f"{layer}_layer"] = {
                "start": wall(timing.first),
                "end": wall(max(timing.last, timing.first)),
                "duration": round(spent, 6),
                "count": timing.count,
                "threshold": self.threshold(layer),
                "violation": timing.slow,
            }
        timeline["end"] = wall(end_perf)
        timeline["total_duration"] = round(end_perf - start_perf, 6)
        return timeline

    def operations(self) -> dict[str, dict[str, float]]:
        """Return count, total and max milliseconds per operation."""
        return {
            key: {
                "count": int(count),
                "total_ms": round(total * 1000, 3),
                "max_ms": round(peak * 1000, 3),
            }
            for key, (count, total, peak) in self._operations.items()
        }
