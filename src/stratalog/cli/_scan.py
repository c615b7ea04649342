"""Feed every block of the inputs to a consumer, with a progress bar."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from stratalog.cli._input import Source, iter_blocks, iter_sources, total_size
from stratalog.cli._text import err_console

__all__ = ["scan"]

_Advance = Callable[[Source], None]


def scan(
    names: Sequence[str], feed: Callable[[bytes], None]
) -> dict[str, Any]:
    """Feed the blocks of *names* to *feed*; return what was read.

    A progress bar by bytes read shows on stderr when it is a terminal.
    An input that cannot be read to its end (a truncated gzip member, an
    I/O error) keeps what was read before and is listed in ``unreadable``.
    """
    read = 0
    oversized = 0
    unreadable: list[dict[str, str]] = []
    with _progress(total_size(names)) as advance:
        for source in iter_sources(names):
            try:
                for block in iter_blocks(
                    source, on_read=partial(advance, source)
                ):
                    read += len(block)
                    feed(block)
            except (OSError, EOFError, zlib.error) as exc:
                unreadable.append({"file": source.name, "error": str(exc)})
            oversized += source.oversized
    return {
        "files": list(names),
        "bytes": read,
        "oversized_lines": oversized,
        "unreadable": unreadable,
    }


@contextmanager
def _progress(total: int | None) -> Iterator[_Advance]:
    console = err_console()
    if not console.is_terminal:
        yield _ignore
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Bar(progress, progress.add_task("reading", total=total))


class _Bar:
    """Advance a progress task by the on-disk position of each input."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._current: Source | None = None
        self._before = 0
        self._position = 0

    def __call__(self, source: Source) -> None:
        if source is not self._current:
            self._before += self._position
            self._current = source
        self._position = source.position()
        completed = self._before + self._position
        self._progress.update(self._task, completed=completed)


def _ignore(source: Source) -> None:
    """Do nothing: no progress is shown off a terminal."""
