"""LoggingMiddleware: one context and one summary line per request."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import stratalog
from _servers import UvicornThread
from stratalog import _diagnostics
from stratalog.context import request_context
from stratalog.exceptions import ConfigurationError
from stratalog.middleware import LoggingMiddleware
from stratalog.sessions import InMemorySessionStore, SessionService
from stratalog.testing import MemorySink

log = stratalog.get_unified_logger("tests.app", "api")

UUID4 = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


# -- helpers ----------------------------------------------------------------


def records(
    sink: MemorySink, event: str | None = None
) -> list[dict[str, Any]]:
    """Return the sink's lines, or those of one event."""
    found = sink.records()
    return (
        found if event is None else [r for r in found if r["event"] == event]
    )


def wait_for_summaries(
    sink: MemorySink, count: int = 1, event: str = "request.completed"
) -> list[dict[str, Any]]:
    """Wait until *count* lines of *event* were written by a server thread.

    The server writes the summary right after handing the last byte over,
    so the client may see the response a moment before the line exists.
    """
    deadline = time.monotonic() + 5.0
    while len(found := records(sink, event)) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return found


def wait_for_lines(
    sink: MemorySink, wanted: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Wait until a server thread wrote a line that is *wanted*."""
    deadline = time.monotonic() + 5.0
    while not (found := [r for r in sink.records() if wanted(r)]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return found


def server_lines(sink: MemorySink) -> list[dict[str, Any]]:
    """Return the lines the server side wrote (not the test's client)."""
    return [
        line
        for line in sink.records()
        if line["logger"].startswith(("tests.", "stratalog.", "uvicorn"))
    ]


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
) -> dict[str, Any]:
    """Build an HTTP scope by hand, headers exactly as given."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers or [],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }


class Peer:
    """A scripted client for direct ASGI calls.

    ``receive`` gives the request body once, then waits until the
    response is complete or the client is told to disconnect. With
    *strict*, ``send`` raises ``OSError`` once disconnected, as ASGI 2.4
    servers do.
    """

    def __init__(self, body: bytes = b"", *, strict: bool = False) -> None:
        self.body = body
        self.strict = strict
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.complete = asyncio.Event()
        self.first_chunk = asyncio.Event()
        self.receives = 0
        self._body_sent = False

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body}
        waiters = [
            asyncio.ensure_future(self.gone.wait()),
            asyncio.ensure_future(self.complete.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.strict and self.gone.is_set():
            raise OSError("the client went away")
        self.messages.append(message)
        if message["type"] == "http.response.body":
            if message.get("body"):
                self.first_chunk.set()
            if not message.get("more_body", False):
                self.complete.set()

    def starts(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "http.response.start"]

    @property
    def status(self) -> int:
        return int(self.starts()[0]["status"])

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.starts()[0].get("headers", []):
            if key.lower() == name:
                return bytes(value)
        return None

    @property
    def sent_body(self) -> bytes:
        return b"".join(
            m.get("body", b"")
            for m in self.messages
            if m["type"] == "http.response.body"
        )


async def call(
    app: Any, scope: dict[str, Any], peer: Peer | None = None
) -> Peer:
    """Run one request through *app*; app exceptions propagate."""
    peer = peer or Peer()
    await app(scope, peer.receive, peer.send)
    return peer


# -- the application used over a real server ---------------------------------


def bind_user() -> None:
    stratalog.bind(user_id="u-sync")


async def bind_session() -> None:
    stratalog.bind(session_id="s-async")


async def authenticate() -> None:
    stratalog.bind(user_id="u-77")


def build_app() -> FastAPI:
    """Build the FastAPI app that every real-server test talks to."""
    app = FastAPI()
    items = APIRouter(dependencies=[Depends(bind_user), Depends(bind_session)])

    @items.get("/items/{item_id}")
    def get_item(item_id: str) -> dict[str, str]:
        log.info("item.read")
        return {"id": item_id}

    @items.get("/items-async/{item_id}")
    async def get_item_async(item_id: str) -> dict[str, str]:
        log.info("item.read")
        return {"id": item_id}

    app.include_router(items)

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        log.info("plain.read")
        return {}

    @app.post("/orders", dependencies=[Depends(authenticate)])
    async def create_order() -> dict[str, bool]:
        stratalog.bind(order_id="o-9")
        return {"ok": True}

    @app.post("/orders-sync", dependencies=[Depends(authenticate)])
    def create_order_sync() -> dict[str, bool]:
        stratalog.bind(order_id="o-9")
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> None:
        1 / 0  # noqa: B018

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418)

    cases = APIRouter(prefix="/cases")

    @cases.get("/{case_id}")
    async def get_case(case_id: str) -> dict[str, str]:
        return {"id": case_id}

    app.include_router(cases)
    return app


async def passthrough(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    return await call_next(request)


def with_order(app: FastAPI, order: str) -> FastAPI:
    """Add the middleware alone, or inside/outside a passthrough."""
    if order == "inner-passthrough":
        app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    app.add_middleware(LoggingMiddleware)
    if order == "outer-passthrough":
        app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornThread]:
    """A uvicorn server running the test app with the middleware."""
    with UvicornThread(with_order(build_app(), "alone")) as running:
        yield running


@pytest.fixture(
    scope="module", params=["alone", "inner-passthrough", "outer-passthrough"]
)
def ordered_server(request: pytest.FixtureRequest) -> Iterator[UvicornThread]:
    """The test app with the middleware in each of three orders."""
    with UvicornThread(with_order(build_app(), request.param)) as running:
        yield running


# -- C01, C02: fields set anywhere reach the lines and the summary ----------


@pytest.mark.parametrize("path", ["/items/1", "/items-async/1"])
def test_fields_from_sync_and_async_dependencies_reach_every_line(
    server: UvicornThread, sink: MemorySink, path: str
) -> None:
    """A sync dependency's field survives its thread (C01)."""
    with httpx.Client(base_url=server.url) as client:
        response = client.get(path, headers={"X-Request-ID": "req-0001"})
    assert response.status_code == 200
    (summary,) = wait_for_summaries(sink)
    (line,) = records(sink, "item.read")
    for record in (line, summary):
        assert record["correlation_id"] == "req-0001"
        assert record["user_id"] == "u-sync"
        assert record["session_id"] == "s-async"


def test_a_request_without_the_dependencies_has_none_of_their_fields(
    server: UvicornThread, sink: MemorySink
) -> None:
    """Fields bound in one request never leak into the next (C01)."""
    with httpx.Client(base_url=server.url) as client:
        client.get("/items/1", headers={"X-Request-ID": "req-0001"})
        client.get("/plain")
    summaries = wait_for_summaries(sink, 2)
    (line,) = records(sink, "plain.read")
    for record in (line, summaries[1]):
        assert "user_id" not in record
        assert "session_id" not in record
        assert record["correlation_id"] != "req-0001"


@pytest.mark.parametrize("path", ["/orders", "/orders-sync"])
def test_the_summary_sees_fields_bound_in_dependency_and_endpoint(
    ordered_server: UvicornThread, sink: MemorySink, path: str
) -> None:
    """With BaseHTTPMiddleware inside or outside, one full summary (C02)."""
    with httpx.Client(base_url=ordered_server.url) as client:
        response = client.post(
            path, content=b"{}", headers={"X-Request-ID": "ord-1"}
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "ord-1"
    summaries = wait_for_summaries(sink)
    time.sleep(0.05)
    assert records(sink, "request.completed") == summaries
    (summary,) = summaries
    assert summary["correlation_id"] == "ord-1"
    assert summary["user_id"] == "u-77"
    assert summary["attributes"]["order_id"] == "o-9"
    assert summary["method"] == "POST"
    assert summary["path"] == path
    assert summary["route"] == path
    assert summary["status"] == 200
    assert summary["duration_ms"] > 0
    assert summary["outcome"] == "ok"
    assert summary["level"] == "info"


# -- C04: valid ids are kept byte for byte -----------------------------------


@pytest.mark.parametrize(
    "incoming",
    [
        "611AEE7D-1206-4E03-A2A6-97C238D982FD",
        "c10f7ebebd95e5bb8749430d3485370c",
        "01HZX3V9K6Q8M2T4B7N5R1C0DE",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    ],
)
def test_valid_ids_are_kept_verbatim(
    server: UvicornThread, sink: MemorySink, incoming: str
) -> None:
    """Upper case, no hyphens, ULIDs: all echoed and logged as sent (C04)."""
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/items/1", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    wait_for_summaries(sink)
    lines = server_lines(sink)
    assert {line.get("correlation_id") for line in lines} == {incoming}
    assert all("invalid_ids" not in line for line in lines)
    assert b"invalid" not in b"".join(sink.lines)


def test_the_id_goes_back_in_the_header_it_came_in(
    server: UvicornThread, sink: MemorySink
) -> None:
    """X-Correlation-ID comes back as X-Correlation-ID, and wins."""
    with httpx.Client(base_url=server.url) as client:
        response = client.get(
            "/plain",
            headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "req-1"},
        )
    assert response.headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in response.headers
    (summary,) = wait_for_summaries(sink)
    assert summary["correlation_id"] == "corr-1"


def test_a_request_without_an_id_gets_a_new_uuid4(
    server: UvicornThread, sink: MemorySink
) -> None:
    """The new id is echoed in X-Request-ID and used on the lines."""
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/plain")
    made = response.headers["x-request-id"]
    assert UUID4.match(made)
    (summary,) = wait_for_summaries(sink)
    assert summary["correlation_id"] == made


def test_a_route_of_an_included_router_is_logged_as_its_template(
    server: UvicornThread, sink: MemorySink
) -> None:
    """The summary's route is the template with the router's prefix."""
    with httpx.Client(base_url=server.url) as client:
        client.get("/cases/42")
    (summary,) = wait_for_summaries(sink)
    assert summary["route"] == "/cases/{case_id}"
    assert summary["path"] == "/cases/42"


# -- C06: the id on 500s and exactly one error record ------------------------


def test_an_unhandled_exception_gets_a_500_with_the_id(
    server: UvicornThread, sink: MemorySink
) -> None:
    """The 500 carries the id; one error record, one summary (C06)."""
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/boom", headers={"X-Request-ID": "err-42"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "err-42"
    assert response.text == "Internal Server Error"
    (summary,) = wait_for_summaries(sink)
    (echo,) = wait_for_lines(sink, lambda r: r["logger"] == "uvicorn.error")
    (failure,) = records(sink, "request.failed")
    assert failure["level"] == "error"
    assert failure["correlation_id"] == "err-42"
    assert "ZeroDivisionError" in failure["exception"]
    with_traceback = [r for r in records(sink) if "exception" in r]
    assert with_traceback == [failure]
    assert echo["propagated"] is True
    assert echo["error_id"] == failure["error_id"]
    assert summary["status"] == 500
    assert summary["error"] is True
    assert summary["outcome"] == "error"
    assert summary["correlation_id"] == "err-42"
    assert summary["level"] == "warning"


def test_responses_of_exception_handlers_carry_the_id(
    server: UvicornThread, sink: MemorySink
) -> None:
    """An HTTPException's response gets the header and no error line."""
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/teapot", headers={"X-Request-ID": "tea-1"})
    assert response.status_code == 418
    assert response.headers["x-request-id"] == "tea-1"
    (summary,) = wait_for_summaries(sink)
    assert summary["status"] == 418
    assert summary["outcome"] == "ok"
    assert records(sink, "request.failed") == []


def streaming_failure_app() -> FastAPI:
    app = FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            yield b"first"
            raise RuntimeError("the stream broke")

        return StreamingResponse(chunks())

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("outermost")

    return app


async def test_a_stream_failing_midway_starts_no_second_response(
    sink: MemorySink,
) -> None:
    """Status 200 already sent stays; the summary says error (C06)."""
    app = streaming_failure_app()
    app.add_middleware(LoggingMiddleware)
    peer = Peer()
    headers = [(b"x-request-id", b"err-43")]
    with pytest.raises(RuntimeError, match="the stream broke"):
        await call(app, http_scope("/stream", headers=headers), peer)
    assert len(peer.starts()) == 1
    assert peer.status == 200
    assert peer.header(b"x-request-id") == b"err-43"
    (summary,) = records(sink, "request.completed")
    assert summary["status"] == 200
    assert summary["outcome"] == "error"
    assert summary["bytes_out"] == 5
    assert summary["level"] == "warning"
    (failure,) = records(sink, "request.failed")
    assert "the stream broke" in failure["exception"]


async def test_outermost_the_server_error_response_gets_the_id(
    sink: MemorySink,
) -> None:
    """Wrapping the whole app, Starlette's own 500 passes through us."""
    app = LoggingMiddleware(streaming_failure_app())
    peer = Peer()
    headers = [(b"x-request-id", b"err-44")]
    with pytest.raises(ValueError, match="outermost"):
        await call(app, http_scope("/boom", headers=headers), peer)
    assert len(peer.starts()) == 1
    assert peer.status == 500
    assert peer.header(b"x-request-id") == b"err-44"
    (summary,) = records(sink, "request.completed")
    assert summary["status"] == 500
    assert len(records(sink, "request.failed")) == 1


async def test_an_error_logged_inside_gives_a_short_failure_line(
    sink: MemorySink,
) -> None:
    """The cascade rule: the traceback is written once, deepest first."""
    service = stratalog.get_unified_logger("tests.service", "service")

    async def endpoint(request: Request) -> Response:
        async with service.operation("load"):
            raise KeyError("missing")

    app = LoggingMiddleware(Starlette(routes=[Route("/load", endpoint)]))
    with pytest.raises(KeyError):
        await call(app, http_scope("/load"))
    (inner,) = records(sink, "operation.failed")
    (outer,) = records(sink, "request.failed")
    assert "exception" in inner
    assert "exception" not in outer
    assert outer["propagated"] is True
    assert outer["error_id"] == inner["error_id"]


# -- C05: hostile ids are rejected, never echoed raw -------------------------

HOSTILE = [
    pytest.param(
        b'ok-1\r\n{"level":"error","event":"admin.login","user_id":"root"}',
        id="crlf-forged-line",
    ),
    pytest.param(b"\x1b[2J\x1b[31mFAKE\x1b[0m", id="ansi"),
    pytest.param(b"a" * 16384, id="16kb"),
    pytest.param(b"abc\x00def", id="nul"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
]


def hostile_app() -> Starlette:
    async def ok(request: Request) -> Response:
        log.info("handled")
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", ok)])


def assert_clean(lines: list[bytes], raw: bytes, longest: int = 64) -> None:
    """No raw value, no control bytes, every line one JSON object.

    No run of the value longer than *longest* appears either.
    """
    text = b"".join(lines)
    assert raw not in text
    assert b"a" * (longest + 1) not in text
    for line in lines:
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        for byte in (b"\x1b", b"\x00", b"\r"):
            assert byte not in line
        assert isinstance(orjson.loads(line), dict)


@pytest.mark.parametrize("raw", HOSTILE)
@pytest.mark.parametrize(
    "header",
    [b"x-request-id", b"x-correlation-id", b"x-session-id", b"user-agent"],
)
async def test_a_hostile_header_is_rejected_and_never_echoed(
    sink: MemorySink, raw: bytes, header: bytes
) -> None:
    """Each value is replaced or escaped; the request still works (C05)."""
    app = LoggingMiddleware(hostile_app())
    peer = await call(app, http_scope(headers=[(header, raw)]))
    assert peer.status == 200
    echoed = peer.header(b"x-request-id") or peer.header(b"x-correlation-id")
    assert echoed is not None
    assert UUID4.match(echoed.decode())
    assert_clean(sink.lines, raw, 256 if header == b"user-agent" else 64)
    (summary,) = records(sink, "request.completed")
    assert summary["correlation_id"] == echoed.decode()
    assert "session_id" not in summary
    for mention in summary.get("invalid_ids", {}).values():
        assert len(mention) <= 64
    assert sum(len(line) for line in sink.lines) < 8_000


@pytest.mark.parametrize("raw", HOSTILE)
async def test_hostile_cookie_and_query_session_ids_are_rejected(
    sink: MemorySink, raw: bytes
) -> None:
    """The cookie and the query string are checked like headers (C05)."""
    app = LoggingMiddleware(hostile_app())
    headers = [(b"cookie", b"theme=dark; session_id=" + raw)]
    await call(app, http_scope(headers=headers, query=b"session_id=" + raw))
    assert_clean(sink.lines, raw)
    (summary,) = records(sink, "request.completed")
    assert "session_id" not in summary


async def test_a_rejected_id_is_mentioned_escaped_once(
    sink: MemorySink,
) -> None:
    """One field of the summary names the source and an escaped prefix."""
    app = LoggingMiddleware(hostile_app())
    raw = b"\x1b[31mred\r\nnext"
    await call(app, http_scope(headers=[(b"x-request-id", raw)]))
    (summary,) = records(sink, "request.completed")
    assert summary["invalid_ids"] == {"x-request-id": "\\x1b[31mred\\r\\nnext"}
    assert sum(b"invalid_ids" in line for line in sink.lines) == 1


@pytest.mark.parametrize("raw", HOSTILE)
async def test_console_output_has_no_escape_from_user_data(
    raw: bytes,
) -> None:
    """The console renderer gets no raw ESC from a header (C05)."""
    sink = MemorySink()
    stratalog.configure(sink=sink, format="console", level="debug")
    app = LoggingMiddleware(hostile_app())
    await call(
        app, http_scope(headers=[(b"x-request-id", raw), (b"user-agent", raw)])
    )
    assert sink.lines
    assert b"\x1b" not in b"".join(sink.lines)
    assert raw not in b"".join(sink.lines)


async def test_a_hostile_path_is_escaped(sink: MemorySink) -> None:
    """A percent-decoded path with control characters is escaped."""
    app = LoggingMiddleware(hostile_app())
    await call(app, http_scope("/\x1b[2J\r\nx"))
    (summary,) = records(sink, "request.completed")
    assert summary["path"] == "/\\x1b[2J\\r\\nx"
    assert_clean(sink.lines, b"\x1b[2J")


def test_the_user_agent_is_cut_to_256_characters(
    server: UvicornThread, sink: MemorySink
) -> None:
    """A long user agent costs the line at most 256 characters."""
    with httpx.Client(base_url=server.url) as client:
        client.get("/plain", headers={"User-Agent": "x" * 5000})
    (summary,) = wait_for_summaries(sink)
    assert summary["user_agent"] == "x" * 256


# -- C09: disconnects and cancellation ---------------------------------------

CHUNK = b"x" * 65536


def download_app(*, wrappers: int = 0, delay: float = 0.05) -> Any:
    """A 10 x 64 KB download; the chunks are produced inside an operation."""
    core = stratalog.get_unified_logger("tests.download", "core")

    async def download(request: Request) -> Response:
        async def chunks() -> Any:
            async with core.operation("stream"):
                for _ in range(10):
                    yield CHUNK
                    await asyncio.sleep(delay)

        return StreamingResponse(chunks())

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.2)
        return PlainTextResponse("late")

    app: Any = Starlette(
        routes=[Route("/download", download), Route("/slow", slow)]
    )
    for _ in range(wrappers):
        app = BaseHTTPMiddleware(app, dispatch=passthrough)
    return LoggingMiddleware(app)


def assert_disconnected(sink: MemorySink, status: int | None) -> None:
    (summary,) = records(sink, "request.completed")
    assert summary["outcome"] == "client_disconnected"
    assert summary["status"] == status
    assert summary["level"] != "error"
    assert summary["duration_ms"] > 0
    assert not [r for r in records(sink) if r["level"] == "error"]
    assert not [r for r in records(sink) if "exception" in r]


async def test_a_disconnect_mid_stream_is_not_an_error(
    sink: MemorySink,
) -> None:
    """receive() says http.disconnect after the first chunk (C09 A)."""
    app = download_app()
    peer = Peer()
    task = asyncio.create_task(call(app, http_scope("/download"), peer))
    await peer.first_chunk.wait()
    peer.gone.set()
    await asyncio.wait_for(task, 5)
    assert_disconnected(sink, 200)
    (summary,) = records(sink, "request.completed")
    assert summary["bytes_out"] == len(peer.sent_body) == 65536
    assert records(sink, "operation.cancelled")


async def test_a_cancelled_request_is_logged_and_cancellation_re_raised(
    sink: MemorySink,
) -> None:
    """The task is cancelled after the first chunk (C09 B)."""
    app = download_app()
    peer = Peer()
    task = asyncio.create_task(call(app, http_scope("/download"), peer))
    await peer.first_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_disconnected(sink, 200)
    (summary,) = records(sink, "request.completed")
    assert summary["bytes_out"] == 65536
    assert summary["cancelled"] is True
    (cancelled,) = records(sink, "operation.cancelled")
    assert cancelled["operation"] == "stream"


async def test_a_disconnect_before_the_response_behind_base_middlewares(
    sink: MemorySink,
) -> None:
    """Five BaseHTTPMiddleware inside; the client leaves first (C09 C)."""
    app = download_app(wrappers=5)
    peer = Peer(strict=True)
    task = asyncio.create_task(call(app, http_scope("/slow"), peer))
    await asyncio.sleep(0.05)
    peer.gone.set()
    with pytest.raises(OSError, match="went away"):
        await asyncio.wait_for(task, 5)
    assert_disconnected(sink, None)
    assert peer.messages == []


async def test_a_client_gone_while_the_body_is_read(sink: MemorySink) -> None:
    """The endpoint's ClientDisconnect is the client's doing, not an error."""

    async def upload(request: Request) -> Response:
        await request.body()
        return PlainTextResponse("stored")

    class Leaving(Peer):
        async def receive(self) -> dict[str, Any]:
            self.receives += 1
            if self.receives == 1:
                return {
                    "type": "http.request",
                    "body": b"ab",
                    "more_body": True,
                }
            return {"type": "http.disconnect"}

    app = LoggingMiddleware(
        Starlette(routes=[Route("/up", upload, methods=["POST"])])
    )
    with pytest.raises(ClientDisconnect):
        await call(app, http_scope("/up", method="POST"), Leaving())
    assert_disconnected(sink, None)
    (summary,) = records(sink, "request.completed")
    assert summary["bytes_in"] == 2


# -- the summary's timing and the context's life ------------------------------


async def test_background_tasks_keep_the_ids_after_the_summary(
    sink: MemorySink,
) -> None:
    """The summary is written at the last byte; the task logs with ids."""
    app = FastAPI()
    app.add_middleware(LoggingMiddleware)

    async def later() -> None:
        await asyncio.sleep(0.5)
        log.info("background.ran")

    @app.get("/work")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(later)
        return {"queued": True}

    headers = [(b"x-request-id", b"bg-1")]
    await call(app, http_scope("/work", headers=headers))
    summary, ran = (
        r
        for r in records(sink)
        if r["event"] in ("request.completed", "background.ran")
    )
    assert summary["event"] == "request.completed"
    assert summary["duration_ms"] < 500
    assert ran["event"] == "background.ran"
    assert ran["correlation_id"] == "bg-1"
    assert request_context.get() is None


async def test_tasks_started_in_a_request_keep_its_ids(
    sink: MemorySink,
) -> None:
    """A task outliving the response still logs with the request's id."""
    started: list[asyncio.Task[None]] = []

    async def later() -> None:
        await asyncio.sleep(0.05)
        log.info("task.ran")

    async def spawn(request: Request) -> Response:
        started.append(asyncio.create_task(later()))
        return PlainTextResponse("spawned")

    app = LoggingMiddleware(Starlette(routes=[Route("/spawn", spawn)]))
    await call(app, http_scope("/spawn", headers=[(b"x-request-id", b"t-1")]))
    await started[0]
    (line,) = records(sink, "task.ran")
    assert line["correlation_id"] == "t-1"


async def test_the_context_is_reset_to_what_it_was(sink: MemorySink) -> None:
    """An outer request context comes back after the inner request."""
    coordinator = stratalog.LoggingCoordinator()
    outer = coordinator.start_request(correlation_id="outer-1")
    app = LoggingMiddleware(hostile_app())
    await call(app, http_scope())
    assert request_context.get() is outer
    coordinator.end_request(outer)


async def test_exactly_one_summary_for_each_request(sink: MemorySink) -> None:
    """Many requests, one line each, each with its own id."""
    app = LoggingMiddleware(hostile_app())
    await asyncio.gather(
        *(
            call(app, http_scope(headers=[(b"x-request-id", b"r-%d" % n)]))
            for n in range(20)
        )
    )
    summaries = records(sink, "request.completed")
    assert sorted(s["correlation_id"] for s in summaries) == sorted(
        f"r-{n}" for n in range(20)
    )


async def test_a_slow_request_is_a_warning(sink: MemorySink) -> None:
    """Slower than the api threshold: the summary is a warning."""
    stratalog.configure(sink=sink, format="json", thresholds={"api": 0.01})

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.03)
        return PlainTextResponse("slow")

    app = LoggingMiddleware(Starlette(routes=[Route("/slow", slow)]))
    await call(app, http_scope("/slow"))
    (summary,) = records(sink, "request.completed")
    assert summary["level"] == "warning"
    assert summary["outcome"] == "ok"


