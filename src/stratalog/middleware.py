"""``LoggingMiddleware``: one request context and one summary per request.

Design note. This is a pure ASGI middleware: it wraps ``receive`` and
``send`` and never runs the application in a task of its own, so fields
set anywhere in the request land in the one shared
:class:`~stratalog.RequestContext` that the summary reads.

Three orderings matter:

- The summary is written when the last body byte has been handed to the
  server, so its duration stops there. Starlette runs background tasks
  after that, still inside the application call; the context stays set
  until the call returns, so those tasks keep the request's ids, and it is
  reset in ``finally`` with the token of its ``set``.
- Starlette's ``ServerErrorMiddleware`` sits outside every user middleware
  and builds the 500 for an unhandled exception after this middleware has
  returned, without our header. So when the application raises before a
  response started, the 500 is sent here, with the correlation header;
  ``ServerErrorMiddleware`` sees a response already started and sends
  nothing more. The exception is then re-raised for the server. Its
  handler for ``Exception`` still runs, but after the request ended and
  with its response discarded; wrapping the whole application instead
  (:func:`stratalog.asgi.instrument_app`) keeps that handler inside the
  request.
- A client that goes away is not an application error: a disconnect seen
  on ``receive``, an ``OSError`` from ``send`` or the task's cancellation
  ends the request as ``client_disconnected``, never at error level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import _diagnostics
from ._exchange import Flow, HttpExchange, WebSocketSession
from ._http import (
    ASGIApp,
    Incoming,
    Receive,
    RequestObserver,
    RequestReader,
    Scope,
    Send,
)
from .coordinator import LoggingCoordinator
from .exceptions import ConfigurationError
from .sessions import SessionService

__all__ = ["LoggingMiddleware", "RequestObserver"]


class LoggingMiddleware:
    """Give every HTTP request and WebSocket a request context and a summary.

    Wrap any ASGI application, or add it with
    ``app.add_middleware(LoggingMiddleware, ...)``. Lifespan and other
    scope types pass through untouched.

    For each HTTP request: the correlation id is taken from the first
    valid header of *correlation_headers* (else a new UUID4) and sent back
    on every response, in the header it came in on (else
    *response_header*); ``session_id`` comes from *session_header*, else
    the *session_cookie* cookie, else the *session_query* parameter;
    ``investigation_id`` from *investigation_header* or
    *investigation_query*. Ids must be 1 to 128 characters from
    ``[A-Za-z0-9._:-]``; others are dropped and mentioned, escaped and
    cut to 64 characters, in the summary's ``invalid_ids``. With a
    *session_service*, the user id is looked up within *lookup_budget*
    seconds (the service's own budget when ``None``).

    One ``request.completed`` line is written per request, at info
    (warning for a 5xx, a failure or a request slower than the api
    threshold); an unhandled exception also gets one ``request.failed``
    error line. Requests to *excluded_paths* get a context but no summary
    unless they fail or take longer than *excluded_slow_threshold*
    seconds, and make no session lookup. ``X-Forwarded-For`` is believed
    only from *trusted_proxies* (addresses, networks, or ``"*"``).
    *observers* are told when each request starts and finishes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        correlation_headers: Sequence[str] = (
            "X-Correlation-ID",
            "X-Request-ID",
        ),
        response_header: str = "X-Request-ID",
        session_header: str | None = "X-Session-ID",
        session_cookie: str | None = "session_id",
        session_query: str | None = "session_id",
        investigation_header: str | None = "X-Investigation-ID",
        investigation_query: str | None = "investigation_id",
        excluded_paths: Iterable[str] = ("/health", "/metrics"),
        excluded_slow_threshold: float = 1.0,
        trusted_proxies: Iterable[str] = (),
        session_service: SessionService | None = None,
        lookup_budget: float | None = None,
        coordinator: LoggingCoordinator | None = None,
        observers: Iterable[RequestObserver] = (),
    ) -> None:
        if isinstance(correlation_headers, str):
            correlation_headers = (correlation_headers,)
        _check_positive("excluded_slow_threshold", excluded_slow_threshold)
        if lookup_budget is not None:
            _check_positive("lookup_budget", lookup_budget)
        self.app = app
        self.reader = RequestReader(
            correlation_headers=correlation_headers,
            response_header=response_header,
            session_header=session_header,
            session_cookie=session_cookie,
            session_query=session_query,
            investigation_header=investigation_header,
            investigation_query=investigation_query,
            trusted_proxies=tuple(trusted_proxies),
        )
        self.excluded_paths = frozenset(excluded_paths)
        self.excluded_slow_threshold = excluded_slow_threshold
        self.session_service = session_service
        self.lookup_budget = lookup_budget
        self.coordinator = coordinator or LoggingCoordinator()
        self.observers = tuple(observers)

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Handle one ASGI connection."""
        kind = scope["type"]
        if kind == "http":
            flow = self._open(HttpExchange, scope, receive, send)
        elif kind == "websocket":
            flow = self._open(WebSocketSession, scope, receive, send)
        else:
            flow = None
        if flow is None:
            await self.app(scope, receive, send)
            return
        try:
            if self.observers:
                flow.observe()
            if flow.lookup_wanted():
                await flow.look_up_user()
            await self.app(scope, flow.receive, flow.send)
        except BaseException as exc:
            await flow.fail(exc)
            raise
        finally:
            flow.close()

    def _open(
        self,
        flow: type[Flow],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> Flow | None:
        try:
            incoming = self.reader.read(scope)
        except Exception as exc:
            _diagnostics.report("middleware", "headers were unreadable", exc)
            incoming = Incoming()
        try:
            return flow(self, scope, receive, send, incoming)
        except Exception as exc:
            _diagnostics.report(
                "middleware", "a request ran without logging", exc
            )
            return None


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(name, value, "a positive number of seconds")
