"""The buffered output: timing, destinations, overflow, failures, stalls."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stratalog
from stratalog import _diagnostics, output
from stratalog._overflow import Bound, shed
from stratalog.config import LoggingConfig
from stratalog.exceptions import ConfigurationError
from stratalog.logger import get_unified_logger
from stratalog.output import (
    AsyncLogBuffer,
    FileDestination,
    StreamDestination,
    build_output,
)


def line(number: int, level: str = "info", pad: int = 0) -> bytes:
    """Render a small JSON line carrying *number*."""
    record = {"event": "test.line", "n": number, "level": level}
    if pad:
        record["pad"] = "x" * pad
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def records(*paths: Path) -> list[dict[str, Any]]:
    """Parse every non-empty line of *paths*, in order."""
    found = []
    for path in paths:
        for raw in path.read_bytes().splitlines():
            if raw.strip():
                found.append(orjson.loads(raw))
    return found


def numbers(*paths: Path) -> list[int]:
    """Return the ``n`` of every test line in *paths*."""
    return [r["n"] for r in records(*paths) if r.get("event") == "test.line"]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *condition* until it holds or *timeout* passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Buffers:
    """Make buffers for a test and close them all afterwards."""

    def __init__(self) -> None:
        self.made: list[AsyncLogBuffer] = []
        self.cleanups: list[Callable[[], None]] = []

    def make(self, *destinations: Any, **settings: Any) -> AsyncLogBuffer:
        buffer = AsyncLogBuffer(destinations=destinations, **settings)
        self.made.append(buffer)
        return buffer


@pytest.fixture
def buffers() -> Iterator[Buffers]:
    """Close every buffer a test made, then run its cleanups."""
    made = Buffers()
    yield made
    for buffer in made.made:
        buffer.close(1.0)
    for cleanup in made.cleanups:
        cleanup()


@pytest.fixture
def full_pipe(buffers: Buffers) -> Iterator[int]:
    """Yield the write end of a pipe that is full and never read.

    Closing the read end afterwards releases a writer blocked on it.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        while True:
            os.write(write_fd, b"\n" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(write_fd, True)
    buffers.cleanups.append(lambda: os.close(write_fd))
    yield write_fd
    os.close(read_fd)


class FullDisk:
    """A destination that fails with ENOSPC while ``full`` is set."""

    name = "full disk"

    def __init__(self) -> None:
        self.full = True
        self.lines: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.lines.extend(data.splitlines())

    def close(self) -> None:
        pass

    def after_fork(self) -> None:
        pass


def test_lines_reach_the_file_on_the_timer(
    buffers: Buffers, tmp_path: Path
) -> None:
    """A few lines are written after flush_interval without a new entry."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path), flush_interval=0.05)
    for number in range(3):
        buffer.write(line(number), 20)

    assert wait_until(lambda: path.exists() and len(numbers(path)) == 3)


def test_buffer_size_wakes_the_writer_before_the_timer(
    buffers: Buffers, tmp_path: Path
) -> None:
    """buffer_size waiting lines are written long before flush_interval."""
    path = tmp_path / "app.log"
    buffer = buffers.make(
        FileDestination(path), buffer_size=10, flush_interval=60
    )
    for number in range(10):
        buffer.write(line(number), 20)

    assert wait_until(lambda: path.exists() and len(numbers(path)) == 10)
    assert (buffer.buffer_size, buffer.flush_interval) == (10, 60)


def test_flush_writes_every_line_in_order(
    buffers: Buffers, tmp_path: Path
) -> None:
    """flush() returns True once every earlier line is in the file."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path), flush_interval=60)
    for number in range(5000):
        buffer.write(line(number), 20)

    assert buffer.flush(5.0)
    assert numbers(path) == list(range(5000))
    assert buffer.stats().written == 5000


def test_every_destination_gets_every_line(
    buffers: Buffers, tmp_path: Path
) -> None:
    """Two files and a pipe all receive the same lines."""
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    read_fd, write_fd = os.pipe()
    buffers.cleanups.extend(
        [lambda: os.close(read_fd), lambda: os.close(write_fd)]
    )
    buffer = buffers.make(
        FileDestination(first),
        StreamDestination(write_fd),
        FileDestination(second),
    )
    for number in range(100):
        buffer.write(line(number), 20)
    assert buffer.flush(5.0)

    piped = os.read(read_fd, 1 << 20).splitlines()
    assert [orjson.loads(raw)["n"] for raw in piped] == list(range(100))
    assert numbers(first) == numbers(second) == list(range(100))


def test_standard_streams_are_descriptors_one_and_two(
    buffers: Buffers, capfd: pytest.CaptureFixture[str]
) -> None:
    """build_output writes to file descriptors 1 and 2 as configured."""
    config = LoggingConfig(outputs=("stdout", "stderr"))
    buffer = build_output(config)
    buffers.made.append(buffer)
    buffer.write(line(7), 20)
    assert buffer.flush(5.0)

    captured = capfd.readouterr()
    assert orjson.loads(captured.out)["n"] == 7
    assert orjson.loads(captured.err)["n"] == 7


def test_build_output_follows_the_configuration(
    buffers: Buffers, tmp_path: Path
) -> None:
    """The file, rotation and buffer settings come from the config."""
    path = tmp_path / "logs" / "app.log"
    config = LoggingConfig(
        outputs=(),
        file=str(path),
        file_max_bytes=1000,
        file_backups=1,
        buffer_size=50,
        flush_interval=30,
        shutdown_timeout=2.0,
    )
    buffer = build_output(config)
    buffers.made.append(buffer)
    for number in range(40):
        buffer.write(line(number), 20)
    assert buffer.flush(5.0)

    assert (buffer.buffer_size, buffer.flush_interval) == (50, 30)
    assert buffer.shutdown_timeout == 2.0
    assert path.stat().st_size <= 1000
    assert numbers(Path(f"{path}.1"), path) == list(range(40))


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        pytest.param({"buffer_size": 0}, "buffer_size", id="no-buffer"),
        pytest.param(
            {"flush_interval": 0}, "flush_interval", id="no-interval"
        ),
        pytest.param({"max_pending": 0}, "max_pending", id="no-pending"),
        pytest.param({"overflow": "drop_all"}, "overflow", id="bad-policy"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], name: str) -> None:
    """A setting out of range raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as caught:
        AsyncLogBuffer(destinations=[], **settings)

    assert caught.value.variable == name


def test_bad_destinations_are_refused(tmp_path: Path) -> None:
    """Unknown stream names and negative rotation sizes are refused."""
    with pytest.raises(ConfigurationError):
        StreamDestination("printer")
    with pytest.raises(ConfigurationError):
        FileDestination(tmp_path / "a.log", max_bytes=-1)
    with pytest.raises(ConfigurationError):
        FileDestination(tmp_path / "a.log", backups=-1)


async def test_add_log_entry_renders_any_mapping(
    buffers: Buffers, tmp_path: Path
) -> None:
    """Entries holding values JSON rejects still become valid lines."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path))
    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    await buffer.add_log_entry({"event": "plain", "level": "warning"})
    await buffer.add_log_entry({"event": "keys", 1: "one", None: "none"})
    await buffer.add_log_entry({"event": "values", "tags": {"b", "a"}})
    await buffer.add_log_entry({"event": "big", "n": 2**80})
    await buffer.add_log_entry({"event": "odd", "what": object()})
    await buffer.add_log_entry({"event": "cycle", "data": cyclic})
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    await buffer.add_log_entry({"event": "time", "at": when})
    await buffer.add_log_entry(None)  # type: ignore[arg-type]  # a bad call
    assert buffer.flush(5.0)

    found = records(path)
    assert [r["event"] for r in found] == [
        "plain",
        "keys",
        "values",
        "big",
        "odd",
        "cycle",
        "time",
        "log.unrenderable",
    ]
    assert found[1]["1"] == "one"
    assert found[2]["tags"] == ["a", "b"]
    assert b'"n":1208925819614629174706176' in path.read_bytes()


