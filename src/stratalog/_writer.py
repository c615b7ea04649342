"""The writer thread behind :class:`stratalog.output.AsyncLogBuffer`.

Why a thread. Lines arrive already rendered, so what is left is I/O, and
the event loop must never wait for a disk, a full pipe or a hung network
file system. One plain thread owns the destinations: its blocking
``os.write`` calls release the GIL, and the same object serves
coroutines, synchronous code and other threads alike.

Why no lock on the hot path. ``write`` appends a ``(line, level)`` pair
to a deque and compares two counters. A lock there could deadlock when a
signal handler, or a ``__del__`` run by the garbage collector, logs in
the middle of a write on the same thread. Appending to and popping from
a deque are single atomic operations; the writer is woken by releasing a
lock used as a doorbell, and flushes wait on a lock of their own, for
the same reason: none of these steps can block on a lock the current
thread already holds.

Batching. The writer wakes when ``buffer_size`` lines wait, when its
``flush_interval`` timer fires or when a flush is requested. It takes the
lines present at that moment in chunks of at most ``_CHUNK_LINES``, joins
each chunk and hands it to every destination in one write. The GIL is
held only while a chunk is taken and joined, which keeps the loop's
stalls far below a millisecond.

Fork. A child gets fresh locks, an empty queue and no thread; its first
line starts its own writer. The lines its parent had queued stay the
parent's to write, so no line is written twice.

Shutdown order. ``close`` asks the thread to drain and stop, waits for it
up to the timeout, then writes whatever arrived meanwhile itself. A line
that races with ``close`` is not stranded: ``write`` reads the closed flag
after queueing, so either it sees the flag and writes the line itself, or
the close, which sets the flag before its last drain, finds it queued.
Once closing began no new writer thread starts, and the destinations are
closed only while no late line is being written to them. After a
clean close, late lines (an ``atexit`` hook that runs after stratalog's,
a ``__del__`` during interpreter shutdown) are written synchronously by
their caller, with only what the instance holds, since module globals may
already be cleared. After a close that timed out on a destination that
takes no data, late lines are counted as lost instead: writing them would
hang the caller on the same destination.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from . import _diagnostics, _lifecycle, _overflow
from ._destinations import Destination
from ._outlets import Outlets, OutputStats

__all__ = ["BackgroundWriter", "OutputStats"]

_CHUNK_LINES = 2048


class _Doorbell:
    """A wake-up call that never blocks the thread that rings it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def ring(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already rung

    def wait(self, timeout: float) -> None:
        self._lock.acquire(timeout=max(timeout, 0.0))


class BackgroundWriter:
    """Queue rendered lines and write them from one background thread."""

    def __init__(
        self,
        destinations: Iterable[Destination],
        *,
        buffer_size: int,
        flush_interval: float,
        blocking: bool,
        bound: _overflow.Bound,
        shutdown_timeout: float,
        retry_interval: float,
    ) -> None:
        self._outlets = Outlets(destinations, retry_interval)
        self._buffer_size = min(buffer_size, bound.lines)
        self._flush_interval = flush_interval
        self._blocking = blocking
        self._bound = bound
        self.shutdown_timeout = shutdown_timeout
        self._closed = False
        self._late_sync = True
        self._reset()
        _lifecycle.track(self)

    def write(self, line: bytes, level: int) -> None:
        """Queue one rendered *line* at *level*; never waits on I/O or raises.

        Safe from any thread, from signal handlers and from ``__del__``.
        Only ``overflow="block"`` makes a caller wait, for room in a full
        buffer.
        """
        try:
            size = len(line)
            queue = self._queue
            queue.append((line, level))
            self._size += size
            # Read after the append: a close that has not set the flag yet
            # still finds this line in the queue when it drains.
            if (
                self._closed
                or len(queue) >= self._check_at
                or self._size >= self._shed_bytes
            ):
                self._on_threshold()
        except Exception:
            self._errors += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Write every line queued so far; False if *timeout* ran out."""
        try:
            if self._closed:
                self._write_late()
                return self._late_sync
            thread = self._thread
            if thread is None:
                return True
            if thread.ident == threading.get_ident():
                return False
            return self._await_cycle(timeout)
        except Exception:
            return False

    def close(self, timeout: float = 5.0) -> bool:
        """Write every queued line and stop the thread within *timeout*.

        Returns whether the writer finished in time. Afterwards ``write``
        writes synchronously, or counts lines as lost if it did not.
        """
        try:
            self.begin_close()
            return self.finish_close(time.monotonic() + timeout)
        except Exception:
            return False

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run; later lines are written inline."""
        return self._closed

    def stats(self) -> OutputStats:
        """Return how many lines wait, were written, dropped or lost."""
        return OutputStats(
            pending=len(self._queue),
            written=self._outlets.written,
            dropped=self._dropped,
            lost=self._outlets.lost + self._errors,
        )

    def begin_close(self) -> None:
        """Ask the thread to drain and stop, without waiting for it."""
        self._stopping = True
        self._bell.ring()

    def finish_close(self, deadline: float, *, release: bool = True) -> bool:
        """Wait for the thread until *deadline*, then switch to late writes.

        With *release* false the destinations stay open, so that lines
        logged during interpreter shutdown still find a descriptor.
        """
        remaining = max(deadline - time.monotonic(), 0.0)
        if not self._close_lock.acquire(timeout=remaining):
            return False
        try:
            if self._closed:
                return self._late_sync
            return self._close_until(deadline, release)
        finally:
            self._close_lock.release()

    def after_fork_in_child(self) -> None:
        """Start over in a forked child, without the parent's lines."""
        self._reset()
        self._outlets.after_fork()

    def _reset(self) -> None:
        self._queue: deque[tuple[bytes, int]] = deque()
        self._size = 0
        self._check_at = 0
        self._shed_at = self._bound.lines
        self._shed_bytes = self._bound.bytes
        self._bell = _Doorbell()
        self._waiters: deque[threading.Lock] = deque()
        self._shed_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._late_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = self._gone = self._stalled = False
        self._dropped = self._reported = self._errors = 0

    def _on_threshold(self) -> None:
        if self._thread is None and not self._closed:
            self._start()
        if self._closed:
            self._write_late()
            return
        queue = self._queue
        if len(queue) >= self._shed_at or self._size >= self._shed_bytes:
            self._make_room()
        if len(queue) >= self._buffer_size:
            self._check_at = self._shed_at
            self._bell.ring()

    def _start(self) -> None:
        if not self._start_lock.acquire(blocking=False):
            return
        try:
            if self._thread is not None or self._closed or self._stopping:
                return
            thread = threading.Thread(
                target=self._run, name="stratalog-writer", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:
                # No new threads during interpreter shutdown: write inline.
                self._closed = True
                return
            self._thread = thread
            self._check_at = self._buffer_size
        finally:
            self._start_lock.release()

    def _make_room(self) -> None:
        if self._blocking and self._wait_for_room():
            return
        if not self._shed_lock.acquire(blocking=False):
            return
        try:
            bound = self._bound
            lines, nbytes = _overflow.shed(self._queue, self._size, bound)
            self._size -= nbytes
            self._dropped += lines
            later = _overflow.next_check(len(self._queue), self._size, bound)
            self._shed_at, self._shed_bytes = later.lines, later.bytes
        finally:
            self._shed_lock.release()

    def _wait_for_room(self) -> bool:
        thread = self._thread
        if self._stalled or thread is None:
            return False
        if thread.ident == threading.get_ident():
            return False
        if not self._await_cycle(self.shutdown_timeout):
            # A writer stuck on a dead destination must not stall every
            # caller in turn: drop until it completes a cycle again.
            self._stalled = True
            return False
        bound = self._bound
        return len(self._queue) < bound.lines and self._size < bound.bytes

    def _await_cycle(self, timeout: float | None) -> bool:
        waiter = threading.Lock()
        waiter.acquire()
        self._waiters.append(waiter)
        if self._gone:
            return not self._queue
        self._bell.ring()
        wait = -1.0 if timeout is None else max(timeout, 0.0)
        return waiter.acquire(timeout=wait)

    def _run(self) -> None:
        clock = time.monotonic
        last_tick = clock()
        while True:
            self._bell.wait(last_tick + self._flush_interval - clock())
            waiters = [
                self._waiters.popleft() for _ in range(len(self._waiters))
            ]
            stopping = self._stopping
            try:
                self._drain(stopping)
                now = clock()
                if stopping or now - last_tick >= self._flush_interval:
                    self._report_drops(now - last_tick)
                    last_tick = now
            except Exception as exc:
                _diagnostics.report("output.writer", "the writer failed", exc)
            finally:
                self._stalled = False
                for waiter in waiters:
                    waiter.release()
            if stopping:
                self._gone = True
                for waiter in list(self._waiters):
                    waiter.release()
                return

    def _drain(self, everything: bool) -> None:
        self._write_chunks(len(self._queue))
        if everything:
            self._write_chunks(len(self._queue))
        with self._shed_lock:
            self._shed_at = self._bound.lines
            self._shed_bytes = self._bound.bytes
        if not self._closed:
            self._check_at = self._buffer_size

    def _write_chunks(self, count: int) -> None:
        queue = self._queue
        while count > 0:
            with self._shed_lock:
                take = min(count, _CHUNK_LINES, len(queue))
                if take <= 0:
                    return
                popleft = queue.popleft
                lines = [popleft()[0] for _ in range(take)]
            count -= take
            self._size -= self._outlets.send(lines)

    def _report_drops(self, interval: float) -> None:
        dropped = self._dropped - self._reported
        if dropped > 0:
            self._reported += dropped
            self._outlets.send_own(_overflow.drop_report(dropped, interval))

    def _close_until(self, deadline: float, release: bool) -> bool:
        thread = self._last_thread(deadline)
        if thread is not None:
            thread.join(max(deadline - time.monotonic(), 0.0))
        clean = thread is None or not thread.is_alive()
        self._late_sync = clean
        self._closed = True
        if not clean:
            queued = len(self._queue)
            self._write_late()
            _diagnostics.report(
                "output.close_timed_out",
                f"the log writer did not finish in time; {queued} queued "
                "lines were not written",
            )
            return False
        if release:
            self._release(deadline)
        self._write_late()
        return True

    def _last_thread(self, deadline: float) -> threading.Thread | None:
        """Return the writer thread, once no other one can start.

        ``_stopping`` is already set, so a start still in progress is the
        last one: waiting for the start lock lets it record its thread.
        """
        lock = self._start_lock
        if lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            lock.release()
        return self._thread

    def _release(self, deadline: float) -> None:
        """Write the queue and close the destinations, barring late writes.

        A late line that finds the lock taken stays queued, and the close
        writes it once the lock is released.
        """
        lock = self._late_lock
        if not lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            return
        try:
            self._send_queued()
            self._outlets.close()
        finally:
            lock.release()

    def _write_late(self) -> None:
        queue = self._queue
        if not self._late_sync:
            while queue:
                queue.popleft()
                self._outlets.lost += 1
            return
        lock = self._late_lock
        while queue and lock.acquire(blocking=False):
            try:
                self._send_queued()
            finally:
                lock.release()

    def _send_queued(self) -> None:
        queue = self._queue
        lines: list[bytes] = []
        while queue:
            lines.append(queue.popleft()[0])
        if lines:
            self._size -= self._outlets.send(lines)
