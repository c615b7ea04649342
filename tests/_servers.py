"""Real servers on loopback for the tests, and fixtures that start them.

- :class:`UvicornThread` serves an ASGI app with uvicorn in a thread;
- :class:`RedisServer` runs ``redis-server`` without persistence;
- :class:`SilentServer` accepts connections and never answers;
- :class:`BlackHole` is a port whose accept queue is full, so new
  connection attempts get no answer at all (SYNs are dropped);
- :func:`refused_port` is a port nobody listens on.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

__all__ = [
    "BlackHole",
    "RedisServer",
    "SilentServer",
    "UvicornThread",
    "free_port",
    "redis_server",
    "refused_port",
]

_START_TIMEOUT = 10.0


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refused_port() -> int:
    """Return a loopback port with nothing listening: connects are refused."""
    return free_port()


def _wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in time")
        time.sleep(0.01)


class UvicornThread:
    """Serve *app* with uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            log_config=None,
            lifespan="on",
            ws="none",
            **options,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """The base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        # A uvicorn server run outside the main thread installs no signal
        # handlers, so the test process keeps its own.
        self.thread.start()
        _wait_until(lambda: self.server.started, "uvicorn")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(_START_TIMEOUT)


class RedisServer:
    """A ``redis-server`` on a loopback port, stopped and started at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL for a client."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run `make services`")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(self._answers, "redis-server")

    def stop(self) -> None:
        """Stop the server; connections to its port are refused after."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(_START_TIMEOUT)
            self.process = None

    def _answers(self) -> bool:
        try:
            return self.command("PING") == b"+PONG\r\n"
        except OSError:
            return False

    def command(self, *words: str) -> bytes:
        """Send one command and return the raw reply."""
        request = f"*{len(words)}\r\n".encode()
        for word in words:
            data = word.encode()
            request += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), 1.0) as conn:
            conn.sendall(request)
            return _read_reply(conn)

    def calls(self, command: str) -> int:
        """Return how often *command* ran since the server started."""
        stats = self.command("INFO", "commandstats").decode()
        marker = f"cmdstat_{command.lower()}:calls="
        for line in stats.splitlines():
            if line.startswith(marker):
                return int(line[len(marker) :].split(",", 1)[0])
        return 0


def _read_reply(conn: socket.socket) -> bytes:
    reply = conn.recv(65536)
    if reply.startswith(b"$"):
        header, _, rest = reply.partition(b"\r\n")
        size = int(header[1:])
        while len(rest) < size + 2:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return rest[:size]
    return reply


class SilentServer:
    """Accept TCP connections and never send a byte."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.listener.close()
        for conn in self.accepted:
            conn.close()


class BlackHole:
    """A port that takes no new connections and refuses none: SYNs vanish.

    The listener never accepts and its accept queue is filled by one
    connection of our own, after which Linux drops further SYNs.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = int(self.listener.getsockname()[1])
        self.filler = socket.create_connection(("127.0.0.1", self.port), 1.0)

    def close(self) -> None:
        """Release the port."""
        self.filler.close()
        self.listener.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Yield a running ``redis-server`` of the test's own."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
