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
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from stratalog.cli._input import Source, iter_blocks, iter_sources, total_size
from stratalog.cli._text import err_console

__all__ = ["progress", "read_source", "scan"]

Show = Callable[[int], None]


def scan(
    names: Sequence[str], feed: Callable[[bytes], None]
) -> dict[str, Any]:
    """Feed the blocks of *names* to *feed*; return what was read.

    A progress bar by bytes read shows on stderr when it is a terminal.
    An input that cannot be read to its end (a truncated gzip member, an
    I/O error) keeps what was read before and is listed in ``unreadable``.
    """
    tally = new_tally(names)
    done = 0
    with progress(total_size(names)) as show:
        for source in iter_sources(names):
            on_read = partial(_show_position, show, done, source)
            read_source(source, feed, tally, on_read)
            done += source.consumed()
    return tally


def new_tally(names: Sequence[str]) -> dict[str, Any]:
    """Return an empty account of what was read from *names*."""
    return {
        "files": list(names),
        "bytes": 0,
        "oversized_lines": 0,
        "unreadable": [],
    }


def read_source(
    source: Source,
    feed: Callable[[bytes], None],
    tally: dict[str, Any],
    on_read: Callable[[], None] | None = None,
) -> None:
    """Feed every block of *source* to *feed*, accounting in *tally*."""
    try:
        for block in iter_blocks(source, on_read=on_read):
            tally["bytes"] += len(block)
            feed(block)
    except (OSError, EOFError, zlib.error) as exc:
        tally["unreadable"].append({"file": source.name, "error": str(exc)})
    tally["oversized_lines"] += source.oversized


@contextmanager
def progress(total: int | None) -> Iterator[Show]:
    """Show a progress bar on a terminal; yield a setter of bytes done."""
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
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("reading", total=total)
        yield lambda done: bar.update(task, completed=done)


def _show_position(show: Show, before: int, source: Source) -> None:
    show(before + source.consumed())


def _ignore(done: int) -> None:
    """Do nothing: no progress is shown off a terminal."""
