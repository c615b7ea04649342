"""Prometheus metrics from lines and operations, and the /metrics app."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import stratalog
from _servers import UvicornThread
from stratalog import _state
from stratalog._outlets import OutputStats
from stratalog._retry import RetryPolicy
from stratalog.asgi import instrument_app
from stratalog.breaker import CircuitBreakerConfig
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.exceptions import CircuitOpenError
from stratalog.external import HTTPExternalClient
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


async def _case(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["case_id"])


def test_served_requests_are_counted_by_route_template(
    metrics: PrometheusMetrics,
) -> None:
    """Under a real server, requests count by route template, not path."""
    app = instrument_app(Starlette(routes=[Route("/cases/{case_id}", _case)]))
    with UvicornThread(app) as server:
        for path in ("/cases/1", "/cases/2", "/nowhere"):
            httpx.get(f"{server.url}{path}")

    total = "stratalog_requests_total"
    ok = {"method": "GET", "status": "200", "outcome": "ok"}
    assert _value(metrics, total, route="/cases/{case_id}", **ok) == 2
    missing = {**ok, "status": "404", "route": "unmatched"}
    assert _value(metrics, total, **missing) == 1


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


def _flaky_service() -> Starlette:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def down(request: Request) -> PlainTextResponse:
        return PlainTextResponse("down", status_code=503)

    return Starlette(routes=[Route("/ok", ok), Route("/down", down)])


async def _call_a_flaky_service(url: str) -> None:
    client = HTTPExternalClient(
        "llm",
        url,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2),
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
    )
    async with client:
        await client.request("GET", "/ok", operation="complete")
        for _ in range(3):
            with contextlib.suppress(httpx.HTTPStatusError, CircuitOpenError):
                await client.request("GET", "/down", operation="complete")


async def test_external_calls_retries_and_breakers(
    metrics: PrometheusMetrics,
) -> None:
    """Real calls through HTTPExternalClient move the external metrics.

    One call succeeds; the next fails after one retry, and its two failed
    attempts open the breaker, which refuses the last two.
    """
    with UvicornThread(_flaky_service()) as service:
        await _call_a_flaky_service(service.url)

    calls = "stratalog_external_calls_total"
    assert _value(metrics, calls, client="llm", outcome="ok") == 1
    assert _value(metrics, calls, client="llm", outcome="error") == 1
    assert _value(metrics, calls, client="llm", outcome="short_circuited") == 2
    retries = "stratalog_external_retries_total"
    assert _value(metrics, retries, client="llm") == 1
    assert _value(metrics, "stratalog_circuit_state", client="llm") == 2
    transitions = "stratalog_circuit_transitions_total"
    assert _value(metrics, transitions, client="llm", state="opened") == 1


def test_breaker_state_follows_its_events(metrics: PrometheusMetrics) -> None:
    """Opened, half-opened and closed set the state gauge to 2, 1, 0."""
    log = get_unified_logger("t", "infrastructure")
    gauge = "stratalog_circuit_state"
    for event, value in [
        ("circuit.opened", 2),
        ("circuit.half_opened", 1),
        ("circuit.closed", 0),
    ]:
        log.log_event(event, severity="info", client="db", failures=1)
        assert _value(metrics, gauge, client="db") == value


class _CountingSink(MemorySink):
    """A sink reporting output counts, as the buffered output does."""

    def stats(self) -> OutputStats:
        return OutputStats(pending=3, written=40, dropped=7, lost=2)


def test_output_counts_are_read_at_scrape() -> None:
    """Dropped, lost and pending lines come from the output's counts."""
    stratalog.configure(sink=_CountingSink())
    installed = install_metrics()
    try:
        assert _value(installed, "stratalog_dropped_lines_total") == 7
        assert _value(installed, "stratalog_lost_lines_total") == 2
        assert _value(installed, "stratalog_pending_lines") == 3
        stratalog.configure(sink=MemorySink())
        assert _value(installed, "stratalog_dropped_lines_total") == 0
    finally:
        uninstall_metrics()


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


def test_a_bad_line_never_breaks_logging(
    metrics: PrometheusMetrics, sink: MemorySink
) -> None:
    """A summary with odd field types is skipped by the metrics, written."""
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    summary = coordinator.end_request(ctx)
    summary["counts"] = "many"
    summary["errors"] = [None, "x"]
    emit_summary(summary, ctx, extra={"method": "GET", "duration_ms": "1"})

    assert any(r["event"] == "request.completed" for r in sink.records())
    assert _value(metrics, "stratalog_dedup_suppressed_lines_total") == 0


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
