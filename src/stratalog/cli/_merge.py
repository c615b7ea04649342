"""Combine the aggregations of consecutive parts of the input."""

from __future__ import annotations

import heapq

from stratalog.cli._aggregate import ReportAggregator
from stratalog.cli._cascade import bump

__all__ = ["merge"]


def merge(total: ReportAggregator, part: ReportAggregator) -> None:
    """Add *part*, the aggregation of the input right after *total*'s."""
    _merge_counts(total, part)
    _merge_series(total, part)
    _merge_violations(total, part)
    total.errors.merge(part.errors)
    _merge_breakers(total, part)
    ranked = heapq.nlargest(total.top, [*total.slowest, *part.slowest])
    heapq.heapify(ranked)
    total.slowest = ranked


def _merge_counts(total: ReportAggregator, part: ReportAggregator) -> None:
    total.lines += part.lines
    total.requests += part.requests
    total.server_errors += part.server_errors
    total.suppressed += part.suppressed
    total.written += part.written
    total.suppressing_requests += part.suppressing_requests
    for klass, count in part.status_classes.items():
        total.status_classes[klass] = (
            total.status_classes.get(klass, 0) + count
        )
    for counter, extra in (
        (total.malformed, part.malformed),
        (total.outcomes, part.outcomes),
        (total.dedup_keys, part.dedup_keys),
    ):
        for key, count in extra.items():
            bump(counter, key, count)
    firsts = [stamp for stamp in (total.first, part.first) if stamp]
    lasts = [stamp for stamp in (total.last, part.last) if stamp]
    total.first = min(firsts, default=None)
    total.last = max(lasts, default=None)


def _merge_series(total: ReportAggregator, part: ReportAggregator) -> None:
    total.latency.merge(part.latency)
    for route, stats in part.routes.items():
        into = total.route(route)
        into.requests += stats.requests
        into.errors += stats.errors
        into.latency.merge(stats.latency)
    for mine, theirs in (
        (total.timeline_layers, part.timeline_layers),
        (total.operation_layers, part.operation_layers),
    ):
        for layer, series in theirs.items():
            total.series(mine, layer).merge(series)


def _merge_violations(total: ReportAggregator, part: ReportAggregator) -> None:
    for (layer, operation), item in part.violations.items():
        into = total.violation(layer, operation)
        into.slow_lines += item.slow_lines
        into.in_summaries += item.in_summaries
        into.max_ms = max(into.max_ms, item.max_ms)
        into.threshold_ms = item.threshold_ms or into.threshold_ms


def _merge_breakers(total: ReportAggregator, part: ReportAggregator) -> None:
    for client, state in part.breakers.items():
        into = total.breakers.setdefault(client, {"transitions": {}})
        for name, count in state["transitions"].items():
            bump(into["transitions"], name, count)
        if state.get("last"):
            into["last"] = state["last"]
            into["last_at"] = state.get("last_at")