def test_write_never_raises_on_bad_lines(
    buffers: Buffers, tmp_path: Path
) -> None:
    """Text is encoded, values without a length are counted as lost."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path))
    buffer.write('{"event":"test.line","n":1}\n', 20)  # type: ignore[arg-type]
    buffer.write(None, 20)  # type: ignore[arg-type]
    buffer.write(line(2), 20)
    assert buffer.flush(5.0)

    assert numbers(path) == [1, 2]
    assert buffer.stats().lost == 1


def test_a_full_pipe_never_blocks_the_caller(
    buffers: Buffers, full_pipe: int
) -> None:
    """With the destination stuck, writes return and flush/close time out."""
    buffer = buffers.make(StreamDestination(full_pipe), buffer_size=10)
    started = time.monotonic()
    for number in range(20_000):
        buffer.write(line(number), 20)
    written_in = time.monotonic() - started

    assert written_in < 2.0
    assert buffer.flush(0.2) is False
    started = time.monotonic()
    assert buffer.close(0.3) is False
    assert time.monotonic() - started < 2.0


def test_lines_after_a_timed_out_close_are_counted_as_lost(
    buffers: Buffers, full_pipe: int
) -> None:
    """A late line never waits on the dead destination; it is counted."""
    buffer = buffers.make(StreamDestination(full_pipe), buffer_size=1)
    buffer.write(line(0), 20)
    assert buffer.close(0.2) is False
    lost = buffer.stats().lost

    started = time.monotonic()
    buffer.write(line(1), 20)

    assert time.monotonic() - started < 0.5
    assert buffer.stats().lost == lost + 1
    assert _diagnostics.counts()["output.close_timed_out"] == 1


def test_lines_after_a_clean_close_are_written_synchronously(
    buffers: Buffers, tmp_path: Path
) -> None:
    """After close, write() puts the line in the file before returning."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path), flush_interval=60)
    buffer.write(line(0), 20)
    assert buffer.close(5.0)

    buffer.write(line(1), 20)

    assert numbers(path) == [0, 1]
    assert buffer.flush(0.0)
    assert buffer.close(0.0)


