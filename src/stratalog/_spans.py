"""Spans around operations, and what request spans share (``otel`` extra).

Design note. A span is made current by attaching an OpenTelemetry context,
and the attach is undone when the operation or request ends. An operation
closed from another context (a generator finalised elsewhere) cannot undo
it there; like the core's own context variables, that case is detected
and skipped instead of reported. A private marker variable, set beside the
attach, tells which case applies without tripping OpenTelemetry's own
error logging.

Exceptions are recorded on the first span that sees them, and spans
further out only reference them. The spans of one request (or of one
outermost operation) share a small ledger, carried in the OpenTelemetry
context, of the exceptions already recorded and on which span.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .context import RequestContext
from .errors import ErrorRecord

__all__ = [
    "INSTRUMENTATION",
    "SpanObserver",
    "SpanScope",
    "error_record",
    "is_sdk_provider",
]

INSTRUMENTATION = "stratalog"
_LEDGER = otel_context.create_key("stratalog.recorded_exceptions")
_LEDGER_SIZE = 64
_CHAIN_LIMIT = 32
RECHECK_S = 0.5

_attached: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "stratalog_span_attached", default=None
)


try:
    from opentelemetry.sdk.trace import TracerProvider as _SdkProvider
except ImportError:  # the API without the SDK: never an SDK provider
    _SdkProvider = None  # type: ignore[assignment,misc]


def is_sdk_provider(provider: object) -> bool:
    """Whether *provider* is the OpenTelemetry SDK's TracerProvider."""
    return _SdkProvider is not None and isinstance(provider, _SdkProvider)


class _Ledger:
    """Exceptions recorded on a span so far, with the span's name."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[BaseException, str]] = []

    def find(self, exc: BaseException) -> str | None:
        """Return the span that recorded *exc* or one it is chained to."""
        if not self.entries:
            return None
        seen: set[int] = set()
        todo = [exc]
        while todo and len(seen) < _CHAIN_LIMIT:
            current = todo.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            for recorded, span_name in self.entries:
                if recorded is current:
                    return span_name
            todo.extend(
                linked
                for linked in (current.__cause__, current.__context__)
                if linked is not None
            )
        return None

    def add(self, exc: BaseException, span_name: str) -> None:
        """Remember that *exc* was recorded on *span_name*."""
        if len(self.entries) >= _LEDGER_SIZE:
            del self.entries[0]
        self.entries.append((exc, span_name))


class SpanScope:
    """A span made current, and what it takes to end it."""

    __slots__ = ("ctx", "ledger", "marker", "name", "span", "token")

    def __init__(
        self,
        span: trace.Span,
        name: str,
        ctx: RequestContext | None,
        ledger: _Ledger | None,
    ) -> None:
        self.span = span
        self.name = name
        self.ctx = ctx
        self.ledger = ledger
        self.marker: contextvars.Token[object | None] | None = None
        self.token: contextvars.Token[otel_context.Context] | None = None

    def enter(self, parent: otel_context.Context | None = None) -> None:
        """Make the span current, sharing or starting the ledger."""
        context = trace.set_span_in_context(self.span, parent)
        ledger = otel_context.get_value(_LEDGER, context)
        if isinstance(ledger, _Ledger):
            self.ledger = ledger
        else:
            self.ledger = _Ledger()
            context = otel_context.set_value(_LEDGER, self.ledger, context)
        self.marker = _attached.set(self)
        self.token = otel_context.attach(context)

    def leave(self) -> None:
        """Undo :meth:`enter` unless ended from another context."""
        marker, self.marker = self.marker, None
        token, self.token = self.token, None
        if marker is None or token is None:
            return
        try:
            _attached.reset(marker)
        except (ValueError, RuntimeError):
            return
        otel_context.detach(token)

    def failed(self, exc: BaseException) -> None:
        """Set ERROR; record *exc* unless a span further in already did."""
        span = self.span
        record = error_record(self.ctx, exc)
        if record is not None:
            span.set_attribute("stratalog.error_id", record.error_id)
        span.set_attribute("error.type", type(exc).__qualname__)
        recorded_on = self.ledger.find(exc) if self.ledger else None
        if recorded_on is None:
            span.record_exception(exc, escaped=True)
            if self.ledger is not None:
                self.ledger.add(exc, self.name)
            span.set_status(Status(StatusCode.ERROR, _describe(exc)))
            return
        reference = f"{type(exc).__name__} recorded on span {recorded_on}"
        if record is not None:
            reference = f"{reference} ({record.error_id})"
        span.set_status(Status(StatusCode.ERROR, reference))


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name


def error_record(
    ctx: RequestContext | None, exc: BaseException
) -> ErrorRecord | None:
    errors = ctx.error_context if ctx is not None else None
    return errors.find(exc) if errors is not None else None


class SpanObserver:
    """An operation observer opening a child span per operation.

    The span is named ``<layer>.<operation>``, is current while the
    operation runs (so its lines carry its ``span_id``) and has the
    attributes ``stratalog.layer``, ``stratalog.operation`` and, inside a
    request, ``correlation_id``. A failure sets status ERROR and records
    the exception on the innermost span that saw it; a cancelled
    operation leaves the status unset and says
    ``stratalog.outcome=cancelled``.

    With *tracer_provider*, spans come from it; otherwise from the global
    provider. With *sdk_only*, no span is made until the global provider
    is the SDK's (the ``auto`` setting), so an application that never
    sets one pays next to nothing: the global provider is looked at
    again at most every half second until it is the SDK's.
    """

    __slots__ = ("_next_check", "_provider", "_sdk_only", "_tracer")

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        sdk_only: bool = False,
    ) -> None:
        self._provider = tracer_provider
        self._sdk_only = sdk_only and tracer_provider is None
        self._tracer: trace.Tracer | None = None
        self._next_check = 0.0

    def _get_tracer(self) -> trace.Tracer | None:
        tracer = self._tracer
        if tracer is not None:
            return tracer
        if self._sdk_only:
            now = time.monotonic()
            if now < self._next_check:
                return None
            self._next_check = now + RECHECK_S
        provider = self._provider or trace.get_tracer_provider()
        if self._sdk_only and not is_sdk_provider(provider):
            return None
        # The global provider can be set once only, so caching is safe.
        tracer = self._tracer = provider.get_tracer(INSTRUMENTATION)
        return tracer

    def started(self, operation: Any) -> SpanScope | None:
        """Start the operation's span and make it current."""
        tracer = self._get_tracer()
        if tracer is None:
            return None
        name = f"{operation.layer}.{operation.name}"
        attributes = {
            "stratalog.layer": operation.layer,
            "stratalog.operation": operation.name,
        }
        ctx: RequestContext | None = operation.context
        if ctx is not None:
            attributes["correlation_id"] = ctx.correlation_id
        span = tracer.start_span(name, attributes=attributes)
        scope = SpanScope(span, name, ctx, None)
        scope.enter()
        return scope

    def finished(
        self,
        operation: Any,
        state: SpanScope | None,
        exc: BaseException | None,
        duration: float,
        outcome: str,
    ) -> None:
        """Set the outcome, end the span and restore the context."""
        if state is None:
            return
        try:
            span = state.span
            span.set_attribute("stratalog.outcome", outcome)
            if exc is not None and outcome != "cancelled":
                state.failed(exc)
            span.end()
        finally:
            state.leave()
