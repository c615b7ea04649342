"""Helpers for testing code that logs with stratalog; also a pytest plugin.

``capture_logs()`` yields the event dicts exactly as they leave the
processors (after the request merge, deduplication and redaction), and
:class:`MemorySink` keeps the rendered lines themselves. The fixtures
``log_output`` and ``memory_sink`` wrap them for pytest.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from . import _state

__all__ = ["MemorySink", "capture_logs", "log_output", "memory_sink"]


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Collect every processed event dict written inside the block."""
    _state.ensure_configured()
    captured: list[dict[str, Any]] = []
    _swap(lambda captures: (*captures, captured))
    try:
        yield captured
    finally:
        _swap(lambda captures: tuple(c for c in captures if c is not captured))


def _swap(change: Any) -> None:
    with _state._lock:
        current = _state.PIPELINE
        _state.install(
            dataclasses.replace(current, captures=change(current.captures))
        )


class MemorySink:
    """A sink that keeps rendered lines in memory, for tests."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed = False
        self._lock = threading.Lock()

    def write(self, line: bytes, level: int) -> None:
        """Keep *line*."""
        with self._lock:
            self.lines.append(line)

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing is buffered: always done."""
        return True

    def close(self, timeout: float) -> bool:
        """Mark the sink closed; lines written later are still kept."""
        self.closed = True
        return True

    def records(self) -> list[dict[str, Any]]:
        """Return every line parsed as JSON."""
        with self._lock:
            lines = list(self.lines)
        return [orjson.loads(line) for line in lines]

    def text(self) -> str:
        """Return everything written, decoded."""
        with self._lock:
            return b"".join(self.lines).decode("utf-8", "replace")


@pytest.fixture
def log_output() -> Iterator[list[dict[str, Any]]]:
    """Yield the processed event dicts logged during the test."""
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def memory_sink() -> Iterator[MemorySink]:
    """Configure stratalog to write JSON into memory for the test.

    The configuration in force before the test comes back afterwards.
    """
    from ._setup import configure

    before = _state.PIPELINE
    sink = MemorySink()
    configure(sink=sink, format="json")
    try:
        yield sink
    finally:
        _state.install(before)
