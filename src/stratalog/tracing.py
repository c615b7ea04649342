"""OpenTelemetry correlation: trace ids on lines, spans for operations.

Optional: everything here imports ``opentelemetry`` inside the functions
that need it, so stratalog runs without the ``otel`` extra.
"""

from __future__ import annotations

from typing import Any

from ._state import Processor
from .exceptions import ConfigurationError

__all__ = ["trace_processor"]


def trace_processor(*, required: bool = False) -> Processor | None:
    """Return a processor adding ``trace_id``/``span_id`` of the live span.

    Returns ``None`` when OpenTelemetry is not installed, unless
    *required*, which raises instead. An invalid span context (all-zero
    ids) adds nothing, and an unsampled span adds ``trace_sampled=false``.
    """
    try:
        from opentelemetry import trace
    except ImportError:
        if required:
            raise ConfigurationError(
                "LOG_TRACING",
                "on",
                "needs OpenTelemetry: pip install 'stratalog[otel]'",
            ) from None
        return None
    current_span = trace.get_current_span

    def add_trace_ids(
        logger: Any, method_name: str, event_dict: dict[str, Any]
    ) -> dict[str, Any]:
        span_context = current_span().get_span_context()
        if span_context.trace_id and span_context.span_id:
            event_dict["trace_id"] = format(span_context.trace_id, "032x")
            event_dict["span_id"] = format(span_context.span_id, "016x")
            if not span_context.trace_flags.sampled:
                event_dict["trace_sampled"] = False
        return event_dict

    return add_trace_ids


class TracingIntegration:
    """Tie spans and log lines together through the request context."""

    @staticmethod
    def start_span_with_logging_context(
        operation_name: str, layer: str = "service"
    ) -> Any:
        """Start a span carrying the request's ids as attributes.

        Attributes that are not set are left out, never sent as ``None``.
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
        """Return the OpenTelemetry context carried by incoming *headers*."""
        from opentelemetry.propagate import extract

        return extract(headers)
