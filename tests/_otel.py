"""OpenTelemetry helpers for the tests: spans in memory, a real collector.

The global tracer provider can be set once per process, so every test
module that needs spans shares :func:`span_exporter`'s provider and
clears the exporter between tests.

:class:`OtlpReceiver` is an OTLP/HTTP collector on 127.0.0.1 that decodes
what it receives with ``opentelemetry-proto``; :class:`SilentCollector`
accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

__all__ = [
    "ExportedLog",
    "ExportedSpan",
    "OtlpReceiver",
    "SilentCollector",
    "span_exporter",
]

_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """Install (once) a global SDK provider keeping spans in memory."""
    global _exporter
    if _exporter is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider
        _exporter = exporter
    return _exporter


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass(frozen=True)
class ExportedLog:
    """One log record as the collector decoded it."""

    body: Any
    severity_text: str
    severity_number: int
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    scope: str
    resource: dict[str, Any]


@dataclass(frozen=True)
class ExportedSpan:
    """One span as the collector decoded it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    resource: dict[str, Any]


@dataclass
class _Store:
    reply_status: int = 200
    logs: list[ExportedLog] = field(default_factory=list)
    spans: list[ExportedSpan] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _decode_logs(body: bytes) -> list[ExportedLog]:
    request = ExportLogsServiceRequest.FromString(body)
    found = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                found.append(
                    ExportedLog(
                        body=_value(record.body),
                        severity_text=record.severity_text,
                        severity_number=int(record.severity_number),
                        attributes=_attributes(record.attributes),
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        scope=scope_logs.scope.name,
                        resource=resource,
                    )
                )
    return found


def _decode_spans(body: bytes) -> list[ExportedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    ExportedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes=_attributes(span.attributes),
                        status_code=int(span.status.code),
                        resource=resource,
                    )
                )
    return found


def _handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with store.lock:
                store.requests.append(self.path)
                status = store.reply_status
                if status == 200 and self.path.endswith("/v1/logs"):
                    store.logs.extend(_decode_logs(body))
                elif status == 200 and self.path.endswith("/v1/traces"):
                    store.spans.extend(_decode_spans(body))
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class OtlpReceiver:
    """An OTLP/HTTP collector on 127.0.0.1, decoding logs and traces."""

    def __init__(self, reply_status: int = 200) -> None:
        self._store = _Store(reply_status=reply_status)
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), _handler(self._store)
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True
        )

    @property
    def url(self) -> str:
        """The base endpoint, as ``otlp_endpoint`` takes it."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def logs(self) -> list[ExportedLog]:
        """Every log record received so far."""
        with self._store.lock:
            return list(self._store.logs)

    def spans(self) -> list[ExportedSpan]:
        """Every span received so far."""
        with self._store.lock:
            return list(self._store.spans)

    def requests(self) -> list[str]:
        """The path of every request received so far."""
        with self._store.lock:
            return list(self._store.requests)

    def wait_for(
        self, condition: Callable[[], bool], timeout: float = 10.0
    ) -> bool:
        """Wait until *condition* holds (polling); return whether it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class SilentCollector:
    """Accepts TCP connections on 127.0.0.1, reads, and never replies."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """The base endpoint, as ``otlp_endpoint`` takes it."""
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def accepted(self) -> int:
        """How many connections were accepted."""
        return len(self._connections)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(connection)

    def __enter__(self) -> SilentCollector:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(2)
        for connection in self._connections:
            connection.close()
        self._listener.close()
