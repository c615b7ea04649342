"""OpenTelemetry correlation: trace ids on lines, spans, trace headers.

Optional: this module imports ``opentelemetry`` only inside the functions
that need it, so stratalog runs without the ``otel`` extra. The span
observers live in private modules that need it and are loaded on first
use of their names.

- :func:`trace_processor` puts the live span's ``trace_id`` and
  ``span_id`` on every line (configured by ``LOG_TRACING``).
- :class:`SpanObserver` gives each ``operation()`` a child span
  (``LOG_OPERATION_SPANS``).
- :class:`ServerSpanObserver` gives each request a SERVER span, for
  :class:`~stratalog.middleware.LoggingMiddleware`.
- :func:`trace_headers` is registered by :func:`stratalog.configure` as
  a header provider of :mod:`stratalog.external` (unless
  ``LOG_TRACING=off``), so every external call carries ``traceparent``.
- :class:`TracingIntegration` is the design document's helper for spans,
  header injection and extraction.

A request's correlation id and its trace point at each other: the SERVER
span has a ``correlation_id`` attribute, and the request's summary line
carries the ``trace_id``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._state import Processor
from .config import LoggingConfig
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._server_span import ServerSpanObserver
    from ._spans import SpanObserver

__all__ = [
    "ServerSpanObserver",
    "SpanObserver",
    "TracingIntegration",
    "operation_span_observer",
    "propagate_to_external",
    "trace_headers",
    "trace_processor",
]

_LAZY = {
    "ServerSpanObserver": "._server_span",
    "SpanObserver": "._spans",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __package__), name)


def _missing(setting: str) -> ConfigurationError:
    return ConfigurationError(
        setting, "on", "needs OpenTelemetry: pip install 'stratalog[otel]'"
    )


def trace_processor(*, required: bool = False) -> Processor | None:
    """Return a processor adding ``trace_id``/``span_id`` of the live span.

    Returns ``None`` when OpenTelemetry is not installed, unless
    *required*, which raises instead. Without a valid span (all-zero
    ids) nothing is added; an unsampled span's ids are written with
    ``trace_sampled=false``, every time. A ``trace_id`` already on the
    line is kept with whatever ``span_id`` came with it: only stratalog
    itself can put one there, since a caller's field of that name is
    written as ``field_trace_id``.
    """
    try:
        from opentelemetry import trace
    except ImportError:
        if required:
            raise _missing("LOG_TRACING") from None
        return None
    current_span = trace.get_current_span

    def add_trace_ids(
        logger: Any, method_name: str, event_dict: dict[str, Any]
    ) -> dict[str, Any]:
        if "trace_id" in event_dict:
            return event_dict
        span_context = current_span().get_span_context()
        if span_context.trace_id and span_context.span_id:
            event_dict["trace_id"] = format(span_context.trace_id, "032x")
            event_dict["span_id"] = format(span_context.span_id, "016x")
            if not span_context.trace_flags.sampled:
                event_dict["trace_sampled"] = False
        return event_dict

    return add_trace_ids


def operation_span_observer(settings: LoggingConfig) -> SpanObserver | None:
    """Return the span observer *settings* ask for, if any.

    ``on`` always opens a span per operation (through the global tracer
    provider) and needs OpenTelemetry; ``auto`` opens them once an SDK
    TracerProvider is the global one; ``off``, or ``LOG_TRACING=off``
    with ``auto``, opens none.
    """
    mode = settings.operation_spans
    if mode == "off" or (mode == "auto" and settings.tracing == "off"):
        return None
    try:
        from ._spans import SpanObserver
    except ImportError:
        if mode == "on":
            raise _missing("LOG_OPERATION_SPANS") from None
        return None
    return SpanObserver(sdk_only=mode == "auto")


def trace_headers() -> dict[str, str]:
    """Return the propagation headers (``traceparent``...) of the live span.

    Empty without a valid span, or without OpenTelemetry.
    """
    try:
        from opentelemetry.propagate import inject
    except ImportError:
        return {}
    headers: dict[str, str] = {}
    inject(headers)
    return headers


def propagate_to_external(settings: LoggingConfig) -> None:
    """Add or remove :func:`trace_headers` on external calls, per *settings*.

    They are added unless ``LOG_TRACING=off`` or OpenTelemetry is not
    installed; nothing happens without the ``external`` extra.
    """
    try:
        from .external import add_header_provider, remove_header_provider
    except ImportError:
        return
    if settings.tracing != "off" and _otel_installed():
        add_header_provider(trace_headers)
    else:
        remove_header_provider(trace_headers)


def _otel_installed() -> bool:
    try:
        import opentelemetry.propagate  # noqa: F401
    except ImportError:
        return False
    return True


class TracingIntegration:
    """Tie spans and log lines together through the request context."""

    @staticmethod
    def start_span_with_logging_context(
        operation_name: str, layer: str = "service"
    ) -> Any:
        """Start a span carrying the request's ids as attributes.

        The span is not made current; use ``trace.use_span(span)`` for
        that. Ids that are not set are left out, never sent as ``None``.
        """
        from opentelemetry import trace

        from .context import request_context

        attributes: dict[str, str] = {"layer": layer}
        ctx = request_context.get()
        if ctx is not None:
            attributes.update(ctx.ids())
        tracer = trace.get_tracer("stratalog")
        return tracer.start_span(operation_name, attributes=attributes)

    @staticmethod
    def inject_trace_context(headers: dict[str, str]) -> dict[str, str]:
        """Add ``traceparent``/``tracestate`` of the live span to *headers*."""
        from opentelemetry.propagate import inject

        inject(headers)
        return headers

    @staticmethod
    def extract_trace_context(headers: dict[str, str]) -> Any:
        """Return the OpenTelemetry context carried by incoming *headers*.

        Nothing is made current: pass it as ``context=`` when starting a
        span, or ``attach`` it (and ``detach`` the token afterwards).
        """
        from opentelemetry.propagate import extract

        carrier = {key.lower(): value for key, value in headers.items()}
        return extract(carrier)
