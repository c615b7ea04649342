"""One HTTP request or WebSocket session in flight, for the middleware.

A flow wraps ``receive`` and ``send``, tracks how the exchange ends and
writes its closing line; :mod:`stratalog.middleware` explains the order
of events it relies on.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from . import _diagnostics, _state
from ._http import (
    MAX_PATH,
    Incoming,
    Message,
    Receive,
    RequestObserver,
    Scope,
    Send,
    printable,
    route_template,
)
from .context import RequestContext
from .coordinator import _leave, build_summary, emit_summary
from .logger import _process_errors, get_unified_logger

if TYPE_CHECKING:
    from .middleware import LoggingMiddleware

__all__ = ["Flow", "HttpExchange", "WebSocketSession"]

_LOGGER = "stratalog.request"
_INFO, _WARNING = 20, 30
_ERROR_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"21"),
]
_ERROR_BODY = b"Internal Server Error"


class Flow(ABC):
    """One HTTP exchange or WebSocket session in flight.

    Subclasses wrap ``receive`` and ``send`` and write the closing line.
    """

    __slots__ = (
        "_receive",
        "_send",
        "cancelled",
        "ctx",
        "error",
        "excluded",
        "failed",
        "incoming",
        "interrupted",
        "observed",
        "owner",
        "scope",
        "start",
        "summarised",
    )

    def __init__(
        self,
        owner: LoggingMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        incoming: Incoming,
    ) -> None:
        self.owner = owner
        self.scope = scope
        self._receive = receive
        self._send = send
        self.incoming = incoming
        self.start = time.perf_counter()
        self.excluded = scope.get("path") in owner.excluded_paths
        self.error: BaseException | None = None
        self.failed = False
        self.cancelled = False
        self.interrupted = False
        self.summarised = False
        self.observed: tuple[tuple[RequestObserver, Any], ...] = ()
        self.ctx = owner.coordinator.start_request(
            correlation_id=incoming.correlation_id,
            session_id=incoming.session_id,
            investigation_id=incoming.investigation_id,
        )

    @abstractmethod
    async def receive(self) -> Message:
        """Receive one message for the app, noting what it says."""

    @abstractmethod
    async def send(self, message: Message) -> None:
        """Send one message of the app, noting what it says."""

    def observe(self) -> None:
        """Tell the observers that the request starts."""
        self.observed = _observe_start(self)

    def lookup_wanted(self) -> bool:
        """Whether the user of a session is to be looked up."""
        return (
            self.ctx.session_id is not None
            and self.owner.session_service is not None
            and not self.excluded
        )

    async def look_up_user(self) -> None:
        """Set the user id of the session, if the service knows it."""
        service = self.owner.session_service
        session_id = self.ctx.session_id
        if service is None or session_id is None:
            return
        try:
            user_id = await service.get_user_id(
                session_id, budget=self.owner.lookup_budget
            )
        except Exception as exc:
            _diagnostics.report("middleware", "session lookup failed", exc)
            return
        if user_id is not None:
            self.ctx.user_id = user_id

    async def fail(self, exc: BaseException) -> None:
        """Record how the application call ended abnormally."""
        self.error = exc
        if isinstance(exc, asyncio.CancelledError):
            self.cancelled = True
        elif not isinstance(exc, Exception):
            self.interrupted = True
        elif not self.gone():
            self.failed = True
            try:
                await self.failed_with(exc)
            except Exception as error:
                _diagnostics.report("middleware", "a failure was lost", error)

    def gone(self) -> bool:
        """Whether the client went away before the end."""
        return False

    @abstractmethod
    async def failed_with(self, exc: Exception) -> None:
        """Log an application failure."""

    def close(self) -> None:
        """Leave the context, write the summary if not yet, tell observers."""
        try:
            if self.summarised:
                # The summary went out with the last byte: only the
                # context is left to reset, the other half of end_request.
                _leave(self.ctx)
            else:
                self.summarise(self.owner.coordinator.end_request(self.ctx))
            if self.failed and self.error is not None:
                _outlive(self.ctx, self.error)
        except Exception as exc:
            _diagnostics.report("middleware", "a summary was lost", exc)
        if self.observed:
            _observe_end(self)

    @abstractmethod
    def summarise(self, summary: dict[str, Any] | None) -> None:
        """Write the closing line once."""

    def status(self) -> int | None:
        """The response status sent, or ``None``."""
        return None

    def common_fields(self, head: dict[str, Any]) -> None:
        """Add the client facts and rejected ids to *head*."""
        incoming = self.incoming
        if incoming.client_ip is not None:
            head["client_ip"] = incoming.client_ip
        if incoming.user_agent is not None:
            head["user_agent"] = incoming.user_agent
        if incoming.invalid:
            head["invalid_ids"] = incoming.invalid
        if self.cancelled:
            head["cancelled"] = True

    def id_header(self, message: Message) -> Message:
        """Return *message* with the correlation header added if missing."""
        name = self.incoming.response_header
        headers = message.get("headers") or ()
        for key, _ in headers:
            if key.lower() == name:
                return message
        value = self.ctx.correlation_id.encode("ascii", "replace")
        return {**message, "headers": [*headers, (name, value)]}


class HttpExchange(Flow):
    """One HTTP request: counts bytes, tracks the response, ends once."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "delivered",
        "disconnected",
        "ended",
        "response_status",
        "started",
        "trailers",
    )

    def __init__(
        self,
        owner: LoggingMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        incoming: Incoming,
    ) -> None:
        super().__init__(owner, scope, receive, send, incoming)
        self.response_status: int | None = None
        self.started = False
        self.delivered = False
        self.trailers = False
        self.disconnected = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.ended: float | None = None

    async def receive(self) -> Message:
        """Count request body bytes and notice a disconnect."""
        message = await self._receive()
        kind = message.get("type")
        if kind == "http.request":
            self.bytes_in += len(message.get("body", b""))
        elif kind == "http.disconnect" and self.ended is None:
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        """Add the correlation header, count bytes, end at the last one."""
        kind = message.get("type")
        if kind == "http.response.body":
            try:
                await self._send(message)
            except OSError:
                self.disconnected = True
                raise
            self.bytes_out += len(message.get("body", b""))
            if not message.get("more_body", False) and not self.trailers:
                self._end()
        elif kind == "http.response.start":
            self.started = True
            self.response_status = message.get("status")
            self.trailers = bool(message.get("trailers", False))
            await self._forward(self.id_header(message))
            # A response started after the client left reaches nobody: the
            # 500 a framework makes of the disconnect is not a real one.
            self.delivered = not self.disconnected
        elif kind == "http.response.trailers":
            await self._forward(message)
            if not message.get("more_trailers", False):
                self._end()
        elif kind == "http.response.pathsend":
            await self._forward(message)
            self._end()
        else:
            await self._send(message)

    async def _forward(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True
            raise

    def _end(self) -> None:
        if self.ended is not None:
            return
        self.ended = time.perf_counter()
        try:
            self.summarise(None)
        except Exception as exc:
            _diagnostics.report("middleware", "a summary was lost", exc)

    def gone(self) -> bool:
        """Whether the client disconnected before the response ended."""
        return self.disconnected

    async def failed_with(self, exc: Exception) -> None:
        """Log the failure; send a 500 if no response started yet."""
        self._log_failure(exc)
        if self.started:
            return
        try:
            await self.send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": _ERROR_HEADERS,
                }
            )
            await self.send(
                {"type": "http.response.body", "body": _ERROR_BODY}
            )
        except OSError:
            # The client left while the error was being reported to it.
            pass

    def _log_failure(self, exc: Exception) -> None:
        fields: dict[str, Any] = {"method": self.scope.get("method")}
        route = route_template(self.scope)
        if route is not None:
            fields["route"] = route
        fields["path"] = printable(self.scope.get("path", ""), MAX_PATH)
        fields["status"] = self.response_status if self.started else 500
        if self.ended is not None:
            fields["after_response"] = True
        logger = get_unified_logger(_LOGGER, "api")
        logger.error("request.failed", exc_info=exc, **fields)

    def status(self) -> int | None:
        """The status of the response the server got, or ``None``."""
        return self.response_status if self.delivered else None

    def outcome(self) -> str:
        """How the exchange ended, as the summary's ``outcome``."""
        if self.failed:
            return "error"
        if self.disconnected or self.cancelled:
            return "client_disconnected"
        if self.interrupted:
            return "cancelled"
        status = self.status()
        if self.ended is None or status is None or status >= 500:
            return "error"
        return "ok"

    def summarise(self, summary: dict[str, Any] | None) -> None:
        """Write ``request.completed`` unless this is a quiet excluded path."""
        self.summarised = True
        end = self.ended if self.ended is not None else time.perf_counter()
        duration = end - self.start
        status = self.status()
        outcome = self.outcome()
        failing = outcome == "error" or (status is not None and status >= 500)
        slow = duration > _state.config().thresholds.get("api", 0.1)
        if self.excluded:
            if not failing and duration <= self.owner.excluded_slow_threshold:
                return
            slow = True
        head: dict[str, Any] = {"method": self.scope.get("method")}
        route = route_template(self.scope)
        if route is not None:
            head["route"] = route
        head["path"] = printable(self.scope.get("path", ""), MAX_PATH)
        head["status"] = status
        head["duration_ms"] = round(duration * 1000, 3)
        head["bytes_in"] = self.bytes_in
        head["bytes_out"] = self.bytes_out
        head["outcome"] = outcome
        self.common_fields(head)
        _write(head, summary, self, _WARNING if failing or slow else _INFO)


