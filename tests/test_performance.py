"""Per-request timing: thresholds, the layer timeline, operation totals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratalog
from stratalog.config import DEFAULT_THRESHOLDS, LoggingConfig
from stratalog.coordinator import LoggingCoordinator
from stratalog.performance import PerformanceTracker
from stratalog.testing import MemorySink

START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _timeline(tracker: PerformanceTracker, end: float) -> dict[str, Any]:
    return tracker.timeline(START, 0.0, end)


def test_default_thresholds() -> None:
    """api 0.1 s, service 0.5 s, core 0.3 s, infrastructure 1.0 s."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    assert tracker.thresholds == {
        "api": 0.1,
        "service": 0.5,
        "core": 0.3,
        "infrastructure": 1.0,
    }


def test_tracker_without_arguments_uses_the_configuration(
    sink: MemorySink,
) -> None:
    """A bare tracker takes the thresholds in force."""
    stratalog.configure(sink=sink, format="json", thresholds={"api": 0.02})

    assert PerformanceTracker().threshold("api") == 0.02


@pytest.mark.parametrize(
    ("variable", "layer"),
    [
        pytest.param("LOG_PERF_THRESHOLD_API", "api", id="api"),
        pytest.param("LOG_PERF_THRESHOLD_SERVICE", "service", id="service"),
        pytest.param("LOG_PERF_THRESHOLD_CORE", "core", id="core"),
        pytest.param(
            "LOG_PERF_THRESHOLD_INFRASTRUCTURE",
            "infrastructure",
            id="infrastructure",
        ),
        pytest.param(
            "LOG_PERF_THRESHOLD_REPOSITORY", "repository", id="new-layer"
        ),
    ],
)
def test_threshold_overrides_from_the_environment(
    variable: str, layer: str, sink: MemorySink
) -> None:
    """``LOG_PERF_THRESHOLD_<LAYER>`` sets the threshold of each request."""
    config = LoggingConfig.from_env({variable: "0.042"})
    stratalog.configure(config, sink=sink)

    ctx = LoggingCoordinator().start_request()
    LoggingCoordinator().end_request()

    assert ctx.performance_tracker is not None
    assert ctx.performance_tracker.threshold(layer) == 0.042
    others = {k: v for k, v in DEFAULT_THRESHOLDS.items() if k != layer}
    for other, seconds in others.items():
        assert ctx.performance_tracker.threshold(other) == seconds


@pytest.mark.parametrize(
    ("layer", "duration", "expected"),
    [
        pytest.param("api", 0.05, (False, 0.1), id="api-fast"),
        pytest.param("api", 0.1, (False, 0.1), id="api-at-threshold"),
        pytest.param("api", 0.1001, (True, 0.1), id="api-slow"),
        pytest.param("service", 0.6, (True, 0.5), id="service-slow"),
        pytest.param("core", 0.29, (False, 0.3), id="core-fast"),
        pytest.param(
            "infrastructure", 1.5, (True, 1.0), id="infrastructure-slow"
        ),
        pytest.param("unknown", 0.9, (False, 1.0), id="unknown-layer"),
    ],
)
def test_record_timing_returns_exceeds_and_threshold(
    layer: str, duration: float, expected: tuple[bool, float]
) -> None:
    """A duration strictly above the layer's threshold exceeds it."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    assert tracker.record_timing(layer, "op", duration) == expected


def test_violations_list_each_slow_operation() -> None:
    """Each threshold violation is listed with layer, op and milliseconds."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    tracker.record_timing("api", "handle", 0.25)
    tracker.record_timing("api", "handle", 0.05)

    assert tracker.violations == [
        {
            "layer": "api",
            "operation": "handle",
            "duration_ms": 250.0,
            "threshold_ms": 100.0,
        }
    ]


def test_violations_are_bounded() -> None:
    """At most 50 violations are kept per request."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    for _ in range(80):
        tracker.record_timing("api", "handle", 1.0)

    assert len(tracker.violations) == 50


def test_operation_aggregates_count_total_and_max() -> None:
    """Per operation: how often, how long in total, and the longest."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    for duration in (0.010, 0.030, 0.020):
        tracker.record_timing("core", "parse", duration)
    tracker.record_timing("api", "handle", 0.001)

    assert tracker.operations() == {
        "core.parse": {"count": 3, "total_ms": 60.0, "max_ms": 30.0},
        "api.handle": {"count": 1, "total_ms": 1.0, "max_ms": 1.0},
    }


