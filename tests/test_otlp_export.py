"""OTLP/HTTP export of lines and spans, against a collector on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import stratalog
from _otel import OtlpReceiver, SilentCollector, span_exporter
from stratalog import _diagnostics, _otlp, _otlp_attributes
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.logger import get_unified_logger
from stratalog.testing import MemorySink

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _app_owned_provider() -> Iterator[InMemorySpanExporter]:
    """Set the shared SDK provider first; stop export after each test.

    With a provider of the application's own, stratalog exports lines
    only; span export is tested in a process of its own below.
    """
    exporter = span_exporter()
    yield exporter
    stratalog.shutdown(2.0)
    _otlp.shutdown(2.0)
    _wait_for_export_threads()
    _otlp._release_sdk_loggers()
    exporter.clear()


def _wait_for_export_threads() -> None:
    """Let an export abandoned at shutdown end here, not in a later test."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = [t.name for t in threading.enumerate()]
        if not any(
            n.startswith(("OtelBatch", "stratalog-otlp")) for n in names
        ):
            return
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A collector that accepts everything; export stops before it does."""
    with OtlpReceiver() as running:
        yield running
        _otlp.shutdown(2.0)


def _exported(receiver: OtlpReceiver, body: str) -> list[Any]:
    return [r for r in receiver.logs() if r.body == body]


def test_lines_reach_the_collector(receiver: OtlpReceiver) -> None:
    """Each written line becomes a log record with ids, level and fields."""
    stratalog.configure(
        sink=MemorySink(),
        otlp_endpoint=receiver.url,
        service_name="svc-a",
        level="debug",
    )
    log = get_unified_logger("shop.orders", "service")
    ctx = LoggingCoordinator().start_request(correlation_id="req-1")
    with trace.get_tracer("test").start_as_current_span("request") as span:
        log.warning("stock.low", sku="A-1", left=2, ratio=0.5, tags=["x"])
        emit_summary(LoggingCoordinator().end_request(ctx), ctx)

    assert stratalog.flush(5.0)
    (record,) = _exported(receiver, "stock.low")
    (summary,) = _exported(receiver, "request.completed")
    context = span.get_span_context()
    assert record.severity_text == "WARN"
    assert record.severity_number == 13
    assert record.scope == "shop.orders"
    assert record.resource["service.name"] == "svc-a"
    assert record.trace_id == format(context.trace_id, "032x")
    assert record.span_id == format(context.span_id, "016x")
    assert record.attributes == {
        "logger": "shop.orders",
        "layer": "service",
        "correlation_id": "req-1",
        "sku": "A-1",
        "left": 2,
        "ratio": 0.5,
        "tags": ["x"],
    }
    assert summary.attributes["counts.lines"] == 1
    assert summary.attributes["correlation_id"] == "req-1"
    assert not any(p.endswith("/v1/traces") for p in receiver.requests())


def test_lines_written_while_exporting_are_not_exported(
    receiver: OtlpReceiver,
) -> None:
    """The HTTP client's own debug lines about an export never loop back."""
    memory = MemorySink()
    stratalog.configure(sink=memory, otlp_endpoint=receiver.url, level="debug")
    get_unified_logger("t", "service").info("once")
    assert stratalog.flush(5.0)
    assert stratalog.flush(5.0)

    assert [r.body for r in receiver.logs()] == ["once"]
    assert len(receiver.requests()) == 1
    assert any(r["logger"].startswith("urllib3") for r in memory.records())


def test_fields_become_valid_attribute_values() -> None:
    """Nested fields are flattened or sent as JSON; ``None`` is left out."""
    line = {
        "event": "request.completed",
        "level": "info",
        "timestamp": "2026-12-03T14:16:50.123456Z",
        "trace_id": "a" * 32,
        "counts": {"lines": 3, "suppressed": 0},
        "request_timeline": {"core_layer": {"duration": 0.1, "count": 1}},
        "errors": [{"error_id": "err-1", "type": "KeyError"}],
        "huge": 2**70,
        "missing": None,
        "when": b"\xff",
        "many": {f"k{n}": n for n in range(40)},
    }

    assert _otlp_attributes.attributes_of(line) == {
        "counts.lines": 3,
        "counts.suppressed": 0,
        "request_timeline.core_layer.duration": 0.1,
        "request_timeline.core_layer.count": 1,
        "errors": '[{"error_id":"err-1","type":"KeyError"}]',
        "huge": str(2**70),
        "when": "\\xff",
        "many": _otlp_attributes._json(line["many"]),
    }


