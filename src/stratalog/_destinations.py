"""Where the writer thread puts whole lines: standard streams and files.

Every destination writes with ``os.write`` on a raw descriptor: there is
no Python-level buffer left to flush at exit, and a line that arrives
during interpreter shutdown needs nothing but a descriptor and a builtin
function captured when the destination was made.

Several processes may append to one file. It is opened with ``O_APPEND``
and each batch goes out in one ``write`` call, which Linux applies whole
with respect to other appenders on a local file system, so lines never
interleave. Pipes and sockets promise that only for writes of at most
``PIPE_BUF`` bytes, so batches to them are cut at line boundaries into
pieces of at most that size; a single line longer than ``PIPE_BUF`` can
still interleave with another process's line on a shared pipe.

Rotation is per process: each process counts the bytes it wrote. Before
renaming, a process checks that the path still names the file it has
open; if another process rotated first, it only reopens. Two processes
rotating at the same instant can still lose a backup, so with several
writer processes prefer one file per process, with ``{pid}`` in the name.
"""

from __future__ import annotations

import os
import select
import stat
import time
from typing import Protocol

from .exceptions import ConfigurationError

__all__ = ["Destination", "FileDestination", "StreamDestination"]

_STREAMS = {"stdout": 1, "stderr": 2}
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_SETTLE_S = 1.0


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


class _Descriptor:
    """Write to a raw descriptor; keep the rest of a line an error cut."""

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
            midline = data[pos - 1] != 10 if pos > start else resuming
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


class StreamDestination(_Descriptor):
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
        self._limit = _atomic_limit(self.fd)

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


class FileDestination(_Descriptor):
    """Append lines to a file, rotating it by size when asked.

    *max_bytes* ``0`` never rotates; otherwise a file is renamed to
    ``<path>.1`` (older ones shifting up to ``<path>.<backups>``) before it
    would grow past *max_bytes*, and with *backups* ``0`` it is emptied
    instead. ``{pid}`` in *path* is replaced by the process id, so each
    forked worker writes and rotates its own file. A missing directory is
    created. A file whose last line was cut by a crash gets a newline
    first, so the next line starts whole.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 0,
        backups: int = 0,
    ) -> None:
        super().__init__()
        if max_bytes < 0:
            raise ConfigurationError("file_max_bytes", max_bytes, "0 or more")
        if backups < 0:
            raise ConfigurationError("file_backups", backups, "0 or more")
        self._template = os.fspath(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._fd = -1
        self._size = 0
        self._path = ""

    @property
    def name(self) -> str:
        """Name the file in failure reports."""
        return self._path or self._template

    @property
    def path(self) -> str:
        """Return the file's path for this process."""
        return self._template.replace("{pid}", str(os.getpid()))

    def write(self, data: bytes) -> None:
        """Append *data*, rotating first where a file would grow too big."""
        if self._fd < 0:
            self._open()
        if self._tail:
            self._size += len(self._tail)
            self._write_tail(self._fd)
        if self._max_bytes:
            self._write_rotating(data)
        else:
            self._write_pieces(self._fd, data, 0, len(data))
            self._size += len(data)

    def close(self) -> None:
        """Close the file; the next write opens it again."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def after_fork(self) -> None:
        """Give a child with ``{pid}`` in the path its own file."""
        self._tail = b""
        if "{pid}" in self._template:
            self.close()

    def _open(self) -> None:
        path = self.path
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd = os.open(path, _OPEN_FLAGS, 0o644)
        try:
            size, cut = _settled_end(fd, path)
            if cut:
                os.write(fd, b"\n")
                size += 1
        except OSError:
            os.close(fd)
            raise
        self._fd, self._path, self._size = fd, path, size
        self._limit = _atomic_limit(fd)

    def _write_rotating(self, data: bytes) -> None:
        start, end = 0, len(data)
        while start < end:
            room = self._max_bytes - self._size
            cut = self._fit(data, start, end, room)
            if cut == start:
                if self._size:
                    self._rotate()
                    continue
                # A line longer than max_bytes gets a file of its own.
                cut = self._line_end(data, start, end)
            self._write_pieces(self._fd, data, start, cut)
            self._size += cut - start
            start = cut

    def _rotate(self) -> None:
        path = self._path
        moved = self._moved(path)
        self.close()
        if not moved:
            self._shift_backups(path)
        self._open()

    def _moved(self, path: str) -> bool:
        """Tell whether another process already rotated *path*."""
        try:
            named = os.stat(path)
        except FileNotFoundError:
            return True
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino)

    def _shift_backups(self, path: str) -> None:
        if not self._backups:
            os.unlink(path)
            return
        for index in range(self._backups - 1, 0, -1):
            older = f"{path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{path}.{index + 1}")
        os.replace(path, f"{path}.1")


def _atomic_limit(fd: int) -> int:
    """Return the largest write a pipe or socket keeps whole, else 0."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return select.PIPE_BUF
    return 0


def _settled_end(fd: int, path: str) -> tuple[int, bool]:
    """Return the file's size and whether its last line was left cut.

    A last line without its newline may be another process's write still
    in progress, possibly held up for a while by the kernel's writeback
    throttling. Only a file nobody has modified for a second is taken to
    end in a line a crash cut short; a file that keeps changing for
    longer is left as it is.
    """
    deadline = time.monotonic() + 2 * _SETTLE_S
    while True:
        info = os.fstat(fd)
        if not info.st_size or _ends_with_newline(path, info.st_size):
            return info.st_size, False
        # The file's age can only be read against the wall clock.
        if time.time() - info.st_mtime >= _SETTLE_S:
            return info.st_size, True
        if time.monotonic() > deadline:
            return info.st_size, False
        time.sleep(0.05)


def _ends_with_newline(path: str, size: int) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        return os.pread(fd, 1, size - 1) == b"\n"
    finally:
        os.close(fd)
