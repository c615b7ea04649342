"""Turn a finished aggregation into the report's JSON document."""

from __future__ import annotations

from typing import Any

from stratalog.cli._aggregate import ReportAggregator
from stratalog.cli._cascade import bump
from stratalog.cli._stats import EXACT_LIMIT, LatencySeries

__all__ = ["LAYER_ORDER", "build_document"]

LAYER_ORDER = ("api", "service", "core", "infrastructure")
PERCENTILE_METHOD = (
    "nearest-rank: the sample at rank ceil(p/100 * n) of n sorted samples; "
    f"exact up to {EXACT_LIMIT} samples per series, a uniform reservoir of "
    "that many samples beyond"
)


def build_document(
    aggregator: ReportAggregator, inputs: dict[str, Any]
) -> dict[str, Any]:
    """Return every figure of the report as JSON-ready data."""
    malformed = dict(aggregator.malformed)
    if inputs.get("oversized_lines"):
        bump(malformed, "line too long", inputs["oversized_lines"])
    return {
        "input": {
            **inputs,
            "lines": aggregator.lines,
            "malformed": sum(malformed.values()),
            "malformed_by_reason": malformed,
        },
        "percentile_method": PERCENTILE_METHOD,
        "requests": _requests(aggregator),
        "routes": _routes(aggregator),
        "layers": _layers(aggregator),
        "violations": _violations(aggregator),
        "errors": _errors(aggregator),
        "dedup": _dedup(aggregator),
        "breakers": _breakers(aggregator),
        "slowest": [
            brief for _, _, brief in sorted(aggregator.slowest, reverse=True)
        ],
    }


def _requests(aggregator: ReportAggregator) -> dict[str, Any]:
    count = aggregator.requests
    classes = sorted(aggregator.status_classes.items())
    return {
        "count": count,
        "server_errors": aggregator.server_errors,
        "error_rate": aggregator.server_errors / count if count else None,
        "error_rule": 'status >= 500 or outcome == "error"',
        "status_classes": {f"{klass}xx": n for klass, n in classes},
        "outcomes": dict(sorted(aggregator.outcomes.items())),
        "first": aggregator.first,
        "last": aggregator.last,
        "latency_ms": aggregator.latency.summary(),
    }


def _routes(aggregator: ReportAggregator) -> list[dict[str, Any]]:
    routes = sorted(
        aggregator.routes.items(),
        key=lambda item: (-item[1].requests, item[0]),
    )
    return [
        {
            "route": route,
            "requests": stats.requests,
            "server_errors": stats.errors,
            "error_rate": stats.errors / stats.requests,
            "latency_ms": stats.latency.summary(),
        }
        for route, stats in routes
    ]


def _layers(aggregator: ReportAggregator) -> list[dict[str, Any]]:
    timeline = aggregator.timeline_layers
    operations = aggregator.operation_layers
    names = sorted(
        set(timeline) | set(operations),
        key=lambda name: (
            LAYER_ORDER.index(name)
            if name in LAYER_ORDER
            else len(LAYER_ORDER),
            name,
        ),
    )
    empty = LatencySeries()
    return [
        {
            "layer": name,
            "timeline_ms": timeline.get(name, empty).summary(),
            "operations_ms": operations.get(name, empty).summary(),
        }
        for name in names
    ]


def _violations(aggregator: ReportAggregator) -> list[dict[str, Any]]:
    ranked = sorted(
        aggregator.violations.items(),
        key=lambda item: (
            -max(item[1].slow_lines, item[1].in_summaries),
            item[0],
        ),
    )
    return [
        {
            "layer": layer,
            "operation": operation,
            "slow_lines": item.slow_lines,
            "in_summaries": item.in_summaries,
            "max_ms": item.max_ms,
            "threshold_ms": item.threshold_ms,
        }
        for (layer, operation), item in ranked[: aggregator.top]
    ]


def _errors(aggregator: ReportAggregator) -> dict[str, Any]:
    tracker = aggregator.errors
    by_origin = [
        {
            "origin_layer": layer,
            "errors": count,
            "cascade_lines_avoided": tracker.avoided_by_origin.get(layer, 0),
        }
        for layer, count in sorted(
            tracker.by_origin.items(), key=lambda item: (-item[1], item[0])
        )
    ]
    types = sorted(tracker.types.items(), key=lambda item: (-item[1], item[0]))
    return {
        "distinct": sum(tracker.by_origin.values()),
        "cascade_lines_avoided": sum(tracker.avoided_by_origin.values()),
        "cascade_rule": (
            "per distinct error_id: max(operation.failed lines with "
            "propagated=true, len(summary errors[].layers) - 1)"
        ),
        "by_origin": by_origin,
        "types": [
            {"type": kind, "errors": count}
            for kind, count in types[: aggregator.top]
        ],
    }


def _dedup(aggregator: ReportAggregator) -> dict[str, Any]:
    suppressed = aggregator.suppressed
    written = aggregator.written
    keys = sorted(
        aggregator.dedup_keys.items(), key=lambda item: (-item[1], item[0])
    )
    return {
        "suppressed": suppressed,
        "lines_written": written,
        "saved_share": suppressed / (suppressed + written)
        if suppressed + written
        else None,
        "requests_with_suppression": aggregator.suppressing_requests,
        "keys": [
            {"key": key, "suppressed": count}
            for key, count in keys[: aggregator.top]
        ],
    }


def _breakers(aggregator: ReportAggregator) -> list[dict[str, Any]]:
    return [
        {
            "client": client,
            "transitions": dict(sorted(state["transitions"].items())),
            "last": state.get("last"),
            "last_at": state.get("last_at"),
        }
        for client, state in sorted(aggregator.breakers.items())
    ]
