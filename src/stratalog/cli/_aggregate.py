"""Aggregate a stream of log lines into the figures of ``stratalog report``.

Most lines of a service log cannot change the report (boundaries,
external calls, metrics, business events). A bytes search for the three
event families that matter runs on every raw line, and only lines that
contain one are parsed; the parsed event name then decides. Lines that are
skipped are checked for the shape of a JSON object (braces at both ends),
so torn or foreign lines are still counted as malformed without parsing.
An event name written with ``\\u`` escapes would escape the search; no
JSON encoder in use writes ASCII that way.

Terminal operation lines (completed, slow, failed, cancelled) each end one
operation, so each contributes its ``duration_ms`` once to its layer.
"""

from __future__ import annotations

import heapq
import re
from typing import Any

import orjson

from stratalog.cli._cascade import OTHER, ErrorTracker, bump
from stratalog.cli._stats import EXACT_LIMIT, LatencySeries

__all__ = ["ReportAggregator", "RouteStats", "Violation"]

_MARKER = re.compile(rb'"(?:request\.completed"|operation\.|circuit\.)')
_TERMINAL = frozenset(
    (
        "operation.completed",
        "operation.slow",
        "operation.failed",
        "operation.cancelled",
    )
)
_NUMBER = (int, float)
ROUTE_LIMIT = 2_000
HOLD = 10_000
_NEW: Any = object()
UNKNOWN = "(unknown)"


class RouteStats:
    """Requests, server errors and latencies of one route."""

    __slots__ = ("errors", "latency", "requests")

    def __init__(self, limit: int) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = LatencySeries(limit)


class Violation:
    """Slow lines and summary entries of one operation."""

    __slots__ = ("in_summaries", "max_ms", "slow_lines", "threshold_ms")

    def __init__(self) -> None:
        self.slow_lines = 0
        self.in_summaries = 0
        self.max_ms = 0.0
        self.threshold_ms: float | None = None

    def record(self, duration: object, threshold: object) -> None:
        """Note one violation's duration and the threshold it crossed."""
        if isinstance(duration, int | float):
            self.max_ms = max(self.max_ms, float(duration))
        if isinstance(threshold, int | float):
            self.threshold_ms = float(threshold)


