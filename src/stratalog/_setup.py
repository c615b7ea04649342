"""``configure()``: assemble processors, renderer and outputs into a pipeline.

This sits above every other module: it reads the settings, builds the
steps and swaps the whole pipeline in one assignment.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from . import _state, _stdlib, _telemetry
from ._render import Limits, console_renderer, json_renderer
from ._state import OperationObserver, Pipeline, Processor, Sink
from .config import LoggingConfig
from .processors import DEFAULT_REDACT_KEYS, DEFAULT_REDACT_PATTERNS, Redactor

__all__ = ["configure", "flush", "shutdown"]

_lock = threading.RLock()


def configure(
    config: LoggingConfig | None = None,
    *,
    processors: Iterable[Processor] = (),
    sink: Sink | None = None,
    observers: Iterable[OperationObserver] = (),
    **overrides: Any,
) -> LoggingConfig:
    """Configure stratalog from the environment, *config* and *overrides*.

    Safe to call again (at import and in lifespan startup, in test
    fixtures): the new pipeline replaces the old one whole, the old
    outputs are flushed and closed, and no handler is added twice.
    *processors* run after the built-in ones; *sink* replaces the outputs
    the configuration describes; *observers* are told of every operation.
    Operation spans, metrics and OTLP export join as the settings and
    installed integrations say.
    """
    with _lock:
        base = config if config is not None else LoggingConfig.from_env()
        settings = base.replace(**overrides) if overrides else base
        pipeline = Pipeline(
            config=settings,
            min_level=settings.level_no,
            processors=_telemetry.processors(
                settings, (*_builtin_processors(settings), *processors)
            ),
            render=_renderer(settings),
            sink=sink if sink is not None else _build_sink(settings),
            volatile=frozenset(settings.dedupe_volatile_fields),
            redact=_redactor(settings),
            observers=_telemetry.observers(settings, observers),
            captures=_state.PIPELINE.captures,
        )
        previous = _state.install(pipeline)
        if previous.sink is not pipeline.sink:
            previous.sink.close(settings.shutdown_timeout)
        if settings.capture_stdlib:
            _stdlib.install(settings.level_no)
        else:
            _stdlib.uninstall()
        _telemetry.propagate(settings)
        if settings.handle_signals and sink is None:
            _flush_on_signals()
        return settings


def _flush_on_signals() -> None:
    """Flush buffered lines on SIGTERM and SIGINT, then pass them on.

    Servers such as uvicorn end a graceful shutdown by raising the signal
    again with the handler that was there before them: this one, which
    writes what is buffered before the default action ends the process.
    """
    from .output import install_signal_handlers

    install_signal_handlers()


def _redactor(settings: LoggingConfig) -> Any:
    """Redaction runs on the caller's fields only: the ids never need it."""
    if not settings.redact:
        return None
    redactor = Redactor(
        keys=(*DEFAULT_REDACT_KEYS, *settings.redact_keys),
        patterns=(*DEFAULT_REDACT_PATTERNS, *settings.redact_patterns),
        max_depth=settings.max_depth,
        max_string=settings.max_string_length,
    )
    return redactor.scrub_fields


def _builtin_processors(settings: LoggingConfig) -> list[Processor]:
    steps: list[Processor] = []
    if settings.tracing != "off":
        from .tracing import trace_processor

        step = trace_processor(required=settings.tracing == "on")
        if step is not None:
            steps.append(step)
    return steps


def _renderer(settings: LoggingConfig) -> Any:
    limits = Limits(
        max_string=settings.max_string_length,
        max_depth=settings.max_depth,
        max_line_bytes=settings.max_line_bytes,
    )
    if settings.renders_console:
        return console_renderer(limits, colors=_colors_wanted())
    return json_renderer(limits)


def _colors_wanted() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _build_sink(settings: LoggingConfig) -> Sink:
    from .output import build_output

    return build_output(settings)


def flush(timeout: float | None = None) -> bool:
    """Write every buffered line now; return whether all were written.

    OTLP export, when running, sends its queue within what is left of
    *timeout*.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    written = _state.PIPELINE.sink.flush(timeout)
    left = None if deadline is None else max(deadline - time.monotonic(), 0)
    return _telemetry.flush(left) and written


def shutdown(timeout: float | None = None) -> bool:
    """Flush and close the outputs within *timeout* seconds.

    OTLP export, when running, gets what is left of *timeout* to send its
    queue. Lines logged afterwards are written straight through (see the
    README).
    """
    from . import output

    settings = _state.PIPELINE.config
    limit = settings.shutdown_timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    closed = _state.PIPELINE.sink.close(limit)
    left = max(deadline - time.monotonic(), 0.0)
    closed = output.shutdown(left) and closed
    left = max(deadline - time.monotonic(), 0.0)
    return _telemetry.shutdown(left) and closed