async def test_a_5xx_response_is_a_warning_without_an_error_line(
    sink: MemorySink,
) -> None:
    """A handled 503 is warned about in the summary only."""

    async def busy(request: Request) -> Response:
        return JSONResponse({"busy": True}, status_code=503)

    app = LoggingMiddleware(Starlette(routes=[Route("/busy", busy)]))
    await call(app, http_scope("/busy"))
    (summary,) = records(sink, "request.completed")
    assert summary["level"] == "warning"
    assert summary["status"] == 503
    assert records(sink, "request.failed") == []


async def test_bytes_in_and_out_are_counted(sink: MemorySink) -> None:
    """Request body bytes read by the app and response bytes sent."""

    async def echo(request: Request) -> Response:
        return Response(await request.body())

    app = LoggingMiddleware(
        Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    )
    await call(app, http_scope("/echo", method="POST"), Peer(b"x" * 1000))
    (summary,) = records(sink, "request.completed")
    assert summary["bytes_in"] == 1000
    assert summary["bytes_out"] == 1000


# -- excluded paths ----------------------------------------------------------


def health_app() -> Starlette:
    async def health(request: Request) -> Response:
        mode = request.query_params.get("mode")
        if mode == "down":
            return PlainTextResponse("down", status_code=503)
        if mode == "slow":
            await asyncio.sleep(0.06)
        log.info("health.checked")
        return PlainTextResponse("up")

    return Starlette(routes=[Route("/health", health)])


