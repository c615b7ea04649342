"""Read log files, gzip files and standard input as blocks of whole lines.

Files are read in large binary chunks and cut at the last newline, so
callers split a block into lines with one C call instead of iterating line
by line. A single line longer than ``MAX_LINE`` is dropped (and counted)
rather than buffered, which keeps memory bounded on any input.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINE",
    "Source",
    "iter_blocks",
    "iter_sources",
    "open_part",
    "total_size",
]

CHUNK_SIZE = 1 << 20
MAX_LINE = 64 << 20
STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"


class Readable(Protocol):
    """A binary stream as far as reading blocks needs it."""

    def read(self, size: int = -1, /) -> bytes:
        """Return up to *size* bytes, or b"" at the end."""


@dataclass
class Source:
    """One input: its display name, binary stream and on-disk position."""

    name: str
    stream: Readable
    raw: BinaryIO
    oversized: int = 0
    start: int = 0

    def consumed(self) -> int:
        """Return how many bytes were read from disk (compressed for gzip)."""
        try:
            return self.raw.tell() - self.start
        except (OSError, ValueError):
            return 0


def total_size(names: Sequence[str]) -> int | None:
    """Return the bytes on disk of *names*, or None if any is a stream."""
    total = 0
    for name in names:
        if name == STDIN:
            return None
        try:
            total += os.stat(name).st_size
        except OSError:
            return None
    return total


def iter_sources(names: Sequence[str]) -> Iterator[Source]:
    """Open *names* one after the other; ``-`` is standard input."""
    for name in names:
        source = _open(name)
        try:
            yield source
        finally:
            if name != STDIN:
                source.raw.close()


def open_part(name: str, start: int, end: int | None) -> Source:
    """Open the byte range [*start*, *end*) of a plain file, at line starts.

    *end* None reads to the end; gzip files and stdin are always whole.
    """
    if end is None and not start:
        return _open(name)
    raw = open(name, "rb")  # noqa: SIM115 - the caller closes source.raw
    raw.seek(start)
    return Source(name, _Range(raw, end - start if end else -1), raw, 0, start)


def iter_blocks(
    source: Source,
    chunk_size: int = CHUNK_SIZE,
    on_read: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """Yield blocks of complete lines; the last may lack its newline."""
    carry = b""
    skipping = False
    read = source.stream.read
    while data := read(chunk_size):
        if on_read is not None:
            on_read()
        if skipping:
            data, skipping = _skip_to_newline(data)
        cut = data.rfind(b"\n")
        if cut >= 0:
            block = carry + data[: cut + 1] if carry else data[: cut + 1]
            carry = data[cut + 1 :]
            yield block
        elif len(carry) + len(data) <= MAX_LINE:
            carry += data
        else:
            source.oversized += 1
            carry, skipping = b"", True
    if carry:
        yield carry


def _skip_to_newline(data: bytes) -> tuple[bytes, bool]:
    newline = data.find(b"\n")
    if newline < 0:
        return b"", True
    return data[newline + 1 :], False


def _open(name: str) -> Source:
    if name == STDIN:
        stdin = sys.stdin.buffer
        stream = _Prefixed(stdin)
        if stream.prefix.startswith(_GZIP_MAGIC):
            packed = gzip.GzipFile(mode="rb", fileobj=stream)
            return Source(name, packed, stdin)
        return Source(name, stream, stdin)
    raw = open(name, "rb")  # noqa: SIM115 - closed by iter_sources
    if name.endswith(".gz"):
        return Source(name, gzip.GzipFile(fileobj=raw), raw)
    return Source(name, raw, raw)


class _Range:
    """At most *length* bytes of a stream (all of it for a negative one)."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1, /) -> bytes:
        """Return up to *size* bytes, never past the range's end."""
        if self._left < 0:
            return self._stream.read(size)
        if size < 0 or size > self._left:
            size = self._left
        data = self._stream.read(size)
        self._left -= len(data)
        return data


class _Prefixed:
    """A stream whose first bytes were read ahead to sniff its format."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.prefix = stream.read(len(_GZIP_MAGIC))

    def read(self, size: int = -1, /) -> bytes:
        """Return the sniffed bytes first, then the stream's."""
        head, self.prefix = self.prefix, b""
        if not head:
            return self._stream.read(size)
        if size < 0:
            return head + self._stream.read()
        return head + self._stream.read(max(size - len(head), 0))

    def seek(self, offset: int, /) -> int:
        """Refuse: standard input is read once, front to back."""
        raise io.UnsupportedOperation(f"cannot seek stdin to {offset}")
