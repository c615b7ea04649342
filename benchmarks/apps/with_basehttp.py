"""A BaseHTTPMiddleware that binds a request id and logs one structlog line.

The common recipe: ``@app.middleware("http")`` takes or makes a request
id, binds it with structlog's context variables, calls the route and
logs ``request.completed``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request, Response

from benchmarks.apps._hello import make_app
from benchmarks.apps._structlog_line import request_logger

log = request_logger("basehttp")

app = make_app()


@app.middleware("http")
async def log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Bind a request id, call the route, log one line."""
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    start = time.perf_counter()
    try:
        response = await call_next(request)
        log.info(
            "request.completed",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
        )
    finally:
        structlog.contextvars.clear_contextvars()
    response.headers["X-Request-ID"] = request_id
    return response
