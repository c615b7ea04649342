"""Shared fixtures: every test starts from a fresh pipeline and context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import stratalog
from _servers import redis_server  # noqa: F401 (a fixture, used by name)
from stratalog import _diagnostics, _state
from stratalog.context import request_context
from stratalog.testing import MemorySink


@pytest.fixture(autouse=True)
def _fresh_stratalog() -> Iterator[None]:
    """Restore the pipeline, the request variable and diagnostics."""
    before = _state.PIPELINE
    token = request_context.set(None)
    _diagnostics.reset()
    try:
        yield
    finally:
        request_context.reset(token)
        current = _state.PIPELINE
        if current is not before:
            current.sink.close(1.0)
        _state.install(before)


@pytest.fixture
def sink() -> MemorySink:
    """Configure stratalog to render JSON into memory; return the sink."""
    memory = MemorySink()
    stratalog.configure(sink=memory, format="json", level="debug")
    return memory
