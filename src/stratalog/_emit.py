"""The one path every line takes: build, merge the request, process, write.

Kept flat on purpose: it runs for every line of every request.
"""

from __future__ import annotations

import threading
from typing import Any

from structlog import DropEvent

from . import _diagnostics, _state
from ._render import now_iso
from .context import RequestContext

__all__ = ["LEVEL_NAMES", "RESERVED", "emit"]

LEVEL_NAMES: dict[int, str] = {
    10: "debug",
    20: "info",
    30: "warning",
    40: "error",
    50: "critical",
}

RESERVED = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "layer",
        "event",
        "correlation_id",
        "session_id",
        "user_id",
        "investigation_id",
        "agent_phase",
        "trace_id",
        "span_id",
    }
)
"""Keys the library owns; a user field so named becomes ``field_<name>``."""

_warned_collisions: set[str] = set()


def emit(
    logger: str,
    layer: str | None,
    level: int,
    event: str,
    fields: dict[str, Any],
    ctx: RequestContext | None,
    *,
    redacted: bool = False,
) -> None:
    """Write one line; never raises.

    *redacted* says the caller already redacted what *fields* may hide.
    A line logged while this thread is writing one (from a ``__repr__``
    the renderer calls, or from a processor) is dropped and reported:
    following it could recurse without end.
    """
    if _writing.active:
        _diagnostics.report(
            "recursion",
            f"{event!r} was logged while a line was being written "
            "(from a __repr__ or a processor) and was dropped",
        )
        return
    _writing.active = True
    try:
        _emit(logger, layer, level, event, fields, ctx, redacted)
    finally:
        _writing.active = False


class _Writing(threading.local):
    active = False


_writing = _Writing()


def _emit(
    logger: str,
    layer: str | None,
    level: int,
    event: str,
    fields: dict[str, Any],
    ctx: RequestContext | None,
    redacted: bool,
) -> None:
    pipeline = _state.PIPELINE
    try:
        if not pipeline.configured:
            pipeline = _state.ensure_configured()
            if level < pipeline.min_level:
                return
        line: dict[str, Any] = {
            "timestamp": now_iso(),
            "level": LEVEL_NAMES.get(level) or _level_name(level),
            "logger": logger,
        }
        if layer is not None:
            line["layer"] = layer
        line["event"] = event
        if ctx is not None:
            _merge_ids(line, ctx)
        if fields:
            if pipeline.redact is not None and not redacted:
                pipeline.redact(fields)
            if RESERVED.isdisjoint(fields):
                line.update(fields)
            else:
                _merge_colliding(line, fields)
        for processor in pipeline.processors:
            line = processor(None, line["level"], line)
        for capture in pipeline.captures:
            capture.append(line)
        pipeline.sink.write(pipeline.render(line), level)
    except DropEvent:
        return
    except Exception as exc:
        _diagnostics.report("emit", f"a {event!r} line was lost", exc)


def _merge_ids(line: dict[str, Any], ctx: RequestContext) -> None:
    ctx.lines_emitted += 1
    line["correlation_id"] = ctx.correlation_id
    if ctx.session_id is not None:
        line["session_id"] = ctx.session_id
    if ctx.user_id is not None:
        line["user_id"] = ctx.user_id
    if ctx.investigation_id is not None:
        line["investigation_id"] = ctx.investigation_id
    if ctx.agent_phase is not None:
        line["agent_phase"] = ctx.agent_phase


def _merge_colliding(line: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if key in RESERVED:
            renamed = f"field_{key}"
            if key not in _warned_collisions:
                _warned_collisions.add(key)
                _diagnostics.report(
                    f"field-collision:{key}",
                    f"the field {key!r} is reserved; "
                    f"it is written as {renamed!r}",
                )
            line[renamed] = value
        else:
            line[key] = value


def _level_name(level: int) -> str:
    if level >= 50:
        return "critical"
    if level >= 40:
        return "error"
    if level >= 30:
        return "warning"
    return "info" if level >= 20 else "debug"
