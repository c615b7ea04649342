"""Where the writer thread puts whole lines: the protocol, and streams.

Every destination writes with ``os.write`` on a raw descriptor: there is
no Python-level buffer left to flush at exit, and a line that arrives
during interpreter shutdown needs nothing but a descriptor and a builtin
function captured when the destination was made.

Several processes often share one standard output (workers under one
supervisor). A pipe or socket keeps a write whole only up to ``PIPE_BUF``
bytes, so batches to them are cut at line boundaries into pieces of at
most that size; a single line longer than ``PIPE_BUF`` can still
interleave with another process's line on a shared pipe. Files are
covered in :mod:`stratalog._files`.
"""

from __future__ import annotations

import os
import select
import stat
from typing import Protocol

from .exceptions import ConfigurationError

__all__ = ["Descriptor", "Destination", "StreamDestination", "atomic_limit"]

_STREAMS = {"stdout": 1, "stderr": 2}


class Destination(Protocol):
    """Somewhere the writer thread sends batches of whole lines.

    Only one thread calls a destination at a time. ``write`` raises
    ``OSError`` when the batch could not be written; the writer counts
    its lines as lost and tries again later with new lines.
    """

    @property
    def name(self) -> str:
        """Name the destination in failure reports."""
        ...

    def write(self, data: bytes) -> None:
        """Write *data*, one or more lines each ending in a newline."""
        ...

    def close(self) -> None:
        """Release what the destination holds; a later write reopens."""
        ...

    def after_fork(self) -> None:
        """Prepare for use in a freshly forked child process."""
        ...


class Descriptor:
    """Write to a raw descriptor, keeping the rest of a line an error cut."""

    def __init__(self) -> None:
        self._tail = b""
        self._limit = 0
        # Bound now: a late line during interpreter shutdown may find the
        # module globals already cleared.
        self._os_write = os.write

    def _write_tail(self, fd: int) -> None:
        tail, self._tail = self._tail, b""
        self._send(fd, tail, 0, len(tail), resuming=True)

    def _write_pieces(
        self, fd: int, data: bytes, start: int, end: int
    ) -> None:
        limit = self._limit
        if not limit or end - start <= limit:
            self._send(fd, data, start, end)
            return
        while start < end:
            cut = self._fit(data, start, end, limit)
            if cut == start:
                cut = self._line_end(data, start, end)
            self._send(fd, data, start, cut)
            start = cut

    def _send(
        self,
        fd: int,
        data: bytes,
        start: int,
        end: int,
        *,
        resuming: bool = False,
    ) -> None:
        view = memoryview(data)
        pos = start
        try:
            while pos < end:
                pos += self._os_write(fd, view[pos:end])
        except OSError:
            midline = data[pos - 1 : pos] != b"\n" if pos > start else resuming
            if midline:
                self._tail = data[pos : self._line_end(data, pos, end)]
            raise

    @staticmethod
    def _fit(data: bytes, start: int, end: int, room: int) -> int:
        """Return the end of the whole lines from *start* within *room*."""
        if end - start <= room:
            return end
        if room <= 0:
            return start
        newline = data.rfind(b"\n", start, start + room)
        return newline + 1 if newline >= 0 else start

    @staticmethod
    def _line_end(data: bytes, start: int, end: int) -> int:
        newline = data.find(b"\n", start, end)
        return newline + 1 if newline >= 0 else end


class StreamDestination(Descriptor):
    """Write lines to standard output, standard error or an open descriptor.

    ``"stdout"`` and ``"stderr"`` mean descriptors 1 and 2, whatever
    ``sys.stdout`` has been replaced with. The descriptor is never closed.
    """

    def __init__(self, target: str | int = "stdout") -> None:
        super().__init__()
        if isinstance(target, str):
            if target not in _STREAMS:
                raise ConfigurationError(
                    "output", target, "use 'stdout', 'stderr' or a file"
                )
            self.fd = _STREAMS[target]
            self._name = target
        else:
            self.fd = target
            self._name = f"descriptor {target}"
        self._limit = atomic_limit(self.fd)

    @property
    def name(self) -> str:
        """Name the stream in failure reports."""
        return self._name

    def write(self, data: bytes) -> None:
        """Write *data* to the stream, in atomic pieces on a pipe."""
        if self._tail:
            self._write_tail(self.fd)
        self._write_pieces(self.fd, data, 0, len(data))

    def close(self) -> None:
        """Leave the descriptor open: it belongs to the process."""

    def after_fork(self) -> None:
        """Forget a cut line: it belongs to the parent."""
        self._tail = b""


def atomic_limit(fd: int) -> int:
    """Return the largest write a pipe or socket keeps whole, else 0."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return select.PIPE_BUF
    return 0