class WebSocketSession(Flow):
    """One WebSocket session: counts messages, ends in ``websocket.closed``."""

    __slots__ = ("client_left", "close_code", "messages_in", "messages_out")

    def __init__(
        self,
        owner: LoggingMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        incoming: Incoming,
    ) -> None:
        super().__init__(owner, scope, receive, send, incoming)
        self.excluded = False
        self.messages_in = 0
        self.messages_out = 0
        self.close_code: int | None = None
        self.client_left = False

    async def receive(self) -> Message:
        """Count messages and note the client's close code."""
        message = await self._receive()
        kind = message.get("type")
        if kind == "websocket.receive":
            self.messages_in += 1
        elif kind == "websocket.disconnect":
            self.client_left = True
            self.close_code = message.get("code", 1005)
        return message

    async def send(self, message: Message) -> None:
        """Count messages; put the correlation header on the handshake."""
        kind = message.get("type")
        if kind == "websocket.send":
            self.messages_out += 1
        elif kind in ("websocket.accept", "websocket.http.response.start"):
            message = self.id_header(message)
        elif kind == "websocket.close":
            self.close_code = message.get("code", 1000)
        await self._send(message)

    def gone(self) -> bool:
        """Whether the client closed the socket before the handler failed."""
        return self.client_left

    async def failed_with(self, exc: Exception) -> None:
        """Log the failure of the socket handler."""
        fields: dict[str, Any] = {}
        route = route_template(self.scope)
        if route is not None:
            fields["route"] = route
        fields["path"] = printable(self.scope.get("path", ""), MAX_PATH)
        logger = get_unified_logger(_LOGGER, "api")
        logger.error("websocket.failed", exc_info=exc, **fields)

    def summarise(self, summary: dict[str, Any] | None) -> None:
        """Write ``websocket.closed``."""
        self.summarised = True
        if self.failed:
            outcome = "error"
        elif self.interrupted:
            outcome = "cancelled"
        elif self.cancelled or self.error is not None:
            outcome = "client_disconnected"
        else:
            outcome = "ok"
        head: dict[str, Any] = {}
        route = route_template(self.scope)
        if route is not None:
            head["route"] = route
        head["path"] = printable(self.scope.get("path", ""), MAX_PATH)
        head["duration_ms"] = round(
            (time.perf_counter() - self.start) * 1000, 3
        )
        head["messages_in"] = self.messages_in
        head["messages_out"] = self.messages_out
        head["close_code"] = self.close_code
        head["outcome"] = outcome
        self.common_fields(head)
        level = _WARNING if self.failed else _INFO
        _write(head, summary, self, level, event="websocket.closed")


