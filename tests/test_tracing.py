"""Trace ids on lines, spans around operations and requests, trace headers."""

from __future__ import annotations

import asyncio
import contextvars
import re
import subprocess
import sys
from collections.abc import Generator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)

import stratalog
from _otel import span_exporter
from _servers import UvicornThread
from stratalog import external, tracing
from stratalog.asgi import instrument_app
from stratalog.config import LoggingConfig
from stratalog.coordinator import LoggingCoordinator
from stratalog.logger import get_unified_logger
from stratalog.testing import MemorySink
from stratalog.tracing import (
    ServerSpanObserver,
    SpanObserver,
    TracingIntegration,
)

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process-wide span exporter, empty at the start of the test."""
    exporter = span_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
def traced(spans: InMemorySpanExporter, sink: MemorySink) -> MemorySink:
    """Lines in memory, with operation spans on (an SDK provider is set)."""
    return sink


def _unsampled_span() -> NonRecordingSpan:
    return NonRecordingSpan(
        SpanContext(TRACE_ID, PARENT_ID, False, TraceFlags(0))
    )


def _by_event(sink: MemorySink, event: str) -> dict[str, Any]:
    (line,) = [r for r in sink.records() if r["event"] == event]
    return line


# -- trace ids on lines ------------------------------------------------------


def test_line_in_a_span_carries_its_ids(traced: MemorySink) -> None:
    """Inside a span a line has its trace and span id as lower-case hex."""
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        get_unified_logger("t", "service").info("inside")
    context = span.get_span_context()

    line = _by_event(traced, "inside")
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert "trace_sampled" not in line


def test_no_valid_span_leaves_the_fields_out(traced: MemorySink) -> None:
    """Without a span, or with the all-zero one, no trace field is written."""
    log = get_unified_logger("t", "service")
    log.info("outside")
    with trace.use_span(trace.INVALID_SPAN):
        log.info("invalid")

    for event in ("outside", "invalid"):
        line = _by_event(traced, event)
        assert "trace_id" not in line
        assert "span_id" not in line


def test_unsampled_span_is_marked_every_time(traced: MemorySink) -> None:
    """An unsampled span's ids are written with ``trace_sampled=false``."""
    log = get_unified_logger("t", "service")
    with trace.use_span(_unsampled_span()):
        log.info("first")
        log.info("second")

    for event in ("first", "second"):
        line = _by_event(traced, event)
        assert line["trace_id"] == f"{TRACE_ID:032x}"
        assert line["span_id"] == f"{PARENT_ID:016x}"
        assert line["trace_sampled"] is False


def test_caller_trace_id_cannot_replace_the_span(traced: MemorySink) -> None:
    """A caller's ``trace_id`` is kept as ``field_trace_id`` only."""
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        get_unified_logger("t", "service").info("spoof", trace_id="0" * 32)

    line = _by_event(traced, "spoof")
    assert line["field_trace_id"] == "0" * 32
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_trace_id_already_on_the_line_is_kept() -> None:
    """The processor only fills in: a trace id put by stratalog stays."""
    add_ids = tracing.trace_processor()
    assert add_ids is not None
    line = {"event": "x", "trace_id": "a" * 32, "span_id": "b" * 16}
    with trace.use_span(_unsampled_span()):
        result = add_ids(None, "info", dict(line))

    assert result == line


def test_tracing_off_writes_no_ids(spans: InMemorySpanExporter) -> None:
    """``tracing="off"`` writes no trace fields and opens no spans."""
    memory = MemorySink()
    stratalog.configure(sink=memory, format="json", tracing="off")
    log = get_unified_logger("t", "service")
    with trace.use_span(_unsampled_span()), log.operation("quiet"):
        log.info("inside")

    assert all("trace_id" not in r for r in memory.records())
    assert spans.get_finished_spans() == ()


# -- operation spans ---------------------------------------------------------