class ReportAggregator:
    """Consume blocks of NDJSON lines and keep the report's running state.

    Memory is bounded: latency series are capped (see ``_stats``), routes,
    operations and keys are folded into an ``(other)`` bucket past fixed
    limits, and open errors are settled past ``PENDING_LIMIT``.
    """

    def __init__(
        self, top: int = 10, limit: int = EXACT_LIMIT, part: int = 0
    ) -> None:
        self.top = top
        self.limit = limit
        # Ranks of requests stay unique across parts read in parallel.
        self._order = part << 40
        self.lines = 0
        self.malformed: dict[str, int] = {}
        self.requests = 0
        self.server_errors = 0
        self.status_classes: dict[int, int] = {}
        self.outcomes: dict[str, int] = {}
        self.first: str | None = None
        self.last: str | None = None
        self.latency = LatencySeries(limit)
        self.routes: dict[str, RouteStats] = {}
        self.timeline_layers: dict[str, LatencySeries] = {}
        self.operation_layers: dict[str, LatencySeries] = {}
        self._timeline_keys: dict[str, LatencySeries | None] = {}
        self.violations: dict[tuple[str, str], Violation] = {}
        self.errors = ErrorTracker(hold=HOLD if part else 0)
        self.suppressed = 0
        self.written = 0
        self.suppressing_requests = 0
        self.dedup_keys: dict[str, int] = {}
        self.breakers: dict[str, dict[str, Any]] = {}
        self.slowest: list[tuple[float, int, dict[str, Any]]] = []

    def feed(self, block: bytes) -> None:
        """Account every line of *block* (lines split at ``\\n``)."""
        lines = block.split(b"\n")
        if not lines[-1]:
            lines.pop()
        self.lines += len(lines)
        search = _MARKER.search
        loads = orjson.loads
        for line in lines:
            found = search(line)
            if found is None:
                if line[:1] != b"{" or line[-1:] != b"}":
                    self._check_shape(line)
                continue
            # Debug lines of operations starting say nothing the terminal
            # line will not; skip them unless another marker follows.
            if line.startswith(b'started"', found.end()) and (
                search(line, found.end()) is None
            ):
                continue
            try:
                event = loads(line)
            except orjson.JSONDecodeError:
                bump(self.malformed, "invalid JSON")
                continue
            if type(event) is not dict:
                bump(self.malformed, "not a JSON object")
                continue
            try:
                self._dispatch(event)
            except (TypeError, ValueError, AttributeError):
                bump(self.malformed, "unexpected field types")

    def _dispatch(self, event: dict[str, Any]) -> None:
        name = event.get("event")
        if name in _TERMINAL:
            self._on_operation(name, event)
        elif name == "request.completed":
            self._on_request(event)
        elif type(name) is str and name.startswith("circuit."):
            self._on_circuit(name, event)

    def finish(self) -> None:
        """Settle state that waits for lines that may never come."""
        self.errors.finish()

    def _check_shape(self, line: bytes) -> None:
        stripped = line.strip()
        if not stripped:
            self.lines -= 1
        elif stripped[:1] != b"{":
            bump(self.malformed, "not a JSON object")
        elif stripped[-1:] != b"}":
            bump(self.malformed, "invalid JSON")

    def _on_request(self, event: dict[str, Any]) -> None:
        self.requests += 1
        route = event.get("route") or event.get("path") or UNKNOWN
        stats = self.route(route if type(route) is str else str(route))
        stats.requests += 1
        if self._is_server_error(event):
            stats.errors += 1
            self.server_errors += 1
        duration: Any = event.get("duration_ms")
        if type(duration) in _NUMBER:
            self.latency.add(duration)
            stats.latency.add(duration)
            self._rank(duration, event, route)
        self._span(event.get("timestamp"))
        self._summary_parts(event)

    def _is_server_error(self, event: dict[str, Any]) -> bool:
        status = event.get("status")
        outcome = event.get("outcome")
        if type(status) is int:
            klass = status // 100
            self.status_classes[klass] = self.status_classes.get(klass, 0) + 1
        if type(outcome) is str:
            bump(self.outcomes, outcome)
        return outcome == "error" or (type(status) is int and status >= 500)

    def _summary_parts(self, event: dict[str, Any]) -> None:
        timeline = event.get("request_timeline")
        if type(timeline) is dict:
            self._timeline(timeline)
        violations = event.get("performance_violations")
        if violations and type(violations) is list:
            self._summary_violations(violations)
        errors = event.get("errors")
        if errors and type(errors) is list:
            for error in errors:
                if type(error) is dict:
                    self.errors.on_summary_error(error)
        self._dedup(event)

    def _timeline(self, timeline: dict[str, Any]) -> None:
        known = self._timeline_keys
        for key, span in timeline.items():
            series = known.get(key, _NEW)
            if series is _NEW:
                series = self._timeline_key(key)
            if series is not None and type(span) is dict:
                duration: Any = span.get("duration")
                if type(duration) in _NUMBER:
                    series.add(duration * 1000.0)

    def _timeline_key(self, key: str) -> LatencySeries | None:
        series = None
        if key.endswith("_layer"):
            series = self.series(self.timeline_layers, key[: -len("_layer")])
        if len(self._timeline_keys) < ROUTE_LIMIT:
            self._timeline_keys[key] = series
        return series

    def _summary_violations(self, violations: list[Any]) -> None:
        for item in violations:
            if type(item) is dict:
                found = self.violation(
                    item.get("layer"), item.get("operation")
                )
                found.in_summaries += 1
                found.record(item.get("duration_ms"), item.get("threshold_ms"))

    def _dedup(self, event: dict[str, Any]) -> None:
        counts = event.get("counts")
        dedup = event.get("dedup")
        suppressed = counts.get("suppressed") if type(counts) is dict else None
        if type(suppressed) is not int and type(dedup) is dict:
            suppressed = dedup.get("suppressed")
        if type(counts) is dict and type(counts.get("lines")) is int:
            self.written += counts["lines"]
        if type(suppressed) is not int or suppressed <= 0:
            return
        self.suppressed += suppressed
        self.suppressing_requests += 1
        keys = dedup.get("keys") if type(dedup) is dict else None
        if type(keys) is dict:
            for key, entry in keys.items():
                count = entry.get("suppressed") if type(entry) is dict else 0
                if type(count) is int and count > 0:
                    bump(self.dedup_keys, key, count)

    def _on_operation(self, name: str, event: dict[str, Any]) -> None:
        layer = event.get("layer")
        if type(layer) is not str:
            layer = UNKNOWN
        duration: Any = event.get("duration_ms")
        if type(duration) in _NUMBER:
            layers = self.operation_layers
            series = layers.get(layer) or self.series(layers, layer)
            series.add(duration)
        if name == "operation.slow":
            found = self.violation(layer, event.get("operation"))
            found.slow_lines += 1
            found.record(duration, event.get("threshold_ms"))
        elif name == "operation.failed":
            self.errors.on_failed(event)

    def _on_circuit(self, name: str, event: dict[str, Any]) -> None:
        client = event.get("client")
        client = client if type(client) is str else UNKNOWN
        if client not in self.breakers and len(self.breakers) >= ROUTE_LIMIT:
            client = OTHER
        state = self.breakers.setdefault(client, {"transitions": {}})
        bump(state["transitions"], name[len("circuit.") :])
        state["last"] = name
        state["last_at"] = event.get("timestamp")

    def route(self, route: str) -> RouteStats:
        """Return the figures of *route*, or of OTHER past the limit."""
        stats = self.routes.get(route)
        if stats is None:
            if len(self.routes) >= ROUTE_LIMIT:
                route = OTHER
            stats = self.routes.get(route)
            if stats is None:
                stats = self.routes[route] = RouteStats(self.limit)
        return stats

    def series(
        self, series: dict[str, LatencySeries], key: str
    ) -> LatencySeries:
        """Return the series of *key* in *series*, made on first use."""
        if len(series) >= ROUTE_LIMIT:
            key = OTHER
        found = series.get(key)
        if found is None:
            found = series[key] = LatencySeries(self.limit)
        return found

    def violation(self, layer: object, operation: object) -> Violation:
        """Return the threshold violations of one operation of a layer."""
        key = (
            layer if type(layer) is str else UNKNOWN,
            operation if type(operation) is str else UNKNOWN,
        )
        found = self.violations.get(key)
        if found is None:
            if len(self.violations) >= ROUTE_LIMIT:
                key = (OTHER, OTHER)
            found = self.violations.setdefault(key, Violation())
        return found

    def _rank(
        self, duration: float, event: dict[str, Any], route: Any
    ) -> None:
        slowest = self.slowest
        full = len(slowest) >= self.top
        if full and (not slowest or duration <= slowest[0][0]):
            return
        brief = _request_brief(event, route)
        item = (duration, self._order + self.requests, brief)
        if full:
            heapq.heapreplace(slowest, item)
        else:
            heapq.heappush(slowest, item)

    def _span(self, timestamp: object) -> None:
        if type(timestamp) is not str:
            return
        if self.first is None or timestamp < self.first:
            self.first = timestamp
        if self.last is None or timestamp > self.last:
            self.last = timestamp


def _request_brief(event: dict[str, Any], route: Any) -> dict[str, Any]:
    return {
        "correlation_id": event.get("correlation_id"),
        "method": event.get("method"),
        "route": route,
        "path": event.get("path"),
        "status": event.get("status"),
        "duration_ms": event.get("duration_ms"),
        "timestamp": event.get("timestamp"),
    }