async def test_an_excluded_path_has_no_summary(sink: MemorySink) -> None:
    """A healthy /health writes no summary but keeps its context."""
    app = LoggingMiddleware(health_app())
    peer = await call(app, http_scope("/health"))
    assert peer.header(b"x-request-id")
    assert records(sink, "request.completed") == []
    (line,) = records(sink, "health.checked")
    assert line["correlation_id"] == peer.header(b"x-request-id").decode()


@pytest.mark.parametrize("mode", [b"mode=down", b"mode=slow"])
async def test_an_excluded_path_is_summarised_when_failing_or_slow(
    sink: MemorySink, mode: bytes
) -> None:
    """A 5xx or a slow health check still gets its summary."""
    app = LoggingMiddleware(health_app(), excluded_slow_threshold=0.05)
    await call(app, http_scope("/health", query=mode))
    (summary,) = records(sink, "request.completed")
    assert summary["level"] == "warning"


# -- ids from the session, investigation and proxies -------------------------


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        pytest.param(
            [(b"x-session-id", b"s-head"), (b"cookie", b"session_id=s-c")],
            b"session_id=s-q",
            "s-head",
            id="header-first",
        ),
        pytest.param(
            [(b"cookie", b'a=1; session_id="s-cookie"; b=2')],
            b"session_id=s-q",
            "s-cookie",
            id="cookie-second",
        ),
        pytest.param([], b"x=1&session_id=s%3Aq", "s:q", id="query-last"),
        pytest.param(
            [(b"x-session-id", b"bad value")],
            b"session_id=s-q",
            "s-q",
            id="invalid-skipped",
        ),
    ],
)
async def test_the_session_id_comes_from_header_cookie_or_query(
    sink: MemorySink,
    headers: list[tuple[bytes, bytes]],
    query: bytes,
    expected: str,
) -> None:
    """The first valid source wins: header, cookie, then query."""
    app = LoggingMiddleware(hostile_app())
    await call(app, http_scope(headers=headers, query=query))
    (summary,) = records(sink, "request.completed")
    assert summary["session_id"] == expected


