"""Read lines as they are appended, like ``tail -F``.

A followed file is polled at EOF. When the path names a new file (the
old one was rotated away) the rest of the old file is read first and the
new file is then read from its start; when the file shrank (truncated in
place) reading restarts at its start. A line longer than ``LINE_LIMIT``
is replaced by a notice, so one runaway line cannot exhaust memory.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from typing import BinaryIO, Protocol

__all__ = ["LINE_LIMIT", "OVERSIZED", "follow_lines", "stream_lines"]

LINE_LIMIT = 1 << 20
OVERSIZED = b"\x00oversized"
_BACK_BLOCK = 1 << 16


class LineReader(Protocol):
    """A binary stream as far as reading lines needs it."""

    def readline(self, size: int = -1, /) -> bytes:
        """Return one line of at most *size* bytes, b"" at the end."""


def stream_lines(stream: LineReader) -> Iterator[bytes]:
    """Yield the lines of *stream* as they arrive, until its end."""
    pending = b""
    while piece := stream.readline(LINE_LIMIT):
        line, pending = _assemble(pending, piece)
        if line is not None:
            yield line
    if pending:
        yield pending


def follow_lines(
    path: str,
    *,
    follow: bool = True,
    last: int | None = None,
    poll: float = 0.25,
) -> Iterator[bytes]:
    """Yield the lines of the file at *path*, then new ones if *follow*.

    *last* starts at the last that many lines instead of the beginning.
    gzip files are read once, without following.
    """
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as compressed:
            yield from stream_lines(compressed)
        return
    handle = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    try:
        if last is not None:
            handle.seek(_start_of_last(handle, last))
        yield from _follow(path, handle, follow, poll)
    finally:
        handle.close()


def _follow(
    path: str, handle: BinaryIO, follow: bool, poll: float
) -> Iterator[bytes]:
    pending = b""
    while True:
        piece = handle.readline(LINE_LIMIT)
        if piece:
            line, pending = _assemble(pending, piece)
            if line is not None:
                yield line
            continue
        if not follow:
            break
        time.sleep(poll)
        fresh = _reopened(path, handle)
        if fresh is not None:
            handle.close()
            handle = fresh
    if pending:
        yield pending


def _assemble(pending: bytes, piece: bytes) -> tuple[bytes | None, bytes]:
    if piece.endswith(b"\n"):
        if pending == OVERSIZED:
            return OVERSIZED, b""
        return pending + piece, b""
    if pending == OVERSIZED:
        return None, OVERSIZED
    pending += piece
    if len(pending) >= LINE_LIMIT:
        return None, OVERSIZED
    return None, pending


def _reopened(path: str, handle: BinaryIO) -> BinaryIO | None:
    try:
        current = os.stat(path)
    except OSError:
        return None
    if current.st_ino != os.fstat(handle.fileno()).st_ino:
        try:
            return open(path, "rb")
        except OSError:
            return None
    if current.st_size < handle.tell():
        handle.seek(0)
    return None


def _start_of_last(handle: BinaryIO, count: int) -> int:
    end = handle.seek(0, os.SEEK_END)
    if count <= 0:
        return end
    position = end
    newlines = 0
    handle.seek(max(end - 1, 0))
    # A final newline ends the last line; it does not start a new one.
    if end and handle.read(1) == b"\n":
        position -= 1
    while position > 0:
        size = min(_BACK_BLOCK, position)
        handle.seek(position - size)
        block = handle.read(size)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            newlines += 1
            if newlines == count:
                return position - size + index + 1
        position -= size
    return 0
