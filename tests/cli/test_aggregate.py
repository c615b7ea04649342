"""Tests for stratalog.cli._aggregate, also on lines the library renders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from stratalog.cli import main
from stratalog.cli._aggregate import ReportAggregator
from stratalog.coordinator import LoggingCoordinator
from stratalog.logger import UnifiedLogger, get_unified_logger
from stratalog.testing import MemorySink

from .logs import encode, line, operation, request


def _aggregate(*records: dict | bytes) -> ReportAggregator:
    aggregator = ReportAggregator()
    aggregator.feed(encode(records))
    aggregator.finish()
    return aggregator


def test_started_lines_are_skipped_unless_another_marker_follows() -> None:
    """Debug start lines cost no parse, yet never hide a real event."""
    hidden = orjson.dumps(
        {"note": "operation.started", **request("r1", "/a", 5.0)}
    )
    aggregator = _aggregate(
        line("operation.started", 1, operation="q"),
        hidden + b"\n",
    )

    assert aggregator.lines == 2
    assert aggregator.requests == 1
    assert not aggregator.malformed


def test_markers_inside_other_events_change_nothing() -> None:
    """A field mentioning an event name does not make a line that event."""
    aggregator = _aggregate(
        line("boundary.inbound", 1, note='"request.completed" circuit.x'),
        line("metric.recorded", 2, metric="operation.completed"),
    )

    assert aggregator.requests == 0
    assert not aggregator.operation_layers
    assert not aggregator.malformed


@pytest.mark.parametrize(
    "duration",
    [
        pytest.param(True, id="bool"),
        pytest.param("12", id="string"),
        pytest.param(None, id="null"),
    ],
)
def test_durations_that_are_not_numbers_are_ignored(duration: object) -> None:
    """The request counts, but its duration joins no percentile."""
    completed = request("r", "/a", 1.0, request_timeline={})
    finished = operation("operation.completed", "core", "q", 1.0)
    completed["duration_ms"] = finished["duration_ms"] = duration
    aggregator = _aggregate(completed, finished)

    assert aggregator.requests == 1
    assert aggregator.latency.count == 0
    assert "core" not in aggregator.operation_layers


def test_route_falls_back_to_path() -> None:
    """A summary without route is grouped by its path."""
    completed = request("r", "/a", 1.0, path="/p/1")
    del completed["route"]
    aggregator = _aggregate(completed)

    assert list(aggregator.routes) == ["/p/1"]


def _fail_deep(loggers: list[UnifiedLogger]) -> None:
    with (
        loggers[0].operation("handle"),
        loggers[1].operation("work"),
        loggers[2].operation("db.query"),
    ):
        raise RuntimeError("boom")


def test_lines_rendered_by_the_library_are_understood(
    sink: MemorySink, write_log: Callable[..., Path]
) -> None:
    """Report and trace read the library's own operation and summary lines."""
    coordinator = LoggingCoordinator()
    context = coordinator.start_request(correlation_id="lib-1")
    layers = ("api", "service", "infrastructure")
    loggers = [
        get_unified_logger(f"tests.cli.{name}", name) for name in layers
    ]
    with pytest.raises(RuntimeError):
        _fail_deep(loggers)
    summary = coordinator.end_request(context)
    summary.update(method="GET", route="/r", path="/r", status=500)
    summary.update(outcome="error", correlation_id="lib-1")
    completed = line("request.completed", 0, **summary)
    path = write_log([*sink.lines, completed])

    report = orjson.loads(
        CliRunner().invoke(main, ["report", "--json", str(path)]).stdout
    )
    traced = CliRunner().invoke(main, ["trace", "lib-1", str(path)])

    assert report["input"]["malformed"] == 0
    assert report["requests"]["server_errors"] == 1
    assert report["errors"]["by_origin"] == [
        {
            "origin_layer": "infrastructure",
            "errors": 1,
            "cascade_lines_avoided": 2,
        }
    ]
    layers_seen = {item["layer"] for item in report["layers"]}
    assert layers_seen == set(layers)
    assert traced.exit_code == 0
    assert "RuntimeError: boom" in traced.stdout
    assert "infrastructure -> service -> api" in traced.stdout