def _write(
    head: dict[str, Any],
    summary: dict[str, Any] | None,
    flow: Flow,
    level: int,
    event: str = "request.completed",
) -> None:
    if summary is None:
        summary = build_summary(flow.ctx)
    emit_summary(
        summary, flow.ctx, event=event, level=level, logger=_LOGGER, extra=head
    )


def _outlive(ctx: RequestContext, exc: BaseException) -> None:
    """Keep the record of an exception that escapes to the server.

    The server logs the exception after the request has ended. Found in
    the process-wide history, that echo refers to the record instead of
    repeating the traceback.
    """
    history = ctx.error_context
    record = history.find(exc) if history is not None else None
    if record is not None:
        _process_errors.adopt(record)


def _observe_start(flow: Flow) -> tuple[tuple[RequestObserver, Any], ...]:
    observed = []
    for observer in flow.owner.observers:
        try:
            observed.append((observer, observer.started(flow.scope, flow.ctx)))
        except Exception as exc:
            _diagnostics.report("observer", "a request observer failed", exc)
    return tuple(observed)


def _observe_end(flow: Flow) -> None:
    observed, flow.observed = flow.observed, ()
    status = flow.status()
    for observer, state in reversed(observed):
        try:
            observer.finished(state, status, flow.error)
        except Exception as exc:
            _diagnostics.report("observer", "a request observer failed", exc)