async def test_names_of_the_sources_are_configurable(sink: MemorySink) -> None:
    """Other header, cookie and query names are read when configured."""
    app = LoggingMiddleware(
        hostile_app(),
        correlation_headers=("X-Trace-Ref",),
        response_header="X-Trace-Ref",
        session_header=None,
        session_cookie="sid",
        investigation_query="case",
    )
    headers = [
        (b"x-trace-ref", b"ref-1"),
        (b"x-session-id", b"ignored"),
        (b"cookie", b"sid=s-9"),
    ]
    peer = await call(app, http_scope(headers=headers, query=b"case=inv-3"))
    assert peer.header(b"x-trace-ref") == b"ref-1"
    (summary,) = records(sink, "request.completed")
    assert summary["correlation_id"] == "ref-1"
    assert summary["session_id"] == "s-9"
    assert summary["investigation_id"] == "inv-3"


async def test_the_middleware_never_reads_the_body(sink: MemorySink) -> None:
    """Ids come from headers, cookies and the query only."""

    async def quiet(request: Request) -> Response:
        return PlainTextResponse("no read")

    app = LoggingMiddleware(
        Starlette(routes=[Route("/", quiet, methods=["POST"])])
    )
    peer = Peer(b"session_id=s-body")
    await call(app, http_scope(method="POST"), peer)
    assert peer.receives == 0
    (summary,) = records(sink, "request.completed")
    assert "session_id" not in summary


