"""OTLP/HTTP export of lines and spans (needs the ``otel`` extra).

Design note. Every written line is handed, at the end of the pipeline, to
an OpenTelemetry LoggerProvider of stratalog's own, whose batch processor
sends it from a background thread. Spans go out the same way when
stratalog made the global TracerProvider (no SDK provider was set when
export started); an application that set its own provider exports its
spans itself, and stratalog sends only the lines.

Exporting must not feed itself. The exporters report their failures
through stdlib ``logging``, and the HTTP client logs each request at
debug level; stratalog captures both, and exported, each would cause
another export. So a line written while an export runs (the SDK marks
that context with its suppress-instrumentation key) is never exported,
and while export is on, the ``opentelemetry`` loggers report to
stratalog's rate-limited diagnostics instead of the pipeline.

Shutdown and exit wait at most the time given (``otlp_timeout`` at exit):
the batch processors' threads are joined with a deadline, never waited
on without one, and a collector that never answers only costs that time.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from . import _diagnostics
from ._otlp_attributes import attributes_of
from ._state import Processor
from .config import LoggingConfig

__all__ = [
    "current_processor",
    "flush",
    "install",
    "shutdown",
]

_SEVERITY: dict[str, tuple[SeverityNumber, str]] = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warning": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
    "critical": (SeverityNumber.FATAL, "FATAL"),
}
_MAX_LOGGERS = 512
_SDK_LOGGER = "opentelemetry"

_lock = threading.RLock()
_current: _Export | None = None
_switch: _SpanSwitch | None = None
_exit_registered = False


def install(settings: LoggingConfig) -> Processor | None:
    """Start, keep or stop export as *settings* say; return its processor.

    The same settings keep the running export, so ``configure()`` may run
    again without losing queued records.
    """
    global _current
    key = _key_of(settings)
    with _lock:
        if _current is not None and _current.key == key:
            return _current.processor
        previous, _current = _current, None
        if previous is not None:
            _stop(previous, settings.otlp_timeout)
        if key is None:
            return None
        _route_sdk_loggers()
        _register_exit()
        _current = _Export(key)
        return _current.processor


def current_processor() -> Processor | None:
    """Return the pipeline step of the running export, if any."""
    export = _current
    return None if export is None else export.processor


def flush(timeout: float | None) -> bool:
    """Send what is queued, waiting at most *timeout* seconds."""
    export = _current
    if export is None:
        return True
    return export.flush(timeout)


def shutdown(timeout: float) -> bool:
    """Send what is queued and stop, within *timeout* seconds."""
    global _current
    with _lock:
        export, _current = _current, None
    if export is None:
        return True
    return _stop(export, timeout)


def _stop(export: _Export, timeout: float) -> bool:
    """Stop *export*; give the SDK's loggers back once nothing runs.

    An export still waiting on its collector when the time is up keeps
    running in its daemon thread, and may yet report its failure: the
    SDK's loggers then stay with the diagnostics.
    """
    done = export.shutdown(timeout)
    if done:
        _release_sdk_loggers()
    return done


def _key_of(settings: LoggingConfig) -> tuple[Any, ...] | None:
    if not settings.otlp_endpoint:
        return None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    base = settings.otlp_endpoint.rstrip("/")
    return (
        _signal_url(base, "LOGS", "logs"),
        _signal_url(base, "TRACES", "traces"),
        settings.otlp_timeout,
        settings.service_name,
    )


def _signal_url(base: str, signal: str, path: str) -> str:
    """A signal's own variable wins, as OpenTelemetry specifies."""
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    return specific or f"{base}/v1/{path}"


class _Export:
    """One running export: a logger provider and, maybe, span export."""

    def __init__(self, key: tuple[Any, ...]) -> None:
        logs_url, traces_url, timeout, service_name = key
        self.key = key
        self.timeout: float = timeout
        self.closed = False
        resource = _resource(service_name)
        self.logs = BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=logs_url, timeout=timeout)
        )
        self.provider = LoggerProvider(resource, shutdown_on_exit=False)
        self.provider.add_log_record_processor(self.logs)
        self.spans = _export_spans(resource, traces_url, timeout)
        self._loggers: dict[str, Logger] = {}
        self.processor = _line_exporter(self)

    def logger_for(self, name: str) -> Logger:
        logger = self._loggers.get(name)
        if logger is None:
            if len(self._loggers) >= _MAX_LOGGERS:
                name = "stratalog"
            logger = self._loggers[name] = self.provider.get_logger(name)
        return logger

    def flush(self, timeout: float | None) -> bool:
        limit = self.timeout if timeout is None else timeout
        steps: list[Callable[[], object]] = [self.logs.force_flush]
        if self.spans is not None:
            steps.append(self.spans.force_flush)
        return _within(limit, steps)

    def shutdown(self, timeout: float) -> bool:
        self.closed = True
        steps: list[Callable[[], object]] = [self.logs.shutdown]
        if self.spans is not None:
            if _switch is not None:
                _switch.target = None
            steps.append(self.spans.shutdown)
        return _within(timeout, steps)


