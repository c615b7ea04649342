"""The buffered output across real processes: signals, fork, exit, kill."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.slow

PRELUDE = """\
import os, signal, sys, time
import orjson
from stratalog import output
from stratalog.output import AsyncLogBuffer, FileDestination


def line(n, event="test.line", **fields):
    record = {"event": event, "n": n, **fields}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
"""


class Child:
    """A Python child running PRELUDE then a body; its output read aside."""

    def __init__(self, tmp_path: Path, body: str, *args: str) -> None:
        script = tmp_path / "child.py"
        script.write_text(PRELUDE + textwrap.dedent(body))
        self.process = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._err: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self._lines.put(text)
        self._lines.put("")

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        self._err.put(self.process.stderr.read())

    def expect(self, timeout: float = 20.0) -> str:
        """Return the child's next line of output; fail after *timeout*."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            pytest.fail(f"the child said nothing; stderr: {self.stderr()}")

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the child to end, killing it past *timeout*."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stderr(self) -> str:
        """Return everything the child wrote to stderr, once it ended."""
        self.finish()
        return self._err.get(timeout=20)

    def close(self) -> None:
        """Kill the child if it still runs and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def rest(self) -> str:
        """Return the child's remaining output, once it ended."""
        self.finish()
        lines = []
        while (text := self._lines.get(timeout=20)) != "":
            lines.append(text)
        return "".join(lines)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start children for a test; kill any it leaves running."""
    started: list[Child] = []

    def make(body: str, *args: str) -> Child:
        child = Child(tmp_path, body, *args)
        started.append(child)
        return child

    yield make
    for child in started:
        child.close()


def records(path: Path) -> list[dict[str, Any]]:
    """Parse every line of *path*; fail on any line that is not JSON."""
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]


def events(path: Path) -> list[str]:
    """Return the event names in *path*, in order."""
    return [record["event"] for record in records(path)]


def numbers(path: Path) -> list[int]:
    """Return the ``n`` of every test line in *path*."""
    return [r["n"] for r in records(path) if r["event"] == "test.line"]


def test_sigterm_mid_stream_writes_every_line_then_dies(
    spawn: Any, tmp_path: Path
) -> None:
    """A SIGTERM while logging flushes every line, then ends the process."""
    path = tmp_path / "app.log"
    child = spawn(
        """
        buffer = AsyncLogBuffer(
            buffer_size=100_000,
            flush_interval=10,
            destinations=[FileDestination(sys.argv[1])],
        )
        output.install_signal_handlers()
        n = 0
        while n < 2_000_000:
            buffer.write(line(n), 20)
            n += 1
            if n == 1000:
                print("ready", flush=True)
            if n % 100 == 0:
                time.sleep(0.001)
        """,
        str(path),
    )
    assert child.expect() == "ready\n"

    child.process.send_signal(signal.SIGTERM)

    assert child.finish() == -signal.SIGTERM
    found = numbers(path)
    assert len(found) >= 1000
    assert found == list(range(len(found)))


def test_sigterm_runs_the_handler_it_replaced(
    spawn: Any, tmp_path: Path
) -> None:
    """The application's own SIGTERM handler still runs, after the flush.

    Installing twice does not make the handler call itself.
    """
    path = tmp_path / "app.log"
    child = spawn(
        """
        buffer = AsyncLogBuffer(
            flush_interval=10, destinations=[FileDestination(sys.argv[1])]
        )

        def stop(signum, frame):
            buffer.write(line(10, "app.stopping"), 20)
            sys.exit(0)

        signal.signal(signal.SIGTERM, stop)
        output.install_signal_handlers()
        output.install_signal_handlers()
        for n in range(10):
            buffer.write(line(n), 20)
        print("ready", flush=True)
        time.sleep(30)
        """,
        str(path),
    )
    assert child.expect() == "ready\n"

    child.process.send_signal(signal.SIGTERM)

    assert child.finish() == 0
    assert child.stderr() == ""
    assert events(path) == ["test.line"] * 10 + ["app.stopping"]


def test_sigint_still_raises_keyboard_interrupt(
    spawn: Any, tmp_path: Path
) -> None:
    """SIGINT flushes, then Python's own handler interrupts as usual."""
    path = tmp_path / "app.log"
    child = spawn(
        """
        buffer = AsyncLogBuffer(
            flush_interval=10, destinations=[FileDestination(sys.argv[1])]
        )
        output.install_signal_handlers()
        for n in range(10):
            buffer.write(line(n), 20)
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt:
            print(len(open(sys.argv[1]).readlines()), flush=True)
            raise
        """,
        str(path),
    )
    assert child.expect() == "ready\n"

    child.process.send_signal(signal.SIGINT)

    assert child.finish() == -signal.SIGINT
    assert child.rest() == "10\n"
    assert "KeyboardInterrupt" in child.stderr()
    assert numbers(path) == list(range(10))