def test_operation_aggregates_are_bounded() -> None:
    """Past 500 distinct operations, the rest are counted as ``other``."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    for index in range(520):
        tracker.record_timing("core", f"op{index}", 0.001)

    operations = tracker.operations()
    assert len(operations) == 501
    assert operations["other"]["count"] == 20


def test_timeline_of_one_layer() -> None:
    """A layer's entry has first start, last end, time spent and count."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)
    tracker.enter("core", 1.0)
    tracker.leave("core", 1.25)
    tracker.enter("core", 2.0)
    tracker.leave("core", 2.5)

    timeline = _timeline(tracker, 3.0)

    assert timeline["start"] == "2026-01-02T03:04:05.000000Z"
    assert timeline["core_layer"] == {
        "start": "2026-01-02T03:04:06.000000Z",
        "end": "2026-01-02T03:04:07.500000Z",
        "duration": 0.75,
        "count": 2,
        "threshold": 0.3,
        "violation": False,
    }
    assert timeline["end"] == "2026-01-02T03:04:08.000000Z"
    assert timeline["total_duration"] == 3.0


def test_nested_same_layer_operations_count_once() -> None:
    """An operation inside another of the same layer adds no time."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)
    tracker.enter("service", 0.0)
    tracker.enter("service", 0.1)
    tracker.leave("service", 0.2)
    tracker.leave("service", 0.4)

    entry = _timeline(tracker, 1.0)["service_layer"]

    assert entry["duration"] == pytest.approx(0.4)
    assert entry["count"] == 2


def test_overlapping_same_layer_operations_count_once() -> None:
    """Concurrent operations of one layer count their union of time."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)
    tracker.enter("infrastructure", 0.0)
    tracker.enter("infrastructure", 0.3)
    tracker.leave("infrastructure", 0.5)
    tracker.leave("infrastructure", 0.9)

    entry = _timeline(tracker, 1.0)["infrastructure_layer"]

    assert entry["duration"] == pytest.approx(0.9)


def test_violation_marks_the_layer() -> None:
    """A slow operation flags its layer in the timeline."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)
    tracker.enter("api", 0.0)
    tracker.leave("api", 0.5)
    tracker.record_timing("api", "handle", 0.5)

    entry = _timeline(tracker, 1.0)["api_layer"]

    assert entry["violation"] is True
    assert entry["threshold"] == 0.1


def test_open_operation_counts_until_the_summary() -> None:
    """An operation still open when the summary is taken counts till then."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)
    tracker.enter("core", 1.0)

    entry = _timeline(tracker, 4.0)["core_layer"]

    assert entry["duration"] == pytest.approx(3.0)


def test_leave_without_enter_is_ignored() -> None:
    """An unmatched end changes nothing and raises nothing."""
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    tracker.leave("core", 1.0)

    assert "core_layer" not in _timeline(tracker, 2.0)


def _union(intervals: list[tuple[float, float]]) -> float:
    total = 0.0
    reach = None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 30)),
        min_size=1,
        max_size=12,
    )
)
def test_property_layer_time_is_the_union_of_its_operations(
    spans: list[tuple[int, int]],
) -> None:
    """However operations of a layer overlap, time spent is their union."""
    intervals = [(float(s), float(s + length)) for s, length in spans]
    # At equal times starts come first, so no operation ends before it began.
    events = sorted(
        [(start, 0) for start, _ in intervals]
        + [(end, 1) for _, end in intervals]
    )
    tracker = PerformanceTracker(DEFAULT_THRESHOLDS)

    for moment, is_end in events:
        if is_end:
            tracker.leave("core", moment)
        else:
            tracker.enter("core", moment)

    entry = _timeline(tracker, 200.0)["core_layer"]
    assert entry["duration"] == pytest.approx(_union(intervals))
    assert entry["count"] == len(intervals)
    first = min(start for start, _ in intervals)
    last = max(end for _, end in intervals)
    assert entry["start"] == (START + dt.timedelta(seconds=first)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    assert entry["end"] == (START + dt.timedelta(seconds=last)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


def test_summary_timeline_matches_operation_durations(
    sink: MemorySink,
) -> None:
    """Layer totals in a real request agree with per-operation durations."""
    coordinator = LoggingCoordinator()
    core = stratalog.get_unified_logger("tests.performance", "core")
    coordinator.start_request()
    for name in ("a", "b"):
        with core.operation(name):
            pass
    summary = coordinator.end_request()

    operations = summary["operations"]
    total_ms = (
        operations["core.a"]["total_ms"] + operations["core.b"]["total_ms"]
    )
    layer = summary["request_timeline"]["core_layer"]
    assert layer["count"] == 2
    assert layer["duration"] * 1000 == pytest.approx(total_ms, abs=0.01)
    assert layer["duration"] <= summary["request_timeline"]["total_duration"]
