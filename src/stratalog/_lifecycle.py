"""Every live writer, and what happens to them at exit, on signals, at fork.

Writers are kept by weak reference, keyed by id, in a plain dict: adding,
removing and copying its values are single operations, so a signal
handler that flushes while the main thread registers a writer finds a
consistent registry without taking a lock.

At exit the ``atexit`` hook, registered when the first writer is made,
drains every writer within the longest ``shutdown_timeout`` among them and
leaves their descriptors open for lines logged later still.

Children started by :mod:`multiprocessing` end with ``os._exit``, so
``atexit`` never runs there; multiprocessing runs its own finalizers
instead, before the child's non-daemon threads are joined (the writer
thread is a daemon and never holds that up). Every such child gets the
exit drain as a finalizer: at once when a writer is made in the child,
and otherwise from multiprocessing's after-fork hooks, because a child
starting up empties the finalizers it inherited after ``os.fork``'s own
hooks ran. ``multiprocessing.util`` is looked up, never imported: a
process without it neither is such a child nor starts one.

Signal handlers are installed only on request; they flush, then hand the
signal on to the handler they replaced, or deliver it again with its
default action, so that a signal is never swallowed.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from types import FrameType
from typing import Any, Protocol

__all__ = [
    "flush",
    "install_signal_handlers",
    "live",
    "shutdown",
    "track",
]


class Writer(Protocol):
    """What the registry needs from a writer."""

    shutdown_timeout: float

    @property
    def closed(self) -> bool: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def begin_close(self) -> None: ...

    def finish_close(
        self, deadline: float, *, release: bool = True
    ) -> bool: ...

    def after_fork_in_child(self) -> None: ...


_live: dict[int, weakref.ref[Writer]] = {}
_previous: dict[int, Any] = {}
_hooked = False
_hooked_children = False
_finalized_in = 0


def track(writer: Writer) -> None:
    """Register *writer* for flushes, shutdown and fork handling."""
    global _hooked
    key = id(writer)

    def forget(ref: weakref.ref[Writer]) -> None:
        if _live.get(key) is ref:
            del _live[key]

    _live[key] = weakref.ref(writer, forget)
    if not _hooked:
        _hooked = True
        atexit.register(_at_exit)
    _drain_at_child_exit()


def live() -> list[Writer]:
    """Return every writer still alive and not closed."""
    writers = (ref() for ref in list(_live.values()))
    return [w for w in writers if w is not None and not w.closed]


def flush(timeout: float | None = None) -> bool:
    """Write every line queued in every buffer; False if *timeout* ran out.

    *timeout* is shared by all buffers; ``None`` waits as long as it takes.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    done = True
    for writer in live():
        left = None if deadline is None else deadline - time.monotonic()
        done = writer.flush(left) and done
    return done


def shutdown(timeout: float = 5.0) -> bool:
    """Flush and close every buffer within *timeout* seconds in all.

    Returns whether every buffer finished in time. Lines logged afterwards
    are written synchronously (see :meth:`AsyncLogBuffer.close`).
    """
    return _close_all(timeout, release=True)


def install_signal_handlers(
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
) -> bool:
    """Flush every buffer on *signals*, then pass each signal on.

    The handler replaced is called afterwards; a default action is
    delivered again, so the process still ends as the signal demands.
    Only the main thread may install handlers: from another thread this
    does nothing and returns False. Installing twice does not chain the
    handler to itself.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in signals:
        current = signal.getsignal(signum)
        if current is _on_signal:
            continue
        _previous[signum] = current
        signal.signal(signum, _on_signal)
    return True


def _close_all(timeout: float, *, release: bool) -> bool:
    deadline = time.monotonic() + timeout
    writers = live()
    for writer in writers:
        writer.begin_close()
    finished = [
        writer.finish_close(deadline, release=release) for writer in writers
    ]
    return all(finished)


def _longest_timeout() -> float:
    return max((writer.shutdown_timeout for writer in live()), default=0.0)


def _at_exit() -> None:
    _close_all(_longest_timeout(), release=False)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    flush(_longest_timeout())
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    # Still alive: the default action ignores this signal.
    signal.signal(signum, _on_signal)


def _after_fork_in_child() -> None:
    for ref in list(_live.values()):
        writer = ref()
        if writer is not None:
            writer.after_fork_in_child()
    _drain_at_child_exit()


def _drain_at_child_exit() -> None:
    """Make sure a multiprocessing child drains its writers as it ends."""
    global _hooked_children
    if "multiprocessing.util" not in sys.modules:
        return
    from multiprocessing import current_process, util

    if not _hooked_children:
        _hooked_children = True
        # The registry holds its key object weakly; a function lives on.
        util.register_after_fork(_on_child_start, _on_child_start)
    in_child = current_process().name != "MainProcess"
    if in_child and _finalized_in != os.getpid():
        _on_child_start(None)


def _on_child_start(_: object) -> None:
    """Add the drain to the finalizers of this multiprocessing child."""
    global _finalized_in
    from multiprocessing import util

    util.Finalize(None, _at_exit, exitpriority=0)
    _finalized_in = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)