def test_lines_racing_a_reconfiguration_are_all_written(
    tmp_path: Path,
) -> None:
    """Lines logged while configure() replaces the output are all written.

    Threads that took the old pipeline just before the swap write to a
    buffer that is closing or closed; each such line is still written.
    """
    path = tmp_path / "app.log"
    settings: dict[str, Any] = {
        "format": "json",
        "outputs": (),
        "file": str(path),
        "overflow": "block",
        "handle_signals": False,
        # Yielding between taking the pipeline and writing the line makes
        # many lines land on a buffer while it closes.
        "processors": [_yield_thread],
    }
    stratalog.configure(**settings)
    log = get_unified_logger("test", "core")
    stop = threading.Event()
    counts = [0, 0, 0]

    def work(worker: int) -> None:
        number = 0
        while not stop.is_set():
            log.info("test.line", w=worker, n=number)
            number += 1
        counts[worker] = number

    workers = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(500):
            stratalog.configure(**settings)
            time.sleep(0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(10.0)
    assert stratalog.flush(10.0)

    found = records(path)
    for worker, count in enumerate(counts):
        written = sorted(r["n"] for r in found if r["w"] == worker)
        assert written == list(range(count))
    assert _diagnostics.counts() == {}


def _yield_thread(
    logger: Any, method: str, event: dict[str, Any]
) -> dict[str, Any]:
    time.sleep(0)
    return event


def test_module_flush_and_shutdown_reach_every_buffer(
    buffers: Buffers, tmp_path: Path
) -> None:
    """output.flush and output.shutdown act on all live buffers."""
    paths = [tmp_path / "a.log", tmp_path / "b.log"]
    made = [buffers.make(FileDestination(p), flush_interval=60) for p in paths]
    for buffer in made:
        buffer.write(line(1), 20)

    assert output.flush(5.0)
    assert [numbers(p) for p in paths] == [[1], [1]]

    for buffer in made:
        buffer.write(line(2), 20)
    assert output.shutdown(5.0)
    assert [numbers(p) for p in paths] == [[1, 2], [1, 2]]


def test_signal_handlers_are_only_installed_from_the_main_thread() -> None:
    """From another thread nothing changes and the call returns False."""
    before = signal.getsignal(signal.SIGTERM)
    answers: list[bool] = []
    thread = threading.Thread(
        target=lambda: answers.append(output.install_signal_handlers())
    )
    thread.start()
    thread.join(5.0)

    assert answers == [False]
    assert signal.getsignal(signal.SIGTERM) is before


def fill_then_release(buffer: AsyncLogBuffer, levels: list[int]) -> None:
    """Queue a line per level while the writer is stuck on a full pipe."""
    buffer.write(line(-1, pad=10), 20)
    assert buffer.flush(0.2) is False  # the writer now blocks in write
    for number, level in enumerate(levels):
        name = "warning" if level >= 30 else "info"
        buffer.write(line(number, name), level)


def read_pipe_until_flushed(
    buffer: AsyncLogBuffer, read_fd: int
) -> list[dict[str, Any]]:
    """Drain the pipe in a thread until *buffer* has flushed everything."""
    chunks: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while True:
            if select.select([read_fd], [], [], 0.02)[0]:
                chunks.append(os.read(read_fd, 1 << 16))
            elif done.is_set():
                return

    thread = threading.Thread(target=reader)
    thread.start()
    assert buffer.flush(5.0)
    done.set()
    thread.join(5.0)
    lines = b"".join(chunks).splitlines()
    return [orjson.loads(raw) for raw in lines if raw.strip()]


@pytest.fixture
def stuck_pipe(buffers: Buffers) -> tuple[int, int]:
    """Yield both ends of a pipe filled to capacity with blank lines."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        while True:
            os.write(write_fd, b"\n" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_fd, True)
    buffers.cleanups.extend(
        [lambda: os.close(read_fd), lambda: os.close(write_fd)]
    )
    return read_fd, write_fd


def test_a_full_buffer_drops_old_info_lines_and_keeps_warnings(
    buffers: Buffers, stuck_pipe: tuple[int, int]
) -> None:
    """drop_low drops the oldest info lines, keeps every warning, says so."""
    read_fd, write_fd = stuck_pipe
    buffer = buffers.make(
        StreamDestination(write_fd), max_pending=100, flush_interval=0.05
    )
    levels = [30 if n % 3 == 0 else 20 for n in range(300)]

    fill_then_release(buffer, levels)
    found = read_pipe_until_flushed(buffer, read_fd)

    kept = [r["n"] for r in found if r["event"] == "test.line" and r["n"] >= 0]
    warnings = [n for n in range(300) if levels[n] == 30]
    infos = [n for n in range(300) if levels[n] == 20]
    kept_infos = [n for n in kept if levels[n] == 20]
    assert [n for n in kept if levels[n] == 30] == warnings
    assert kept_infos == infos[len(infos) - len(kept_infos) :]
    reported = sum(r["dropped"] for r in found if r["event"] == "log.dropped")
    assert reported == buffer.stats().dropped == len(infos) - len(kept_infos)
    assert reported > 0
    report = next(r for r in found if r["event"] == "log.dropped")
    assert report["level"] == "warning"
    assert report["logger"] == "stratalog"
    assert report["interval_s"] >= 0
    assert report["timestamp"].endswith("Z")


def test_warnings_are_dropped_only_past_twice_the_bound(
    buffers: Buffers, stuck_pipe: tuple[int, int]
) -> None:
    """Only warnings queued: the oldest go once twice the bound is hit."""
    read_fd, write_fd = stuck_pipe
    buffer = buffers.make(StreamDestination(write_fd), max_pending=50)

    fill_then_release(buffer, [30] * 300)
    found = read_pipe_until_flushed(buffer, read_fd)

    kept = [r["n"] for r in found if r["event"] == "test.line" and r["n"] >= 0]
    assert 90 <= len(kept) <= 100
    assert kept == list(range(300 - len(kept), 300))
    assert buffer.stats().dropped == 300 - len(kept)


def test_block_policy_loses_nothing_to_a_slow_but_live_file(
    buffers: Buffers, tmp_path: Path
) -> None:
    """overflow='block' makes writers wait for room instead of dropping."""
    path = tmp_path / "app.log"
    buffer = buffers.make(
        FileDestination(path), overflow="block", max_pending=10
    )
    for number in range(3000):
        buffer.write(line(number), 10)
    assert buffer.flush(5.0)

    assert numbers(path) == list(range(3000))
    assert buffer.stats().dropped == 0


def test_block_policy_gives_up_on_a_dead_destination(
    buffers: Buffers, full_pipe: int
) -> None:
    """A stuck writer costs one wait of shutdown_timeout, then drops."""
    buffer = buffers.make(
        StreamDestination(full_pipe),
        overflow="block",
        max_pending=10,
        shutdown_timeout=0.2,
    )
    started = time.monotonic()
    for number in range(500):
        buffer.write(line(number), 20)

    assert time.monotonic() - started < 3.0
    assert buffer.stats().dropped > 0


entries = st.lists(
    st.tuples(st.integers(6, 60), st.sampled_from([10, 20, 30, 40, 50])),
    max_size=200,
)


@given(entries, st.integers(1, 80), st.integers(1, 4000))
def test_shedding_keeps_order_warnings_and_the_newest_info(
    spec: list[tuple[int, int]], max_lines: int, max_bytes: int
) -> None:
    """shed() drops oldest low lines first and respects both bounds."""
    before = [
        (b"%05d" % i + b"-" * (size - 6) + b"\n", level)
        for i, (size, level) in enumerate(spec)
    ]
    queue = deque(before)
    size = sum(len(text) for text, _ in before)
    bound = Bound(max_lines, max_bytes)

    lines, nbytes = shed(queue, size, bound)

    after = list(queue)
    after_bytes = sum(len(text) for text, _ in after)
    kept = set(after)
    assert after == [entry for entry in before if entry in kept]
    assert (lines, nbytes) == (len(before) - len(after), size - after_bytes)
    assert len(after) <= 2 * max_lines
    assert after_bytes <= 2 * max_bytes
    high = [entry for entry in before if entry[1] >= 30]
    low = [entry for entry in before if entry[1] < 30]
    low_kept = [entry for entry in after if entry[1] < 30]
    if len(high) <= 2 * max_lines and sum(len(t) for t, _ in high) <= (
        2 * max_bytes
    ):
        assert all(entry in kept for entry in high)
    assert low_kept == low[len(low) - len(low_kept) :]
    if low_kept:
        assert len(after) <= max_lines - max_lines // 10
        assert after_bytes <= max_bytes - max_bytes // 10


def test_a_failing_destination_is_reported_once_and_recovers(
    buffers: Buffers, capfd: pytest.CaptureFixture[str]
) -> None:
    """ENOSPC loses lines (counted, reported once); writing then resumes."""
    disk = FullDisk()
    buffer = buffers.make(disk, buffer_size=5, retry_interval=0.05)
    for number in range(20):
        buffer.write(line(number), 20)
        buffer.flush(5.0)
    lost = buffer.stats().lost

    disk.full = False
    time.sleep(0.06)
    buffer.write(line(100), 20)
    assert buffer.flush(5.0)

    assert lost == 20
    assert [orjson.loads(raw)["n"] for raw in disk.lines] == [100]
    assert _diagnostics.counts() == {
        "output.failed": 1,
        "output.recovered": 1,
    }
    err = capfd.readouterr().err
    assert "cannot write to full disk: 1 lines lost" in err
    assert "again after losing 20 lines" in err


@pytest.fixture
def tiny_disk(buffers: Buffers, tmp_path: Path) -> Path:
    """Return a directory on a 64 KiB tmpfs, or a plain one if not root.

    The tmpfs is unmounted after the test's buffers are closed.
    """
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
            capture_output=True,
            check=False,
        ).returncode
    except OSError:
        mounted = -1
    if mounted == 0:
        buffers.cleanups.append(
            lambda: subprocess.run(["umount", str(mount)], check=True)
        )
    return mount


def test_a_full_file_system_loses_lines_then_resumes(
    buffers: Buffers, tiny_disk: Path
) -> None:
    """On a real full disk the file stays valid NDJSON and writing resumes.

    Without the privilege to mount a tmpfs, the quota is emulated by a
    destination that fails with ENOSPC, which exercises the same path.
    """
    ballast = tiny_disk / "ballast"
    ballast.write_bytes(b"\0" * 32768)
    path = tiny_disk / "app.log"
    mounted = os.statvfs(tiny_disk).f_blocks * os.statvfs(tiny_disk).f_frsize
    destination: Any = (
        FileDestination(path) if mounted <= 1 << 20 else _EmulatedFull(path)
    )
    buffer = buffers.make(destination, buffer_size=7, retry_interval=0.05)
    for number in range(200):
        buffer.write(line(number, pad=300), 20)
        if number % 7 == 6:
            buffer.flush(5.0)
    assert buffer.flush(5.0)
    assert buffer.stats().lost > 0

    ballast.unlink()
    _release(destination)
    time.sleep(0.06)
    buffer.write(line(1000), 20)
    assert buffer.flush(5.0)

    found = numbers(path)
    assert found[-1] == 1000
    assert found[:-1] == sorted(found[:-1])
    assert _diagnostics.counts()["output.failed"] == 1


class _EmulatedFull(FileDestination):
    """A file that refuses writes past 32 KiB until released."""

    released = False

    def write(self, data: bytes) -> None:
        if not self.released and self._size + len(data) > 32768:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().write(data)


def _release(destination: object) -> None:
    if isinstance(destination, _EmulatedFull):
        destination.released = True


def test_an_unwritable_path_recovers_when_it_becomes_writable(
    buffers: Buffers, tmp_path: Path
) -> None:
    """A path under a regular file fails; once a directory, lines arrive."""
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory")
    path = blocker / "app.log"
    buffer = buffers.make(FileDestination(path), retry_interval=0.05)
    buffer.write(line(1), 20)
    assert buffer.flush(5.0)
    assert buffer.stats().lost == 1

    blocker.unlink()
    blocker.mkdir()
    time.sleep(0.06)
    buffer.write(line(2), 20)
    assert buffer.flush(5.0)

    assert numbers(path) == [2]
    assert _diagnostics.counts()["output.failed"] == 1
    assert _diagnostics.counts()["output.recovered"] == 1


def test_rotation_keeps_files_within_max_bytes(
    buffers: Buffers, tmp_path: Path
) -> None:
    """Files rotate before passing max_bytes; the oldest backup goes."""
    path = tmp_path / "app.log"
    buffer = buffers.make(
        FileDestination(path, max_bytes=2000, backups=2), buffer_size=7
    )
    for number in range(200):
        buffer.write(line(number, pad=40), 20)
    assert buffer.flush(5.0)

    files = [Path(f"{path}.2"), Path(f"{path}.1"), path]
    assert all(0 < f.stat().st_size <= 2000 for f in files)
    assert not Path(f"{path}.3").exists()
    kept = numbers(*files)
    assert kept == list(range(200 - len(kept), 200))


def test_rotation_without_backups_starts_the_file_over(
    buffers: Buffers, tmp_path: Path
) -> None:
    """backups=0 empties the file instead of keeping a copy."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path, max_bytes=500))
    for number in range(50):
        buffer.write(line(number), 20)
    assert buffer.flush(5.0)

    kept = numbers(path)
    assert path.stat().st_size <= 500
    assert kept == list(range(50 - len(kept), 50))
    assert list(tmp_path.iterdir()) == [path]


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(
    buffers: Buffers, tmp_path: Path
) -> None:
    """An oversized line is written whole, never split across files."""
    path = tmp_path / "app.log"
    buffer = buffers.make(FileDestination(path, max_bytes=300, backups=3))
    buffer.write(line(1), 20)
    buffer.write(line(2, pad=1000), 20)
    buffer.write(line(3), 20)
    assert buffer.flush(5.0)

    assert numbers(Path(f"{path}.2")) == [1]
    assert numbers(Path(f"{path}.1")) == [2]
    assert numbers(path) == [3]


def test_pid_in_the_file_name_is_replaced(
    buffers: Buffers, tmp_path: Path
) -> None:
    """{pid} in the path names this process's own file."""
    destination = FileDestination(tmp_path / "app-{pid}.log")
    buffer = buffers.make(destination)
    buffer.write(line(1), 20)
    assert buffer.flush(5.0)

    assert numbers(tmp_path / f"app-{os.getpid()}.log") == [1]
    assert destination.path == str(tmp_path / f"app-{os.getpid()}.log")


def test_a_line_cut_by_a_crash_is_ended_before_appending(
    buffers: Buffers, tmp_path: Path
) -> None:
    """The next writer starts on a new line after a half-written one."""
    path = tmp_path / "app.log"
    path.write_bytes(line(1) + b'{"event":"test.line","n":')
    crashed = time.time() - 5
    os.utime(path, (crashed, crashed))
    buffer = buffers.make(FileDestination(path))
    buffer.write(line(2), 20)
    assert buffer.flush(5.0)

    raw = path.read_bytes().splitlines()
    assert raw[1] == b'{"event":"test.line","n":'
    assert [orjson.loads(r)["n"] for r in (raw[0], raw[2])] == [1, 2]


def test_a_line_still_being_written_is_left_alone(
    buffers: Buffers, tmp_path: Path
) -> None:
    """A file whose last line another writer is finishing gets no newline."""
    path = tmp_path / "app.log"
    path.write_bytes(line(1) + b'{"event":"test.line",')
    buffer = buffers.make(FileDestination(path))
    buffer.write(line(3), 20)
    with path.open("ab") as other:
        other.write(b'"n":2}\n')
    assert buffer.flush(5.0)

    assert numbers(path) == [1, 2, 3]


def test_lines_longer_than_pipe_buf_reach_a_pipe_whole(
    buffers: Buffers,
) -> None:
    """Batches to a pipe are cut at line ends; long lines stay whole."""
    read_fd, write_fd = os.pipe()
    buffers.cleanups.extend(
        [lambda: os.close(read_fd), lambda: os.close(write_fd)]
    )
    buffer = buffers.make(StreamDestination(write_fd), flush_interval=60)
    sizes = [10, 3000, 5000, 20, 9000, 4000, 30]
    for number, pad in enumerate(sizes):
        buffer.write(line(number, pad=pad), 20)
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(_read_lines(read_fd, len(sizes)))
    )
    reader.start()
    assert buffer.flush(5.0)
    reader.join(5.0)

    found = [orjson.loads(raw) for raw in chunks]
    assert [len(r.get("pad", "")) for r in found] == sizes


def _read_lines(fd: int, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\n") < count:
        data += os.read(fd, 1 << 16)
    return data.splitlines()


async def test_logging_barely_stalls_the_event_loop(
    buffers: Buffers, tmp_path: Path
) -> None:
    """While 50k lines are written, sleep(0) round trips stay short."""
    buffer = buffers.make(FileDestination(tmp_path / "app.log"))
    samples: list[float] = []
    finished = False

    async def probe() -> None:
        while not finished:
            started = time.perf_counter()
            await asyncio.sleep(0)
            samples.append(time.perf_counter() - started)

    async def produce() -> None:
        nonlocal finished
        text = line(0, pad=200)
        for _ in range(1000):
            for _ in range(50):
                buffer.write(text, 20)
            await asyncio.sleep(0)
        finished = True

    await asyncio.gather(probe(), produce())
    assert buffer.flush(10.0)

    samples.sort()
    assert samples[int(0.99 * (len(samples) - 1))] < 0.050
    assert buffer.stats().written == 50_000