def test_forked_writers_never_interleave_lines(
    spawn: Any, tmp_path: Path
) -> None:
    """4 forked processes append 2,000 lines of 100 B to 70 KB each."""
    path = tmp_path / "shared.log"
    child = spawn(
        """
        import random

        buffer = AsyncLogBuffer(
            buffer_size=200,
            flush_interval=0.05,
            destinations=[FileDestination(sys.argv[1])],
        )
        workers = []
        for worker in range(4):
            pid = os.fork()
            if pid == 0:
                sizes = random.Random(worker)
                for n in range(2000):
                    size = int(100 * 700 ** sizes.random())
                    pad = "x" * max(size - 40, 1)
                    buffer.write(line(n, w=worker, pad=pad), 20)
                os._exit(0 if output.shutdown(30) else 1)
            workers.append(pid)
        for pid in workers:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        """,
        str(path),
    )

    assert child.finish() == 0, child.stderr()
    found = records(path)
    seen = {(r["w"], r["n"]) for r in found}
    assert len(found) == len(seen) == 4 * 2000
    assert seen == {(w, n) for w in range(4) for n in range(2000)}
    sizes = sorted(len(r["pad"]) for r in found)
    assert sizes[0] < 100
    assert sizes[-1] > 60_000


def test_a_forked_child_never_writes_its_parents_lines(
    spawn: Any, tmp_path: Path
) -> None:
    """Lines queued before fork are written once, by the parent only."""
    shared = tmp_path / "shared.log"
    child = spawn(
        """
        buffer = AsyncLogBuffer(
            buffer_size=100_000,
            flush_interval=10,
            destinations=[
                FileDestination(sys.argv[1]),
                FileDestination(sys.argv[2]),
            ],
        )
        buffer.write(line(0, who="parent"), 20)
        assert buffer.flush(5)
        for n in range(1, 100):
            buffer.write(line(n, who="parent"), 20)
        pid = os.fork()
        if pid == 0:
            for n in range(10):
                buffer.write(line(n, who="child"), 20)
            os._exit(0 if output.shutdown(5) else 1)
        sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
        str(shared),
        str(tmp_path / "own-{pid}.log"),
    )

    assert child.finish() == 0, child.stderr()
    both = records(shared)
    assert [r["n"] for r in both if r["who"] == "parent"] == list(range(100))
    assert [r["n"] for r in both if r["who"] == "child"] == list(range(10))
    own = [records(p) for p in sorted(tmp_path.glob("own-*.log"))]
    assert sorted(len(found) for found in own) == [10, 100]
    assert all(len({r["who"] for r in found}) == 1 for found in own)


MULTIPROCESSING_APP = """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

os.environ.update(
    LOG_FILE=sys.argv[1], LOG_OUTPUT="", LOG_FORMAT="json",
    LOG_FLUSH_INTERVAL="30", LOG_HANDLE_SIGNALS="false",
)
import stratalog

if sys.argv[3] == "at-import":
    stratalog.configure()
log = stratalog.get_unified_logger("test", "core")


def work(task):
    for n in range(50):
        log.info("test.line", who=task, n=n)


if __name__ == "__main__":
    for n in range(50):
        log.info("test.line", who="parent", n=n)
    method, start = sys.argv[2].split("-")
    context = multiprocessing.get_context(method)
    tasks = ["task-0", "task-1", "task-2"]
    if start == "process":
        children = [context.Process(target=work, args=(t,)) for t in tasks]
        for child in children:
            child.start()
        for child in children:
            child.join()
            assert child.exitcode == 0
    else:
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            list(pool.map(work, tasks))
"""


@pytest.mark.parametrize(
    ("start", "configured"),
    [
        pytest.param("fork-process", "at-import", id="process-fork"),
        pytest.param("fork-pool", "at-import", id="pool-fork"),
        pytest.param("forkserver-pool", "at-import", id="pool-forkserver"),
        pytest.param(
            "forkserver-pool", "at-first-line", id="pool-forkserver-lazy"
        ),
    ],
)
def test_multiprocessing_children_write_every_line(
    spawn: Any, tmp_path: Path, start: str, configured: str
) -> None:
    """Lines of multiprocessing children are written though they skip atexit.

    Three tasks, in their own processes or in a pool's two workers, log 50
    lines each; every line reaches the file once, and the 50 lines the
    parent had queued before forking are written by the parent alone.
    """
    path = tmp_path / "app.log"
    child = spawn(MULTIPROCESSING_APP, str(path), start, configured)

    assert child.finish() == 0, child.stderr()
    found: dict[str, list[int]] = {}
    for record in records(path):
        found.setdefault(record["who"], []).append(record["n"])
    expected = ["parent", "task-0", "task-1", "task-2"]
    assert found == {who: list(range(50)) for who in expected}


def test_returning_from_main_writes_every_record(
    spawn: Any, tmp_path: Path
) -> None:
    """No explicit shutdown and a 10 s interval: exit still writes all 50."""
    path = tmp_path / "app.log"
    child = spawn(
        """
        from stratalog.config import LoggingConfig

        buffer = output.build_output(
            LoggingConfig(outputs=(), file=sys.argv[1], flush_interval=10)
        )


        def main():
            for n in range(50):
                buffer.write(line(n), 20)


        main()
        """,
        str(path),
    )

    assert child.finish() == 0
    assert child.stderr() == ""
    assert numbers(path) == list(range(50))


def test_late_lines_at_exit_are_written_without_noise(
    spawn: Any, tmp_path: Path
) -> None:
    """A later atexit hook and a __del__ log after shutdown, silently.

    Late lines are written synchronously; stderr stays empty and the exit
    code is the program's own.
    """
    path = tmp_path / "app.log"
    child = spawn(
        """
        import atexit


        def bye():
            buffer.write(line(5, "bye"), 20)


        atexit.register(bye)  # before stratalog's hook, so it runs after
        buffer = AsyncLogBuffer(
            flush_interval=10, destinations=[FileDestination(sys.argv[1])]
        )


        class Noisy:
            def __init__(self, buffer):
                self.buffer = buffer

            def __del__(self):
                self.buffer.write(b'{"event": "del"}\\n', 20)


        noisy = Noisy(buffer)
        for n in range(5):
            buffer.write(line(n), 20)
        sys.exit(3)
        """,
        str(path),
    )

    assert child.finish() == 3
    assert child.stderr() == ""
    assert events(path) == ["test.line"] * 5 + ["bye", "del"]


def test_sigkill_loses_at_most_one_flush_interval(
    spawn: Any, tmp_path: Path
) -> None:
    """Records older than one flush interval survive SIGKILL, all whole."""
    path = tmp_path / "app.log"
    child = spawn(
        """
        buffer = AsyncLogBuffer(
            flush_interval=0.2, destinations=[FileDestination(sys.argv[1])]
        )
        for n in range(50):
            buffer.write(line(n), 20)
        print("logged", flush=True)
        time.sleep(30)
        """,
        str(path),
    )
    assert child.expect() == "logged\n"
    time.sleep(0.5)

    child.process.kill()

    assert child.finish() == -signal.SIGKILL
    assert path.read_bytes().endswith(b"\n")
    assert numbers(path) == list(range(50))


def test_a_dead_stdout_cannot_hold_exit(tmp_path: Path) -> None:
    """Exit waits at most shutdown_timeout for a pipe nobody reads."""
    script = tmp_path / "child.py"
    script.write_text(
        PRELUDE
        + textwrap.dedent(
            """
            buffer = AsyncLogBuffer(buffer_size=10, shutdown_timeout=0.5)
            for n in range(2000):
                buffer.write(line(n, pad="x" * 1000), 20)
            """
        )
    )
    started = time.monotonic()
    with subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        try:
            returncode = child.wait(timeout=20)
        finally:
            child.kill()
        elapsed = time.monotonic() - started
        assert child.stderr is not None
        err = child.stderr.read().decode()

    assert returncode == 0
    assert 0.5 <= elapsed < 10
    assert "did not finish in time" in err


UVICORN_APP = """
import asyncio, socket
import uvicorn
from stratalog.config import LoggingConfig

buffer = output.build_output(
    LoggingConfig(outputs=(), file=sys.argv[1], flush_interval=10)
)
output.install_signal_handlers()


def log(event, **fields):
    buffer.write(line(0, event, **fields), 20)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            if kind == "startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                log("app.stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return
    log("request.started", path=scope["path"])
    print("in flight", flush=True)
    await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
    log("request.completed", status=200, duration_ms=500)


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, lifespan="on", log_level="warning")
uvicorn.Server(config).run(sockets=[sock])
"""


def test_sigterm_under_uvicorn_keeps_the_in_flight_request(
    spawn: Any, tmp_path: Path
) -> None:
    """The request in flight at SIGTERM finishes and its lines are written."""
    path = tmp_path / "app.log"
    child = spawn(UVICORN_APP, str(path))
    port = int(child.expect())
    url = f"http://127.0.0.1:{port}/slow"
    replies: list[bytes] = []

    def request() -> None:
        with urllib.request.urlopen(url, timeout=20) as response:
            replies.append(response.read())

    client = threading.Thread(target=request)
    client.start()
    assert child.expect() == "in flight\n"

    child.process.send_signal(signal.SIGTERM)
    client.join(20)

    assert replies == [b"done"]
    assert child.finish() == -signal.SIGTERM
    assert events(path) == [
        "request.started",
        "request.completed",
        "app.stopped",
    ]
