"""Start and end requests; build the summary a request ends with.

The coordinator keeps no per-request state: the live request exists only
in the :data:`~stratalog.request_context` variable, so one coordinator may
serve any number of concurrent requests.
"""

from __future__ import annotations

import time
from typing import Any

from . import _state
from ._emit import emit
from ._render import iso_at
from .context import (
    ID_FIELDS,
    RequestContext,
    new_correlation_id,
    request_context,
)
from .errors import ErrorContext
from .performance import PerformanceTracker

__all__ = ["LoggingCoordinator", "build_summary"]

_MAX_DEDUP_KEYS = 50


class LoggingCoordinator:
    """Open and close request contexts and produce their summaries."""

    __slots__ = ()

    def start_request(self, **initial_context: Any) -> RequestContext:
        """Open a request and make it current.

        Known ids (``correlation_id``, ``session_id``, ``user_id``,
        ``investigation_id``, ``agent_phase``) become fields; any other
        keyword becomes an attribute. A correlation id is made when none is
        given.
        """
        config = _state.config()
        ids = {
            key: str(initial_context.pop(key))
            for key in ID_FIELDS
            if initial_context.get(key) is not None
        }
        initial_context = {
            k: v for k, v in initial_context.items() if k not in ID_FIELDS
        }
        ctx = RequestContext(
            correlation_id=ids.get("correlation_id") or new_correlation_id(),
            session_id=ids.get("session_id"),
            user_id=ids.get("user_id"),
            investigation_id=ids.get("investigation_id"),
            agent_phase=ids.get("agent_phase"),
            max_logged_operations=config.max_logged_operations,
            max_attributes_size=config.max_attributes_size,
        )
        ctx.error_context = ErrorContext(config.max_error_history)
        ctx.performance_tracker = PerformanceTracker(config.thresholds)
        for key, value in initial_context.items():
            ctx.set_attribute(key, value)
        ctx._previous = request_context.get()
        ctx._token = request_context.set(ctx)
        return ctx

    def end_request(
        self, context: RequestContext | None = None
    ) -> dict[str, Any]:
        """Close the current request (or *context*) and return its summary.

        The variable is reset with the token of its ``set``, so an outer
        request comes back intact. Returns ``{}`` outside any request.
        """
        ctx = context if context is not None else request_context.get()
        if ctx is None:
            return {}
        summary = build_summary(ctx)
        _leave(ctx)
        return summary

    def get_context(self) -> RequestContext | None:
        """Return the current request context, or ``None``."""
        return request_context.get()

    def log_once(
        self,
        key: str,
        logger: Any,
        level: int | str,
        message: str,
        **fields: Any,
    ) -> bool:
        """Write *message* through *logger* once per request under *key*.

        Outside a request the key is remembered for the process (the last
        10,000 keys). Returns whether the line was written.
        """
        ctx = request_context.get()
        if ctx is not None:
            if ctx.has_logged(key):
                ctx.note_suppressed(key)
                return False
            ctx.mark_logged(key)
        else:
            if key in _process_once:
                return False
            if len(_process_once) >= 10_000:
                _process_once.pop(next(iter(_process_once)))
            _process_once[key] = None
        logger.log(level, message, **fields)
        return True


_process_once: dict[str, None] = {}


def _leave(ctx: RequestContext) -> None:
    token, ctx._token = ctx._token, None
    if token is None:
        return
    try:
        request_context.reset(token)
    except (ValueError, RuntimeError):
        # Ended from another context than the one that started it (a task
        # or thread): restore by hand what the start replaced.
        if request_context.get() is ctx:
            request_context.set(ctx._previous)


def build_summary(ctx: RequestContext) -> dict[str, Any]:
    """Return the summary of *ctx* as of now (see the README's reference)."""
    end = time.perf_counter()
    summary: dict[str, Any] = ctx.ids()
    summary["start_time"] = _iso(ctx)
    summary["duration_ms"] = round((end - ctx.start_perf) * 1000, 3)
    history = ctx.error_context
    errors = history.summary() if history else []
    error_count = len(errors) + (history.dropped if history else 0)
    suppressed = ctx.suppressed_total
    summary["counts"] = {
        "lines": ctx.lines_emitted,
        "suppressed": suppressed,
        "operations": ctx.operation_count,
        "errors": error_count,
    }
    summary["error"] = bool(errors)
    summary["error_count"] = error_count
    if errors:
        summary["error_type"] = errors[0]["type"]
        summary["errors"] = errors
    tracker = ctx.performance_tracker
    if tracker is not None:
        summary["performance_violations"] = list(tracker.violations)
        summary["request_timeline"] = tracker.timeline(
            ctx.start_time, ctx.start_perf, end
        )
        summary["operations"] = tracker.operations()
    summary["dedup"] = _dedup_summary(ctx, suppressed)
    summary["attributes"] = dict(ctx.attributes)
    return summary


def _iso(ctx: RequestContext) -> str:
    return iso_at(ctx.start_time.timestamp())


def _dedup_summary(ctx: RequestContext, suppressed: int) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    ranked = sorted(
        ctx.suppressed.items(), key=lambda item: item[1].count, reverse=True
    )
    for key, entry in ranked[:_MAX_DEDUP_KEYS]:
        keys[key] = {
            "count": ctx.get_operation_count(key) + entry.count,
            "suppressed": entry.count,
            "first": _wall(ctx, entry.first),
            "last": _wall(ctx, entry.last),
        }
    return {"suppressed": suppressed, "keys": keys}


def _wall(ctx: RequestContext, perf: float) -> str:
    return iso_at(ctx.start_time.timestamp() + perf - ctx.start_perf)


def emit_summary(
    summary: dict[str, Any],
    ctx: RequestContext,
    *,
    event: str = "request.completed",
    level: int = 20,
    logger: str = "stratalog.request",
    extra: dict[str, Any] | None = None,
) -> None:
    """Write *summary* as one line carrying *ctx*'s ids, never raising."""
    fields = {k: v for k, v in summary.items() if k not in ID_FIELDS}
    if extra:
        fields.update(extra)
    # Only what callers put in can hold a secret: the attributes, error
    # messages and the extra fields. The computed rest is never searched.
    redact = _state.PIPELINE.redact
    if redact is not None:
        parts = {k: fields[k] for k in _CALLER_KEYS if fields.get(k)}
        if extra:
            parts.update(
                (k, v) for k, v in extra.items() if not isinstance(v, _PLAIN)
            )
        if parts:
            redact(parts)
            fields.update(parts)
    emit(logger, "api", level, event, fields, ctx, redacted=True)


_CALLER_KEYS = ("attributes", "errors")
_PLAIN = (int, float, bool, type(None))
