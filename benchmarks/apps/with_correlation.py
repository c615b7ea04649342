"""asgi-correlation-id plus one structlog line per request.

The line is written by a small pure ASGI middleware inside
``CorrelationIdMiddleware``: it binds the correlation id into
structlog's context variables and logs ``request.completed`` with the
method, path, status and duration once the response is sent.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id

from benchmarks.apps._hello import make_app
from benchmarks.apps._structlog_line import request_logger

log = request_logger("correlation")


class RequestLine:
    """Log one structlog line per HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=correlation_id.get())
        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "request.completed",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
            )
            structlog.contextvars.clear_contextvars()


app = make_app()
app.add_middleware(RequestLine)
app.add_middleware(CorrelationIdMiddleware)
