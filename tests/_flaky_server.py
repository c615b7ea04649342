"""A real HTTP/1.1 server on 127.0.0.1 that misbehaves on request.

Each path follows a script of replies, one per request, the last one
repeating: a delayed 200, any status with any headers (500, 429 with
Retry-After), a connection reset in the middle of a response (SO_LINGER 0,
so the peer gets an RST), or a hang that never answers. The server runs
its own event loop in a thread, so the tests' loop talks to it over real
sockets, and it records every request with its arrival time.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType

__all__ = ["FlakyServer", "Reply", "Seen", "hang", "ok", "reset", "status"]

_RST = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    kind: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b'{"ok": true}'
    delay: float = 0.0


def ok(body: bytes = b'{"ok": true}', delay: float = 0.0) -> Reply:
    """Answer 200 with *body* after *delay* seconds."""
    return Reply("respond", body=body, delay=delay)


def status(code: int, **headers: str) -> Reply:
    """Answer *code* with *headers* (``retry_after`` is ``Retry-After``)."""
    named = tuple(
        (name.replace("_", "-").title(), value)
        for name, value in headers.items()
    )
    return Reply("respond", status=code, headers=named, body=b"{}")


def reset() -> Reply:
    """Start a response, then reset the connection."""
    return Reply("reset")


def hang() -> Reply:
    """Read the request and never answer."""
    return Reply("hang")


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class FlakyServer:
    """The server; use it as a context manager, then ``url(path)``."""

    def __init__(self) -> None:
        self._scripts: dict[str, list[Reply]] = {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> FlakyServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the flaky server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of *path* on this server."""
        return f"{self.base_url}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer requests to *path* with *replies* in turn."""
        with self._lock:
            self._scripts[path] = list(replies)

    def seen(self, path: str | None = None) -> list[Seen]:
        """Return the requests received (to *path*), oldest first."""
        with self._lock:
            return [s for s in self._seen if path in (None, s.path)]

    def count(self, path: str) -> int:
        """Return how many requests to *path* arrived."""
        return len(self.seen(path))

    # -- the server's own thread --------------------------------------------

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
            self._ready.set()
            loop.run_forever()
        finally:
            loop.close()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            seen = await _read_request(reader)
            if seen is None:
                return
            reply = self._next_reply(seen)
            if reply.kind == "hang":
                await reader.read()
                return
            if reply.kind == "reset":
                await _reset(writer)
                return
            if reply.delay:
                await asyncio.sleep(reply.delay)
            writer.write(_response(reply))
            await writer.drain()

    def _next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self._seen.append(seen)
            replies = self._scripts.get(seen.path)
            if not replies:
                return ok()
            return replies.pop(0) if len(replies) > 1 else replies[0]


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return Seen(method, target.split("?", 1)[0], headers)


def _response(reply: Reply) -> bytes:
    reason = HTTPStatus(reply.status).phrase
    lines = [
        f"HTTP/1.1 {reply.status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(reply.body)}",
        *(f"{name}: {value}" for name, value in reply.headers),
    ]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + reply.body


async def _reset(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b'{"partial'
    )
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
    writer.transport.abort()
