"""Append lines to a file, rotating it by size, several processes at once.

Several processes may append to one file. It is opened with ``O_APPEND``
and each batch goes out in one ``write`` call, which Linux applies whole
with respect to other appenders on a local file system, so lines never
interleave.

Rotation is per process: each process counts the bytes it wrote. Before
renaming, a process checks that the path still names the file it has
open; if another process rotated first, it only reopens. Two processes
rotating at the same instant can still lose a backup, so with several
writer processes prefer one file per process, with ``{pid}`` in the name.

A line cut short by a crash is ended with a newline by the next process
that opens the file, once the file has stopped changing, so the next
line starts whole instead of being glued to the broken one.
"""

from __future__ import annotations

import os
import time

from ._destinations import Descriptor, atomic_limit
from .exceptions import ConfigurationError

__all__ = ["FileDestination"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_SETTLE_S = 1.0


class FileDestination(Descriptor):
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
        self._limit = atomic_limit(fd)

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
