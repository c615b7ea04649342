"""The SERVER span of each request (needs the ``otel`` extra).

A request observer for the logging middleware: it continues the caller's
trace from the request headers, or joins a SERVER span another
instrumentation made current, and shares the span machinery (and the
ledger of recorded exceptions) with the operation spans.
"""

from __future__ import annotations

import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._http import Scope, route_template
from ._spans import (
    INSTRUMENTATION,
    RECHECK_S,
    SpanScope,
    error_record,
    is_sdk_provider,
)
from .context import RequestContext

__all__ = ["ServerSpanObserver", "trace_context_of"]


class ServerSpanObserver:
    """A request observer for :class:`~stratalog.middleware.LoggingMiddleware`.

    Pass it as ``LoggingMiddleware(app, observers=[ServerSpanObserver()])``.
    It continues the trace of the incoming ``traceparent``/``tracestate``
    headers with a SERVER span named ``METHOD route``, current for the
    whole request, so every line of the request, the summary included,
    carries its ``trace_id``. The span has the HTTP attributes and the
    request's ``correlation_id``. A 5xx or a failure the request logged
    sets status ERROR; a client that went away does not
    (``stratalog.outcome=client_disconnected``), nor does cancellation.

    When a SERVER span is already current (FastAPI's own telemetry or
    ``opentelemetry-instrumentation-asgi`` outside the middleware), no
    second span is started: that span gets the ``correlation_id``
    attribute and is left for its owner to end.
    """

    __slots__ = ("_next_check", "_provider", "_sdk", "_tracer")

    def __init__(
        self, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self._provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self._sdk = tracer_provider is not None
        self._next_check = 0.0

    def _worth_a_span(self, scope: Scope) -> bool:
        """Whether a span records anything or carries an incoming trace.

        Without the SDK's provider a span records nothing; it is still
        started when the request continues a trace, so that the request's
        lines and outgoing calls keep that trace id. The provider is looked
        at again at most every half second.
        """
        if not self._sdk:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + RECHECK_S
                self._sdk = is_sdk_provider(trace.get_tracer_provider())
        if self._sdk:
            return True
        headers = scope.get("headers") or ()
        return any(name == b"traceparent" for name, _ in headers)

    def _get_tracer(self) -> trace.Tracer:
        tracer = self._tracer
        if tracer is None:
            provider = self._provider or trace.get_tracer_provider()
            tracer = self._tracer = provider.get_tracer(INSTRUMENTATION)
        return tracer

    def started(
        self, scope: Scope, ctx: RequestContext | None
    ) -> _ServerScope | None:
        """Join a current SERVER span, or start one from the headers."""
        if scope.get("type") != "http" or not self._worth_a_span(scope):
            return None
        current = trace.get_current_span()
        if _is_server_span(current):
            if ctx is not None:
                current.set_attribute("correlation_id", ctx.correlation_id)
            return None
        method = str(scope.get("method") or "HTTP")
        attributes = _request_attributes(scope, method)
        if ctx is not None:
            attributes["correlation_id"] = ctx.correlation_id
        parent = trace_context_of(scope)
        span = self._get_tracer().start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        state = _ServerScope(span, method, ctx, scope)
        state.enter(parent)
        return state

    def finished(
        self,
        state: _ServerScope | None,
        status: int | None,
        exc: BaseException | None,
    ) -> None:
        """Name the span after its route, set the outcome and end it."""
        if state is None:
            return
        try:
            state.complete(status, exc)
        finally:
            state.leave()


class _ServerScope(SpanScope):
    __slots__ = ("method", "scope")

    def __init__(
        self,
        span: trace.Span,
        method: str,
        ctx: RequestContext | None,
        scope: Scope,
    ) -> None:
        super().__init__(span, method, ctx, None)
        self.method = method
        self.scope = scope

    def complete(self, status: int | None, exc: BaseException | None) -> None:
        span = self.span
        route = route_template(self.scope)
        if route is not None:
            self.name = f"{self.method} {route}"
            span.update_name(self.name)
            span.set_attribute("http.route", route)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if isinstance(exc, Exception):
            if self._application_failed(status, exc):
                self.failed(exc)
            else:
                span.set_attribute("stratalog.outcome", "client_disconnected")
        elif exc is not None:
            span.set_attribute("stratalog.outcome", "cancelled")
        elif status is not None and status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _application_failed(self, status: int | None, exc: Exception) -> bool:
        """A 5xx, or an exception logged as a failure; not a client gone."""
        if status is not None and status >= 500:
            return True
        return self.ctx is None or error_record(self.ctx, exc) is not None


def _is_server_span(span: trace.Span) -> bool:
    if not span.get_span_context().is_valid or not span.is_recording():
        return False
    return getattr(span, "kind", None) is SpanKind.SERVER


def trace_context_of(scope: Scope) -> otel_context.Context:
    """Return the context carried by the headers of an ASGI *scope*."""
    from opentelemetry.propagate import extract

    carrier: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        carrier[name] = (
            f"{carrier[name]},{value}" if name in carrier else value
        )
    return extract(carrier)


def _request_attributes(scope: Scope, method: str) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.scheme": str(scope.get("scheme") or "http"),
        "url.path": str(scope.get("path") or "/"),
    }
    version = scope.get("http_version")
    if version:
        attributes["network.protocol.version"] = str(version)
    server = scope.get("server")
    if server and server[0]:
        attributes["server.address"] = str(server[0])
        if server[1] is not None:
            attributes["server.port"] = int(server[1])
    client = scope.get("client")
    if client and client[0]:
        attributes["client.address"] = str(client[0])
    for raw_name, raw_value in scope.get("headers") or ():
        if raw_name.lower() == b"user-agent":
            attributes["user_agent.original"] = raw_value.decode("latin-1")
            break
    return attributes
