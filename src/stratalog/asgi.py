"""Put :class:`~stratalog.LoggingMiddleware` around a whole application.

Design note. Starlette and FastAPI build their middleware stack on the
first call: ``ServerErrorMiddleware`` outermost, then the middlewares
given to ``add_middleware``, then the router. The handler of
``@app.exception_handler(Exception)`` runs inside ``ServerErrorMiddleware``,
so a ``LoggingMiddleware`` added the usual way has already ended the
request (its context, its span) when that handler logs, and the
handler's line has no correlation id and no trace id.

:func:`instrument_app` wraps ``app.build_middleware_stack`` instead, so
the middleware encloses the stack as built, error middleware included:
the handler's lines keep the request's ids, its response carries the
correlation header, and the server span ends after the last byte of the
response. FastAPI's own request span (when it has a tracer provider)
starts outside the stack; the server span observer then joins it rather
than starting a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import _state
from ._http import ASGIApp, RequestObserver

__all__ = ["instrument_app"]


class _Enclosing:
    """A ``build_middleware_stack`` that wraps the stack it builds."""

    def __init__(
        self, build: Callable[[], ASGIApp], options: dict[str, Any]
    ) -> None:
        self.build = build
        self.options = options

    def __call__(self) -> ASGIApp:
        from .middleware import LoggingMiddleware

        return LoggingMiddleware(self.build(), **self.options)


def instrument_app(
    app: Any,
    *,
    server_spans: bool | None = None,
    observers: Iterable[RequestObserver] = (),
    **options: Any,
) -> Any:
    """Log every request of *app* with the middleware outermost.

    For a Starlette or FastAPI application the middleware goes outside
    its error middleware (see the module notes) and *app* itself is
    returned; any other ASGI application comes back wrapped. *options*
    are :class:`~stratalog.LoggingMiddleware`'s keywords. With
    *server_spans* (by default: when OpenTelemetry is installed and
    ``LOG_TRACING`` is not ``off``) a
    :class:`~stratalog.tracing.ServerSpanObserver` comes first among the
    *observers*. Calling it again replaces the options.

    Raises RuntimeError once the application has built its stack (it
    has served a request or started), as ``add_middleware`` does.
    """
    chosen = [*_server_span_observers(server_spans), *observers]
    settings = {**options, "observers": chosen}
    build = getattr(app, "build_middleware_stack", None)
    if build is None:
        from .middleware import LoggingMiddleware

        return LoggingMiddleware(app, **settings)
    if getattr(app, "middleware_stack", None) is not None:
        raise RuntimeError(
            "Cannot instrument an application that has already started"
        )
    if isinstance(build, _Enclosing):
        build.options = settings
    else:
        app.build_middleware_stack = _Enclosing(build, settings)
    return app


def _server_span_observers(wanted: bool | None) -> list[RequestObserver]:
    if wanted is False:
        return []
    if wanted is None and _state.config().tracing == "off":
        return []
    try:
        from ._server_span import ServerSpanObserver
    except ImportError:
        if wanted:
            from .tracing import _missing

            raise _missing("server_spans") from None
        return []
    return [ServerSpanObserver()]
