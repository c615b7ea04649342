"""Where log lines go: a buffer, a background writer and its destinations.

:class:`AsyncLogBuffer` takes each rendered line with ``write(line,
level)`` and returns at once; a background thread writes the lines to
standard output, standard error and files, several at once, each line
whole in one ``write`` call. :func:`build_output` makes one from the
configuration, and :func:`flush`, :func:`shutdown` and
:func:`install_signal_handlers` act on every live buffer.

What happens when things go wrong:

* **A full buffer** (``max_pending`` lines or ``max_pending_bytes``) drops
  its oldest debug and info lines and keeps warnings and above, up to
  twice the bound, past which the oldest of any level go too. Once per
  flush interval with drops, the writer itself writes a ``log.dropped``
  warning line with the count. Under ``overflow="block"`` the caller first
  waits for the writer, for at most ``shutdown_timeout`` seconds.
* **A destination that fails** (an unwritable path, a full disk) costs the
  lines written meanwhile, counted and reported once on standard error;
  the writer tries it again every ``retry_interval`` seconds.
* **Exit**: an ``atexit`` hook writes every queued line; in
  :mod:`multiprocessing` children, which end without running ``atexit``,
  one of multiprocessing's exit finalizers does. SIGTERM and SIGINT do
  the same once :func:`install_signal_handlers` was called.
  A dead destination cannot hold exit longer than ``shutdown_timeout``.
* **A killed process** (SIGKILL, a crash) loses at most the lines of the
  last flush interval. A line cut short is at the end of the file, and
  the next writer to open the file ends it with a newline first.
* **Late lines** logged after a buffer closed (from a later ``atexit``
  hook or a ``__del__``) are written synchronously by the caller; if the
  close timed out on a dead destination they are counted as lost.
* **Several processes** may append to one file: each line is whole, as
  batches go out in single ``O_APPEND`` writes. Rotation is per process,
  so with several writers either leave ``file_max_bytes`` at 0 or put
  ``{pid}`` in the file name to give each process its own file. A forked
  child starts its own writer and never writes its parent's lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ._destinations import Destination, StreamDestination
from ._files import FileDestination
from ._lifecycle import flush, install_signal_handlers, shutdown
from ._outlets import OutputStats
from ._overflow import POLICIES, Bound
from ._render import Limits, json_renderer, safe_repr
from ._writer import BackgroundWriter
from .config import LEVELS
from .exceptions import ConfigurationError

__all__ = [
    "AsyncLogBuffer",
    "Destination",
    "FileDestination",
    "OutputConfig",
    "OutputStats",
    "StreamDestination",
    "build_output",
    "flush",
    "install_signal_handlers",
    "shutdown",
]

_render = json_renderer(Limits())


class OutputConfig(Protocol):
    """The settings :func:`build_output` reads; a ``LoggingConfig`` fits."""

    @property
    def outputs(self) -> tuple[str, ...]: ...

    @property
    def file(self) -> str | None: ...

    @property
    def file_max_bytes(self) -> int: ...

    @property
    def file_backups(self) -> int: ...

    @property
    def buffer_size(self) -> int: ...

    @property
    def flush_interval(self) -> float: ...

    @property
    def overflow(self) -> str: ...

    @property
    def shutdown_timeout(self) -> float: ...


class AsyncLogBuffer(BackgroundWriter):
    """Buffer log lines and write them from a background thread.

    Lines are written when *buffer_size* wait or *flush_interval* seconds
    passed, whichever comes first, to *destinations* (standard output
    when ``None``). ``write`` is safe from any thread, never blocks on
    I/O and never raises; see the module documentation for overflow,
    failures and shutdown.
    """

    def __init__(
        self,
        buffer_size: int = 1000,
        flush_interval: float = 1.0,
        destinations: Iterable[Destination] | None = None,
        overflow: str = "drop_low",
        max_pending: int = 100_000,
        *,
        max_pending_bytes: int = 64 * 1024 * 1024,
        shutdown_timeout: float = 5.0,
        retry_interval: float = 2.0,
    ) -> None:
        _check_positive("buffer_size", buffer_size)
        _check_positive("flush_interval", flush_interval)
        _check_positive("max_pending", max_pending)
        _check_positive("max_pending_bytes", max_pending_bytes)
        if overflow not in POLICIES:
            allowed = ", ".join(POLICIES)
            raise ConfigurationError(
                "overflow", overflow, f"use one of: {allowed}"
            )
        if destinations is None:
            destinations = (StreamDestination("stdout"),)
        super().__init__(
            destinations,
            buffer_size=buffer_size,
            flush_interval=flush_interval,
            blocking=overflow == "block",
            bound=Bound(max_pending, max_pending_bytes),
            shutdown_timeout=shutdown_timeout,
            retry_interval=retry_interval,
        )

    @property
    def buffer_size(self) -> int:
        """Lines that wake the writer before its timer does."""
        return self._buffer_size

    @property
    def flush_interval(self) -> float:
        """Seconds after which waiting lines are written anyway."""
        return self._flush_interval

    async def add_log_entry(self, entry: Mapping[str, Any]) -> None:
        """Render *entry* as one JSON line and queue it; never raises.

        Values JSON cannot hold are rendered as the pipeline renders them
        (text, or their ``repr``), so any mapping becomes a valid line.
        """
        self.write(_entry_line(entry), _entry_level(entry))


def build_output(config: OutputConfig) -> AsyncLogBuffer:
    """Make the buffer and destinations that *config* describes."""
    destinations: list[Destination] = [
        StreamDestination(name) for name in config.outputs
    ]
    if config.file:
        destinations.append(
            FileDestination(
                config.file,
                max_bytes=config.file_max_bytes,
                backups=config.file_backups,
            )
        )
    return AsyncLogBuffer(
        buffer_size=config.buffer_size,
        flush_interval=config.flush_interval,
        destinations=destinations,
        overflow=config.overflow,
        shutdown_timeout=config.shutdown_timeout,
    )


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(name, value, "a positive number")


def _entry_line(entry: Mapping[str, Any]) -> bytes:
    """Render *entry* as one JSON line ending in a newline; never raises."""
    try:
        if isinstance(entry, dict):
            return _render(entry)
        if isinstance(entry, Mapping):
            return _render(dict(entry))
    except Exception:
        pass
    return _render({"event": "log.unrenderable", "entry": safe_repr(entry)})


def _entry_level(entry: Mapping[str, Any]) -> int:
    """Return the stdlib level number of *entry*, info if it has none."""
    try:
        level = entry.get("level")
    except Exception:
        return LEVELS["info"]
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        return LEVELS.get(level.lower(), LEVELS["info"])
    return LEVELS["info"]