def test_attributes_stay_under_the_sdk_limit() -> None:
    """A line with very many fields is cut and marked, never warned about."""
    line = {f"field_{n}": n for n in range(500)}

    attributes = _otlp_attributes.attributes_of(line)

    assert len(attributes) <= 101
    assert attributes["stratalog.attributes_dropped"] is True


def test_failing_collector_neither_loops_nor_floods(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Export errors go to rate-limited diagnostics, never back out again."""
    memory = MemorySink()
    with OtlpReceiver(reply_status=500) as failing:
        stratalog.configure(sink=memory, otlp_endpoint=failing.url)
        log = get_unified_logger("t", "service")
        for round_ in range(3):
            log.info("tick", round=round_)
            stratalog.flush(5.0)
        sent = len(failing.requests())
        time.sleep(0.5)
        assert len(failing.requests()) == sent
        assert _otlp.shutdown(2.0)
    assert sent == 3

    stderr = capfd.readouterr().err
    reports = [x for x in stderr.splitlines() if x.startswith("stratalog:")]
    assert len(reports) == 1
    assert "otel:opentelemetry" in reports[0]
    assert _diagnostics.counts()[reports[0].split(": ")[1]] >= 1
    assert not any(
        str(r["logger"]).startswith("opentelemetry") for r in memory.records()
    )


def test_silent_collector_cannot_hold_shutdown() -> None:
    """A collector that never answers costs at most the shutdown timeout."""
    with SilentCollector() as silent:
        stratalog.configure(
            sink=MemorySink(), otlp_endpoint=silent.url, otlp_timeout=3.0
        )
        get_unified_logger("t", "service").info("lost")
        started = time.monotonic()
        done = stratalog.shutdown(1.0)
        elapsed = time.monotonic() - started

    assert done is False
    assert elapsed < 5.0


def test_configure_again_keeps_or_moves_the_export(
    receiver: OtlpReceiver,
) -> None:
    """Same settings keep the running export; a new endpoint replaces it."""
    stratalog.configure(sink=MemorySink(), otlp_endpoint=receiver.url)
    first = _otlp.current_processor()
    stratalog.configure(sink=MemorySink(), otlp_endpoint=receiver.url)
    assert _otlp.current_processor() is first

    with OtlpReceiver() as other:
        stratalog.configure(sink=MemorySink(), otlp_endpoint=other.url)
        get_unified_logger("t", "service").info("moved")
        assert stratalog.flush(5.0)
        assert [r.body for r in other.logs()] == ["moved"]
        stratalog.configure(sink=MemorySink())
    assert _otlp.current_processor() is None
    assert receiver.logs() == []


def _run_exit_probe(endpoint: str, **env: str) -> tuple[float, str, int]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LOG_", "OTEL_"))
    }
    environ = {**inherited, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.otlp_exit"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return time.monotonic() - started, done.stderr.decode(), done.returncode


@pytest.mark.slow
def test_c24_records_and_spans_reach_the_collector_at_exit(
    receiver: OtlpReceiver,
) -> None:
    """C24 (a): with no shutdown call, everything is sent at exit.

    The probe process sets no provider of its own, so stratalog makes
    the global one and exports the operation's span as well.
    """
    _, stderr, code = _run_exit_probe(receiver.url)

    assert code == 0, stderr
    assert stderr == ""
    records = _exported(receiver, "record.written")
    assert sorted(r.attributes["n"] for r in records) == list(range(50))
    (summary,) = _exported(receiver, "request.completed")
    assert summary.attributes["correlation_id"] == "exit-1"
    assert summary.resource["service.name"] == "exit-probe"
    (span,) = receiver.spans()
    assert span.name == "service.batch"
    assert span.attributes["correlation_id"] == "exit-1"
    assert {r.trace_id for r in records} == {span.trace_id}


@pytest.mark.slow
def test_c24_silent_collector_cannot_hold_exit() -> None:
    """C24 (c): a collector that never replies delays exit by the timeout.

    The probe exits cleanly within its export timeout plus start-up time,
    and says nothing on stderr.
    """
    with SilentCollector() as silent:
        elapsed, stderr, code = _run_exit_probe(
            silent.url, LOG_OTLP_TIMEOUT="1.5"
        )
        assert code == 0, stderr
        assert silent.accepted >= 1

    assert "Traceback" not in stderr
    assert elapsed < 1.5 + 8.0