@pytest.mark.parametrize(
    ("trusted", "client", "forwarded", "expected"),
    [
        pytest.param((), "10.0.0.1", b"1.2.3.4", "10.0.0.1", id="untrusted"),
        pytest.param(
            ("10.0.0.1",), "10.0.0.1", b"1.2.3.4", "1.2.3.4", id="trusted"
        ),
        pytest.param(
            ("10.0.0.0/8",),
            "10.0.0.1",
            b"6.6.6.6, 1.2.3.4, 10.0.0.7",
            "1.2.3.4",
            id="chain-of-proxies",
        ),
        pytest.param(
            ("10.0.0.1",),
            "10.0.0.1",
            b"\x1b[31m",
            "10.0.0.1",
            id="malformed",
        ),
        pytest.param(
            ("10.0.0.1",), "10.0.0.2", b"1.2.3.4", "10.0.0.2", id="other"
        ),
    ],
)
async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    sink: MemorySink,
    trusted: tuple[str, ...],
    client: str,
    forwarded: bytes,
    expected: str,
) -> None:
    """X-Forwarded-For is read right to left, up to the first stranger."""
    app = LoggingMiddleware(hostile_app(), trusted_proxies=trusted)
    headers = [(b"x-forwarded-for", forwarded)]
    await call(app, http_scope(headers=headers, client=(client, 1)))
    (summary,) = records(sink, "request.completed")
    assert summary["client_ip"] == expected