def _resource(service_name: str | None) -> Resource:
    if service_name:
        return Resource.create({"service.name": service_name})
    return Resource.create()


def _within(timeout: float, steps: Sequence[Callable[[], object]]) -> bool:
    """Run each step in a thread of its own; wait at most *timeout*.

    The SDK's ``force_flush`` and ``shutdown`` wait without a bound for an
    export in flight; the threads are daemons, so a step still waiting
    when the time is up never holds the process.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    workers = [
        threading.Thread(target=step, name="stratalog-otlp", daemon=True)
        for step in steps
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(deadline - time.monotonic(), 0.0))
    return not any(worker.is_alive() for worker in workers)


def _line_exporter(export: _Export) -> Processor:
    severities = _SEVERITY
    default = severities["info"]
    get_value = otel_context.get_value

    def export_line(
        logger: Any, method_name: str, event_dict: dict[str, Any]
    ) -> dict[str, Any]:
        if export.closed or get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return event_dict
        name = event_dict.get("logger")
        if not isinstance(name, str):
            name = "stratalog"
        elif name.startswith(_SDK_LOGGER):
            return event_dict
        try:
            level = event_dict.get("level")
            number, text = (
                severities.get(level, default)
                if isinstance(level, str)
                else default
            )
            export.logger_for(name).emit(
                timestamp=time.time_ns(),
                severity_number=number,
                severity_text=text,
                body=str(event_dict.get("event", "")),
                attributes=attributes_of(event_dict),
            )
        except Exception as error:
            _diagnostics.report("otlp", "a line was not exported", error)
        return event_dict

    return export_line


# -- spans ------------------------------------------------------------------


class _SpanSwitch(SpanProcessor):
    """The one span processor stratalog adds; its target can change."""

    def __init__(self) -> None:
        self.target: BatchSpanProcessor | None = None

    def on_start(
        self, span: Span, parent_context: otel_context.Context | None = None
    ) -> None:
        target = self.target
        if target is not None:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is not None:
            target.on_end(span)

    def shutdown(self) -> None:
        self.target = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        target = self.target
        return True if target is None else target.force_flush(timeout_millis)


def _export_spans(
    resource: Resource, url: str, timeout: float
) -> BatchSpanProcessor | None:
    """Export spans if stratalog owns (or now makes) the global provider."""
    global _switch
    if _switch is None:
        if not _unset(trace.get_tracer_provider()):
            return None
        provider = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
        switch = _SpanSwitch()
        provider.add_span_processor(switch)
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            return None
        _switch = switch
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=url, timeout=timeout)
    )
    _switch.target = processor
    return processor


def _unset(provider: object) -> bool:
    return type(provider) is trace.ProxyTracerProvider


# -- the SDK's own logging and exit -------------------------------------------


class _DiagnosticsHandler(logging.Handler):
    """Send the SDK's own records to stratalog's rate-limited diagnostics."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            return
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        _diagnostics.report(f"otel:{record.name}", message)


_handler = _DiagnosticsHandler()
_propagated: bool | None = None


def _route_sdk_loggers() -> None:
    global _propagated
    sdk = logging.getLogger(_SDK_LOGGER)
    if _propagated is None:
        _propagated = sdk.propagate
        sdk.propagate = False
        sdk.addHandler(_handler)


def _release_sdk_loggers() -> None:
    global _propagated
    sdk = logging.getLogger(_SDK_LOGGER)
    if _propagated is not None:
        sdk.removeHandler(_handler)
        sdk.propagate = _propagated
        _propagated = None


def _register_exit() -> None:
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(_at_exit)


def _at_exit() -> None:
    export = _current
    if export is not None:
        shutdown(export.timeout)