def test_operation_span_is_current_and_tagged(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """An operation runs in a child span named ``<layer>.<operation>``."""
    ctx = LoggingCoordinator().start_request(correlation_id="req-7")
    tracer = trace.get_tracer("test")
    core = get_unified_logger("t", "core")
    with (
        tracer.start_as_current_span("request") as parent,
        core.operation("classify"),
    ):
        core.info("working")
    LoggingCoordinator().end_request(ctx)

    (span,) = [s for s in spans.get_finished_spans() if s.name != "request"]
    assert span.name == "core.classify"
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert dict(span.attributes or {}) == {
        "stratalog.layer": "core",
        "stratalog.operation": "classify",
        "correlation_id": "req-7",
        "stratalog.outcome": "completed",
    }
    working = _by_event(traced, "working")
    assert working["span_id"] == format(span.context.span_id, "016x")
    assert (
        _by_event(traced, "operation.completed")["span_id"]
        == (working["span_id"])
    )


def test_failure_is_recorded_once_on_the_innermost_span(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """Only the span that saw the error first records the exception."""
    ctx = LoggingCoordinator().start_request()
    service = get_unified_logger("t", "service")
    core = get_unified_logger("t", "core")
    with (
        pytest.raises(ValueError, match="boom"),
        service.operation("outer"),
        core.operation("inner"),
    ):
        raise ValueError("boom")
    LoggingCoordinator().end_request(ctx)

    by_name = {s.name: s for s in spans.get_finished_spans()}
    inner, outer = by_name["core.inner"], by_name["service.outer"]
    failed = [r for r in traced.records() if r["event"] == "operation.failed"]
    (error_id,) = {line["error_id"] for line in failed}
    assert [e.name for e in inner.events] == ["exception"]
    assert inner.status.status_code is StatusCode.ERROR
    assert inner.status.description == "ValueError: boom"
    assert outer.events == ()
    assert outer.status.status_code is StatusCode.ERROR
    assert outer.status.description is not None
    assert "core.inner" in outer.status.description
    assert error_id in outer.status.description
    for span in (inner, outer):
        assert span.attributes is not None
        assert span.attributes["stratalog.error_id"] == error_id
        assert span.attributes["stratalog.outcome"] == "failed"


def test_chained_error_is_not_recorded_again(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """An error raised ``from`` a recorded one only references it."""
    core = get_unified_logger("t", "core")
    service = get_unified_logger("t", "service")

    def wrap() -> None:
        with service.operation("wrap"):
            try:
                with core.operation("read"):
                    raise KeyError("k")
            except KeyError as exc:
                raise RuntimeError("wrapped") from exc

    with pytest.raises(RuntimeError):
        wrap()

    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert [e.name for e in by_name["core.read"].events] == ["exception"]
    assert by_name["service.wrap"].events == ()
    assert by_name["service.wrap"].status.status_code is StatusCode.ERROR


async def test_cancelled_operation_leaves_status_unset(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """A cancelled operation's span says so and is not an error."""
    started = asyncio.Event()

    async def work() -> None:
        async with get_unified_logger("t", "service").operation("wait"):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()
    assert span.attributes is not None
    assert span.attributes["stratalog.outcome"] == "cancelled"


def test_operation_closed_elsewhere_ends_its_span_quietly(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """A generator finalised in another context ends the span silently."""

    def rows() -> Generator[int, None, None]:
        with get_unified_logger("t", "core").operation("scan"):
            yield 1
            yield 2

    generator = rows()
    contextvars.copy_context().run(next, generator)
    generator.close()

    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["stratalog.outcome"] == "cancelled"
    assert not trace.get_current_span().get_span_context().is_valid
    assert "Failed to detach context" not in traced.text()


def test_explicit_provider_gets_the_spans(spans: InMemorySpanExporter) -> None:
    """A provider passed to the observer is used instead of the global."""
    own = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    stratalog.configure(
        sink=MemorySink(),
        operation_spans="off",
        observers=[SpanObserver(provider)],
    )
    with get_unified_logger("t", "service").operation("mine"):
        pass

    assert [s.name for s in own.get_finished_spans()] == ["service.mine"]
    assert spans.get_finished_spans() == ()


def test_auto_waits_for_an_sdk_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In ``auto`` no span is made while the global provider is a proxy."""
    monkeypatch.setattr(
        trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider()
    )
    operation = SimpleNamespace(layer="core", name="x", context=None)

    assert SpanObserver(sdk_only=True).started(operation) is None
    observer = SpanObserver()
    state = observer.started(operation)
    observer.finished(operation, state, None, 0.0, "completed")
    assert state is not None


@pytest.mark.parametrize(
    ("operation_spans", "tracing_mode", "expected"),
    [
        pytest.param("on", "off", True, id="on-always"),
        pytest.param("auto", "auto", True, id="auto-with-tracing"),
        pytest.param("auto", "off", False, id="auto-without-tracing"),
        pytest.param("off", "on", False, id="off"),
    ],
)
def test_settings_choose_the_operation_spans(
    operation_spans: str, tracing_mode: str, expected: bool
) -> None:
    """``LOG_OPERATION_SPANS`` and ``LOG_TRACING`` decide on spans."""
    settings = LoggingConfig(
        operation_spans=operation_spans, tracing=tracing_mode
    )
    observer = tracing.operation_span_observer(settings)

    assert isinstance(observer, SpanObserver) is expected


# -- server spans ------------------------------------------------------------


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/cases/42",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.9", 50000),
        "headers": [(b"user-agent", b"probe/1"), *headers],
    }


def test_server_span_continues_the_incoming_trace(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """The request's span joins the caller's trace and names its route."""
    scope = _scope((b"traceparent", TRACEPARENT.encode()))
    ctx = LoggingCoordinator().start_request(correlation_id="req-9")
    observer = ServerSpanObserver()
    state = observer.started(scope, ctx)
    get_unified_logger("t", "api").info("handled")
    scope["route"] = SimpleNamespace(path="/cases/{case_id}")
    observer.finished(state, 200, None)
    LoggingCoordinator().end_request(ctx)

    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /cases/{case_id}"
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == PARENT_ID
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/cases/42",
        "network.protocol.version": "1.1",
        "server.address": "127.0.0.1",
        "server.port": 8000,
        "client.address": "127.0.0.9",
        "user_agent.original": "probe/1",
        "correlation_id": "req-9",
        "http.route": "/cases/{case_id}",
        "http.response.status_code": 200,
    }
    assert _by_event(traced, "handled")["trace_id"] == f"{TRACE_ID:032x}"
    assert not trace.get_current_span().get_span_context().is_valid


def test_server_span_joins_a_current_server_span(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """Under another instrumentation's SERVER span no second one starts."""
    ctx = LoggingCoordinator().start_request(correlation_id="req-3")
    tracer = trace.get_tracer("framework")
    with tracer.start_as_current_span("GET", kind=SpanKind.SERVER):
        observer = ServerSpanObserver()
        state = observer.started(_scope(), ctx)
        observer.finished(state, 200, None)
    LoggingCoordinator().end_request(ctx)

    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["correlation_id"] == "req-3"


def test_server_span_references_an_error_recorded_deeper(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """A failure an operation span recorded is referenced, not repeated."""
    ctx = LoggingCoordinator().start_request()
    observer = ServerSpanObserver()
    state = observer.started(_scope(), ctx)
    try:
        with get_unified_logger("t", "core").operation("load"):
            raise OSError("disk")
    except OSError as exc:
        observer.finished(state, 500, exc)
    LoggingCoordinator().end_request(ctx)

    by_name = {s.name: s for s in spans.get_finished_spans()}
    server = by_name["GET"]
    error_id = _by_event(traced, "operation.failed")["error_id"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.events == ()
    assert server.status.description is not None
    assert error_id in server.status.description
    assert [e.name for e in by_name["core.load"].events] == ["exception"]


def test_server_span_records_an_error_no_span_saw(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """An exception no operation span saw is recorded on the server span."""
    observer = ServerSpanObserver()
    state = observer.started(_scope(), None)
    observer.finished(state, None, LookupError("gone"))

    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_a_client_gone_is_not_a_server_error(
    spans: InMemorySpanExporter,
) -> None:
    """An exception nobody logged as a failure, no 5xx: the client left."""
    ctx = LoggingCoordinator().start_request()
    observer = ServerSpanObserver()
    state = observer.started(_scope(), ctx)
    observer.finished(state, None, ConnectionResetError("peer gone"))
    LoggingCoordinator().end_request(ctx)

    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()
    assert span.attributes is not None
    assert span.attributes["stratalog.outcome"] == "client_disconnected"


@pytest.mark.parametrize(
    ("status", "exc", "code", "outcome"),
    [
        pytest.param(503, None, StatusCode.ERROR, None, id="5xx"),
        pytest.param(404, None, StatusCode.UNSET, None, id="4xx"),
        pytest.param(
            None,
            asyncio.CancelledError(),
            StatusCode.UNSET,
            "cancelled",
            id="cancelled",
        ),
    ],
)
def test_server_span_status_follows_the_response(
    spans: InMemorySpanExporter,
    status: int | None,
    exc: BaseException | None,
    code: StatusCode,
    outcome: str | None,
) -> None:
    """5xx is an error; 4xx and a cancelled request are not."""
    observer = ServerSpanObserver()
    observer.finished(observer.started(_scope(), None), status, exc)

    (span,) = spans.get_finished_spans()
    assert span.status.status_code is code
    assert span.attributes is not None
    assert span.attributes.get("stratalog.outcome") == outcome


def test_non_http_scopes_get_no_span(spans: InMemorySpanExporter) -> None:
    """Lifespan and websocket scopes are left alone."""
    observer = ServerSpanObserver()
    observer.finished(observer.started({"type": "lifespan"}, None), None, None)

    assert spans.get_finished_spans() == ()


# -- the design document's helper and outgoing headers ----------------------


def test_span_with_logging_context_has_no_none_attributes(
    spans: InMemorySpanExporter,
) -> None:
    """Only the ids that are set become attributes; none is ``None``."""
    ctx = LoggingCoordinator().start_request(
        correlation_id="req-1", session_id="s-1"
    )
    span = TracingIntegration.start_span_with_logging_context("lookup")
    span.end()
    LoggingCoordinator().end_request(ctx)

    assert dict(span.attributes) == {
        "layer": "service",
        "correlation_id": "req-1",
        "session_id": "s-1",
    }


def test_trace_context_survives_inject_and_extract(
    spans: InMemorySpanExporter,
) -> None:
    """Injected headers carry the live span; extraction reads them back."""
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("call") as span:
        headers = TracingIntegration.inject_trace_context({})
    shouted = {"Traceparent": headers["traceparent"]}
    context = TracingIntegration.extract_trace_context(shouted)

    extracted = trace.get_current_span(context).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id


def test_configure_puts_trace_headers_on_external_calls() -> None:
    """``configure()`` registers the trace header provider unless off."""
    stratalog.configure(sink=MemorySink())
    assert tracing.trace_headers in external._providers

    stratalog.configure(sink=MemorySink(), tracing="off")
    assert tracing.trace_headers not in external._providers


def test_trace_headers_are_empty_without_a_span() -> None:
    """No span, no ``traceparent``: an all-zero one is never sent."""
    assert tracing.trace_headers() == {}
    with trace.use_span(_unsampled_span()):
        assert tracing.trace_headers() == {
            "traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-00"
        }


# -- C07: the global exception handler under a real server ------------------


def _c07_app(native_spans: bool) -> Any:
    """The case's app: a global handler logging ``unhandled``."""
    telemetry: Any = {"tracing": native_spans, "operation_spans": False}
    app = FastAPI(telemetry=telemetry)
    log = get_unified_logger("c07", "api")

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled", path=request.url.path)
        return JSONResponse({"error": "internal"}, status_code=500)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        log.info("ok")
        return {"ok": True}

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("nope")

    return instrument_app(app)


def _server_span(spans: InMemorySpanExporter, path: str) -> Any:
    (span,) = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER
        and (s.attributes or {}).get("url.path") == path
    ]
    return span


@pytest.mark.slow
@pytest.mark.parametrize(
    "native_spans",
    [
        pytest.param(False, id="stratalog-server-span"),
        pytest.param(True, id="joins-fastapi-span"),
    ],
)
def test_c07_exception_handler_lines_keep_the_request_trace(
    traced: MemorySink, spans: InMemorySpanExporter, native_spans: bool
) -> None:
    """C07: lines of the global exception handler carry the server span.

    Under uvicorn, with the middleware outermost (``instrument_app``):
    ``ok`` has its request's server-span ids; ``unhandled`` has the
    failing request's trace id and the correlation id of the response
    header; that span ends with status ERROR; no id is ever all zero.
    With FastAPI's own request span, it is joined instead of doubled.
    """
    with UvicornThread(_c07_app(native_spans)) as server:
        assert httpx.get(f"{server.url}/ok").status_code == 200
        failed = httpx.get(f"{server.url}/fail")
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal"}

    ok_span, fail_span = (
        _server_span(spans, "/ok"),
        _server_span(spans, "/fail"),
    )
    ok = _by_event(traced, "ok")
    assert ok["trace_id"] == format(ok_span.context.trace_id, "032x")
    assert ok["span_id"] == format(ok_span.context.span_id, "016x")
    unhandled = _by_event(traced, "unhandled")
    assert unhandled["trace_id"] == format(fail_span.context.trace_id, "032x")
    assert unhandled["correlation_id"] == failed.headers["x-request-id"]
    assert fail_span.status.status_code is StatusCode.ERROR
    assert fail_span.attributes is not None
    assert (
        fail_span.attributes["correlation_id"] == unhandled["correlation_id"]
    )

    summaries = [
        r for r in traced.records() if r["event"] == "request.completed"
    ]
    assert {s["trace_id"] for s in summaries} == {
        format(span.context.trace_id, "032x") for span in (ok_span, fail_span)
    }
    servers = [
        s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER
    ]
    assert len(servers) == 2
    for line in traced.records():
        if "trace_id" in line:
            assert re.fullmatch("[0-9a-f]{32}", line["trace_id"])
            assert re.fullmatch("[0-9a-f]{16}", line["span_id"])
            assert line["trace_id"] != "0" * 32


# -- one trace across two services -------------------------------------------


def _service_b() -> Any:
    app = FastAPI(telemetry={"tracing": False})

    @app.get("/stock/{sku}")
    async def stock(sku: str) -> dict[str, int]:
        get_unified_logger("b.stock", "api").info("stock.read", sku=sku)
        return {"left": 3}

    return instrument_app(app)


def _service_a(b_url: str) -> Any:
    app = FastAPI(telemetry={"tracing": False})
    client = external.HTTPExternalClient("stock", b_url)

    @app.get("/orders/{sku}")
    async def order(sku: str) -> dict[str, int]:
        response = await client.request(
            "GET", f"/stock/{sku}", operation="stock.read"
        )
        left: int = response.json()["left"]
        return {"left": left}

    return instrument_app(app)


@pytest.mark.slow
def test_two_services_share_one_trace(
    traced: MemorySink, spans: InMemorySpanExporter
) -> None:
    """A calls B through HTTPExternalClient: both summaries, one trace.

    B's server span is a child of the operation span of A's external
    call (``traceparent`` went out with it), and B's request takes A's
    correlation id from ``X-Request-ID``.
    """
    with (
        UvicornThread(_service_b()) as b,
        UvicornThread(_service_a(b.url)) as a,
    ):
        response = httpx.get(f"{a.url}/orders/A-1")
    assert response.json() == {"left": 3}

    summaries = {
        r["path"]: r
        for r in traced.records()
        if r["event"] == "request.completed"
    }
    summary_a, summary_b = summaries["/orders/A-1"], summaries["/stock/A-1"]
    assert summary_a["trace_id"] == summary_b["trace_id"]
    assert summary_a["correlation_id"] == summary_b["correlation_id"]
    server_b = _server_span(spans, "/stock/A-1")
    server_a = _server_span(spans, "/orders/A-1")
    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    assert server_b.parent is not None
    call = by_id[server_b.parent.span_id]
    assert call.name == "infrastructure.stock.read"
    assert call.context.trace_id == server_a.context.trace_id
    assert server_b.attributes is not None
    assert server_b.attributes["correlation_id"] == summary_a["correlation_id"]


# -- without the otel extra --------------------------------------------------

_WITHOUT_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # every opentelemetry import fails
import stratalog
from stratalog import external, tracing
from stratalog.asgi import instrument_app
from stratalog.testing import MemorySink

stratalog.configure(sink=MemorySink())
log = stratalog.get_unified_logger("t", "service")
with log.operation("plain"):
    log.info("inside")
assert tracing.trace_headers not in external._providers
assert instrument_app(lambda *a: None).observers == ()
for setting in ({"tracing": "on"}, {"operation_spans": "on"},
                {"otlp_endpoint": "http://127.0.0.1:9"}):
    try:
        stratalog.configure(sink=MemorySink(), **setting)
    except stratalog.ConfigurationError as exc:
        assert "stratalog[otel]" in str(exc), exc
    else:
        raise AssertionError(setting)
print("ok")
"""


def test_everything_works_without_opentelemetry() -> None:
    """Without the extra, lines and operations work; asking for it raises."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OTEL],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.stderr.decode() == ""
    assert done.stdout.decode().strip() == "ok"