async def test_the_user_is_looked_up_for_a_session(sink: MemorySink) -> None:
    """With a session service, the user id joins every line."""
    store = InMemorySessionStore()
    await store.set("s-1", {"user_id": "u-1"})
    app = LoggingMiddleware(
        hostile_app(), session_service=SessionService(store)
    )
    await call(app, http_scope(headers=[(b"x-session-id", b"s-1")]))
    (handled,) = records(sink, "handled")
    (summary,) = records(sink, "request.completed")
    assert handled["user_id"] == summary["user_id"] == "u-1"


class CountingStore:
    """A session store that counts its lookups."""

    def __init__(self) -> None:
        self.calls = 0

    async def get(self, session_id: str) -> dict[str, Any] | None:
        self.calls += 1
        return {"user_id": "u-2"}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/", [], id="no-session-id"),
        pytest.param("/health", [(b"x-session-id", b"s-1")], id="excluded"),
    ],
)
async def test_no_lookup_without_a_session_id_or_on_excluded_paths(
    sink: MemorySink, path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """The store is not asked when there is nothing to ask about."""
    store = CountingStore()
    app = LoggingMiddleware(
        hostile_app(), session_service=SessionService(store)
    )
    await call(app, http_scope(path, headers=headers))
    assert store.calls == 0


# -- other scopes, observers, configuration ----------------------------------


async def test_lifespan_passes_through_untouched() -> None:
    """The app gets the server's own receive and send for lifespan."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend([scope, receive, send])

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await LoggingMiddleware(app)(scope, receive, send)
    assert seen == [scope, receive, send]


async def run_socket(
    app: Any,
    incoming: list[dict[str, Any]],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> list[dict[str, Any]]:
    """Drive a WebSocket handler with *incoming* messages; return sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("/ws", headers=headers)
    scope.update(type="websocket", scheme="ws", subprotocols=[])
    del scope["method"]
    await app(scope, receive, send)
    return sent


async def test_a_websocket_gets_a_context_and_one_closing_line(
    sink: MemorySink,
) -> None:
    """Messages write no summary each; the close writes one line."""

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            log.info("message.echoed")
            await websocket.send_text(text)

    app = LoggingMiddleware(Starlette(routes=[WebSocketRoute("/ws", echo)]))
    incoming = [
        {"type": "websocket.connect"},
        *({"type": "websocket.receive", "text": f"m{n}"} for n in range(3)),
        {"type": "websocket.disconnect", "code": 1000},
    ]
    headers = [(b"x-request-id", b"ws-1")]
    sent = await run_socket(app, incoming, headers)
    assert (b"x-request-id", b"ws-1") in sent[0]["headers"]
    assert records(sink, "request.completed") == []
    echoed = records(sink, "message.echoed")
    assert [line["correlation_id"] for line in echoed] == ["ws-1"] * 3
    (closed,) = records(sink, "websocket.closed")
    assert closed["correlation_id"] == "ws-1"
    assert closed["messages_in"] == closed["messages_out"] == 3
    assert closed["close_code"] == 1000
    assert closed["route"] == "/ws"
    assert closed["outcome"] == "ok"


class Recorder:
    """A request observer that records what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def started(self, scope: Any, ctx: Any) -> str:
        self.events.append(("started", scope["path"], ctx.correlation_id))
        return "state"

    def finished(
        self, state: Any, status: int | None, exc: BaseException | None
    ) -> None:
        self.events.append(("finished", state, status, type(exc).__name__))


class Broken:
    """An observer that fails at every call."""

    def started(self, scope: Any, ctx: Any) -> None:
        raise RuntimeError("observer down")

    def finished(self, *args: Any) -> None:
        raise RuntimeError("observer down")


async def test_observers_are_told_of_start_and_finish(
    sink: MemorySink,
) -> None:
    """A failing observer costs nothing but a diagnostic."""
    recorder = Recorder()
    app = LoggingMiddleware(
        streaming_failure_app(), observers=[Broken(), recorder]
    )
    with pytest.raises(ValueError, match="outermost"):
        await call(
            app, http_scope("/boom", headers=[(b"x-request-id", b"o-1")])
        )
    assert recorder.events == [
        ("started", "/boom", "o-1"),
        ("finished", "state", 500, "ValueError"),
    ]
    assert _diagnostics.counts()["observer"] == 1


async def test_an_internal_failure_leaves_the_request_alone(
    sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the headers cannot be read, the request is served anyway."""
    app = LoggingMiddleware(hostile_app())

    class BrokenReader:
        def read(self, scope: Any) -> None:
            raise RuntimeError("reader bug")

    monkeypatch.setattr(app, "reader", BrokenReader())
    peer = await call(app, http_scope())
    assert peer.status == 200
    assert _diagnostics.counts()["middleware"] == 1
    (summary,) = records(sink, "request.completed")
    assert UUID4.match(summary["correlation_id"])


def test_a_mounted_application_logs_the_full_template() -> None:
    """Routes inside a Mount get the mount's path in front."""
    from stratalog._http import route_template

    inner = Route("/items/{item_id}", hostile_app())
    scope: dict[str, Any] = {
        "route": inner,
        "root_path": "/api/v1",
        "app_root_path": "/api",
    }
    assert route_template(scope) == "/v1/items/{item_id}"
    mount = Mount("/static", app=hostile_app())
    assert route_template({"route": mount, "root_path": "/static"}) == (
        "/static/{path}"
    )
    assert route_template({}) is None


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"correlation_headers": ("bad header",)}, id="header"),
        pytest.param({"session_cookie": "a;b"}, id="cookie"),
        pytest.param({"trusted_proxies": ("not-an-ip",)}, id="proxy"),
        pytest.param({"lookup_budget": 0}, id="budget"),
        pytest.param({"excluded_slow_threshold": -1}, id="threshold"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    """Each setting is checked when the middleware is built."""
    with pytest.raises(ConfigurationError):
        LoggingMiddleware(hostile_app(), **options)


# -- where the middleware sits relative to Starlette's error handler ---------


def handled_app() -> FastAPI:
    """An app whose handler for Exception logs and answers in JSON."""
    app = FastAPI()

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled", error_type=type(exc).__name__)
        return JSONResponse({"detail": "custom"}, status_code=500)

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("handled outside")

    return app


async def test_outermost_the_exception_handler_runs_inside_the_request(
    sink: MemorySink,
) -> None:
    """Wrapping the app, the handler's line and response get the id."""
    app = LoggingMiddleware(handled_app())
    peer = Peer()
    headers = [(b"x-request-id", b"h-1")]
    with pytest.raises(ValueError, match="handled outside"):
        await call(app, http_scope("/fail", headers=headers), peer)
    assert peer.header(b"x-request-id") == b"h-1"
    assert orjson.loads(peer.sent_body) == {"detail": "custom"}
    (line,) = records(sink, "unhandled")
    assert line["correlation_id"] == "h-1"
    assert len(peer.starts()) == 1


async def test_a_trace_id_added_by_a_processor_reaches_the_summary() -> None:
    """The seam for tracing: processors see the summary like any line."""

    def add_trace(logger: Any, method: str, event: dict[str, Any]) -> Any:
        event["trace_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
        return event

    sink = MemorySink()
    stratalog.configure(sink=sink, format="json", processors=[add_trace])
    await call(LoggingMiddleware(hostile_app()), http_scope())
    (summary,) = records(sink, "request.completed")
    assert summary["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_failing_socket_handler_is_an_error(sink: MemorySink) -> None:
    """A bug in the handler: one error line, the closing line warns."""

    async def broken(websocket: WebSocket) -> None:
        await websocket.accept()
        raise LookupError("socket bug")

    app = LoggingMiddleware(Starlette(routes=[WebSocketRoute("/ws", broken)]))
    with pytest.raises(LookupError):
        await run_socket(app, [{"type": "websocket.connect"}])
    (failure,) = records(sink, "websocket.failed")
    assert "socket bug" in failure["exception"]
    (closed,) = records(sink, "websocket.closed")
    assert closed["outcome"] == "error"
    assert closed["level"] == "warning"


async def test_a_client_leaving_a_socket_is_not_an_error(
    sink: MemorySink,
) -> None:
    """The handler's WebSocketDisconnect after the client left is no bug."""

    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        await websocket.receive_text()

    app = LoggingMiddleware(Starlette(routes=[WebSocketRoute("/ws", reader)]))
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.disconnect", "code": 1001},
    ]
    with pytest.raises(WebSocketDisconnect):
        await run_socket(app, incoming)
    assert records(sink, "websocket.failed") == []
    (closed,) = records(sink, "websocket.closed")
    assert closed["outcome"] == "client_disconnected"
    assert closed["close_code"] == 1001
    assert closed["level"] == "info"


async def test_secrets_in_the_path_and_user_agent_are_redacted(
    sink: MemorySink,
) -> None:
    """Request values in the summary pass the redactor; numbers stay."""
    app = LoggingMiddleware(hostile_app())
    secret = "sk-abcdefghijklmnopqrstuvwx"
    scope = http_scope(
        f"/keys/{secret}",
        headers=[(b"user-agent", f"bot Bearer {secret}".encode())],
    )

    await call(app, scope)

    (summary,) = records(sink, "request.completed")
    assert secret not in b"".join(sink.lines).decode()
    assert summary["path"] == "/keys/[REDACTED]"
    assert summary["status"] == 404
