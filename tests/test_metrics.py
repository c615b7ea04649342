"""Prometheus metrics from lines and operations, and the /metrics app."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import stratalog
from _servers import UvicornThread
from stratalog import _state
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.logger import get_unified_logger
from stratalog.metrics import (
    PrometheusMetrics,
    install_metrics,
    metrics_app,
    uninstall_metrics,
)
from stratalog.testing import MemorySink


@pytest.fixture
def metrics(sink: MemorySink) -> Iterator[PrometheusMetrics]:
    """Metrics installed into a pipeline writing to memory."""
    installed = install_metrics()
    yield installed
    uninstall_metrics()


def _samples(metrics: PrometheusMetrics) -> dict[tuple[str, Any], float]:
    text = generate_latest(metrics.registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found[(sample.name, labels)] = sample.value
    return found


def _value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return _samples(metrics).get(key, 0.0)


def _request(status: int, route: str | None, fail: bool = False) -> None:
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    log = get_unified_logger("t", "core")
    for _ in range(3):
        log.warning("cache.miss", key="k")
    if fail:
        try:
            with log.operation("load"):
                raise KeyError("gone")
        except KeyError:
            pass
    summary = coordinator.end_request(ctx)
    extra = {"method": "GET", "route": route, "status": status}
    emit_summary(summary, ctx, extra={**extra, "outcome": "ok"})


def test_requests_are_counted_by_route_and_status(
    metrics: PrometheusMetrics,
) -> None:
    """Each summary line counts a request, its duration and its errors."""
    _request(200, "/cases/{case_id}")
    _request(200, "/cases/{case_id}")
    _request(500, "/cases/{case_id}", fail=True)
    _request(404, None)

    ok = {"method": "GET", "route": "/cases/{case_id}", "outcome": "ok"}
    assert _value(metrics, "stratalog_requests_total", **ok, status="200") == 2
    assert _value(metrics, "stratalog_requests_total", **ok, status="500") == 1
    unmatched = {**ok, "route": "unmatched", "status": "404"}
    assert _value(metrics, "stratalog_requests_total", **unmatched) == 1
    assert (
        _value(
            metrics,
            "stratalog_request_duration_seconds_count",
            method="GET",
            route="/cases/{case_id}",
        )
        == 3
    )
    assert (
        _value(
            metrics,
            "stratalog_errors_total",
            origin_layer="core",
            type="KeyError",
        )
        == 1
    )
    assert _value(metrics, "stratalog_dedup_suppressed_lines_total") == 8


def _fail_slowly(log: Any) -> None:
    with log.operation("slow_failure"):
        time.sleep(0.01)
        raise ValueError("late")


def test_operations_are_timed_by_layer_at_any_level(sink: MemorySink) -> None:
    """Durations and violations count even when the lines are filtered."""
    stratalog.configure(
        sink=sink, level="critical", thresholds={"core": 0.001}
    )
    installed = install_metrics()
    try:
        log = get_unified_logger("t", "core")
        with log.operation("fast"):
            pass
        with log.operation("slow"):
            time.sleep(0.01)
        with pytest.raises(ValueError, match="late"):
            _fail_slowly(log)
    finally:
        uninstall_metrics()

    assert sink.records() == []
    count = "stratalog_operation_duration_seconds_count"
    assert _value(installed, count, layer="core", outcome="slow") == 1
    assert _value(installed, count, layer="core", outcome="failed") == 1
    assert (
        _value(installed, "stratalog_threshold_violations_total", layer="core")
        == 2
    )


def test_external_calls_breakers_and_drops(
    metrics: PrometheusMetrics,
) -> None:
    """External, circuit and dropped-line events move their metrics."""
    log = get_unified_logger("t", "infrastructure")
    log.info("external.call.succeeded", client="llm", outcome="success")
    log.error("external.call.failed", client="llm", outcome="failure")
    log.warning("external.call.short_circuited", client="llm")
    log.warning("external.retry.scheduled", client="llm", attempt=1)
    log.warning("circuit.opened", client="llm", failures=5)
    log.warning("log.dropped", dropped=7, interval_s=1.0)

    calls = "stratalog_external_calls_total"
    assert _value(metrics, calls, client="llm", outcome="success") == 1
    assert _value(metrics, calls, client="llm", outcome="failure") == 1
    assert _value(metrics, calls, client="llm", outcome="short_circuited") == 1
    assert (
        _value(metrics, "stratalog_external_retries_total", client="llm") == 1
    )
    assert _value(metrics, "stratalog_circuit_state", client="llm") == 2
    assert _value(metrics, "stratalog_dropped_lines_total") == 7

    log.info("circuit.closed", client="llm", failures=0)
    assert _value(metrics, "stratalog_circuit_state", client="llm") == 0
    transitions = "stratalog_circuit_transitions_total"
    assert _value(metrics, transitions, client="llm", state="opened") == 1
    assert _value(metrics, transitions, client="llm", state="closed") == 1


def test_installed_metrics_survive_configure(
    metrics: PrometheusMetrics,
) -> None:
    """``configure()`` again keeps the metrics; uninstalling removes them."""
    stratalog.configure(sink=MemorySink())
    assert install_metrics() is metrics
    assert metrics.observer in _state.PIPELINE.observers

    uninstall_metrics()
    assert metrics.observer not in _state.PIPELINE.observers
    assert metrics.processor not in _state.PIPELINE.processors


def test_each_instance_has_its_own_registry() -> None:
    """Two metric sets never collide: each has a registry of its own."""
    first, second = PrometheusMetrics(), PrometheusMetrics()

    assert first.registry is not second.registry


def test_a_bad_line_never_breaks_logging(metrics: PrometheusMetrics) -> None:
    """A line with odd field types is skipped by the metrics, still written."""
    log = get_unified_logger("t", "infrastructure")
    log.warning("log.dropped", dropped="many")

    assert _value(metrics, "stratalog_dropped_lines_total") == 0


@pytest.fixture
def served(metrics: PrometheusMetrics) -> Iterator[str]:
    """``metrics_app()`` under uvicorn on loopback; yields its URL."""
    with UvicornThread(metrics_app()) as server:
        yield server.url


def test_metrics_app_serves_the_installed_metrics(
    served: str, metrics: PrometheusMetrics
) -> None:
    """A scrape of the app parses and shows the installed metrics."""
    _request(200, "/ping")
    response = httpx.get(f"{served}/metrics")
    families = {
        f.name: f for f in text_string_to_metric_families(response.text)
    }

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    (sample,) = families["stratalog_requests"].samples
    assert sample.labels["route"] == "/ping"
    assert httpx.post(f"{served}/metrics").status_code == 405


def test_prometheus_is_imported_only_when_used() -> None:
    """``import stratalog`` and ``configure()`` leave prometheus_client out."""
    code = (
        "import sys, stratalog\n"
        "from stratalog.testing import MemorySink\n"
        "stratalog.configure(sink=MemorySink())\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        timeout=30,
        check=True,
    )

    assert done.stdout.decode().strip() == "False"
