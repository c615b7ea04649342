"""The running pipeline, swapped as a whole by :func:`stratalog.configure`.

Readers take one reference to :data:`PIPELINE` and use it for the whole
line, so a concurrent ``configure()`` never mixes two pipelines in a line.
Until ``configure()`` runs, the first line (or the first read of the
settings) configures from the environment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import LoggingConfig

__all__ = [
    "PIPELINE",
    "OperationObserver",
    "Pipeline",
    "Sink",
    "config",
    "ensure_configured",
]

Processor = Callable[[Any, str, dict[str, Any]], dict[str, Any]]


class Sink(Protocol):
    """Where rendered lines go; ``write`` never blocks on I/O."""

    def write(self, line: bytes, level: int) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self, timeout: float) -> bool: ...


class OperationObserver(Protocol):
    """Told when an operation starts and ends (spans, metrics).

    ``started`` returns a state object handed back to ``finished``;
    *outcome* is ``completed``, ``slow``, ``failed`` or ``cancelled``.
    """

    def started(self, operation: Any) -> Any: ...

    def finished(
        self,
        operation: Any,
        state: Any,
        exc: BaseException | None,
        duration: float,
        outcome: str,
    ) -> None: ...


class _NullSink:
    def write(self, line: bytes, level: int) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float) -> bool:
        return True


def _render_nothing(event: dict[str, Any]) -> bytes:
    return b""


@dataclass(slots=True, eq=False)
class Pipeline:
    """One consistent set of everything a line passes through."""

    config: LoggingConfig
    min_level: int
    processors: tuple[Processor, ...] = ()
    render: Callable[[dict[str, Any]], bytes] = _render_nothing
    sink: Sink = field(default_factory=_NullSink)
    captures: tuple[list[dict[str, Any]], ...] = ()
    volatile: frozenset[str] = frozenset()
    redact: Callable[[dict[str, Any]], None] | None = None
    observers: tuple[OperationObserver, ...] = ()
    configured: bool = True


PIPELINE = Pipeline(config=LoggingConfig(), min_level=0, configured=False)
"""The pipeline lines pass through; replaced, never mutated."""

_lock = threading.RLock()


def install(pipeline: Pipeline) -> Pipeline:
    """Make *pipeline* current; return the one it replaces."""
    global PIPELINE
    with _lock:
        previous, PIPELINE = PIPELINE, pipeline
    return previous


def config() -> LoggingConfig:
    """Return the configuration in force, configuring first if need be.

    Settings read before the first line (a request's bounds and
    thresholds, the allowed layers) must be the environment's too, not
    the built-in defaults.
    """
    return ensure_configured().config


def ensure_configured() -> Pipeline:
    """Configure from the environment if nothing configured yet."""
    if PIPELINE.configured:
        return PIPELINE
    with _lock:
        if not PIPELINE.configured:
            from ._setup import configure

            configure()
    return PIPELINE
