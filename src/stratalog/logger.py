"""The logger every layer uses: levels, operations, boundaries, events.

A call first compares its level with the pipeline's minimum, so a filtered
call costs one comparison. Lines that may repeat within a request
(operation start and completion, boundaries, warnings and errors) pass the
request's deduplication first; exceptions pass the error cascade, so each
failure carries its traceback once.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Mapping, Sized
from types import TracebackType
from typing import Any

from . import _diagnostics, _state
from ._emit import emit
from ._render import key_text
from ._state import OperationObserver
from .config import LEVELS
from .context import RequestContext, request_context
from .dedup import DeduplicationPolicy, fingerprint, generate_operation_key
from .errors import (
    ErrorContext,
    ErrorRecord,
    exception_message,
    format_exception,
)
from .performance import PerformanceTracker

__all__ = ["UnifiedLogger", "current_operation", "get_unified_logger"]

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50

# The innermost operation entered in this context. An ended operation may
# stay here (ended out of order, or from another context, such as a
# generator finalised elsewhere): readers skip ended ones.
_current_operation: contextvars.ContextVar[Operation | None] = (
    contextvars.ContextVar("stratalog_operation", default=None)
)

# Errors seen outside any request share one bounded history, so the
# cascade rules hold for background jobs too.
_process_errors = ErrorContext()

_STRICT = DeduplicationPolicy(DeduplicationPolicy.STRICT)
_NONE = DeduplicationPolicy(DeduplicationPolicy.NONE)

# Fingerprints of warnings whose fields are short plain scalars, so that a
# line repeated within a request costs a lookup rather than a rebuilt key.
# Value types are part of the memo key: 1, 1.0 and True print apart.
_fingerprints: dict[tuple[Any, ...], str] = {}
_MEMO_ENTRIES = 4096
_MEMO_TEXT = 256
_PLAIN = frozenset({str, int, float, bool, type(None)})


def current_operation() -> tuple[str, str] | None:
    """Return ``(layer, operation)`` of the innermost open operation."""
    operation = _innermost_open()
    return None if operation is None else (operation.layer, operation.name)


def _innermost_open() -> Operation | None:
    operation = _current_operation.get()
    while operation is not None and operation._done:
        operation = operation._parent
    return operation


_LEVEL_ALIASES = {"warn": WARNING, "fatal": CRITICAL, "exception": ERROR}


def _level_number(level: int | str) -> int:
    """Return the stdlib number of *level*, a number or a name.

    Names ignore case and include stdlib's aliases; an unknown name is
    info, so that a typo never loses the line.
    """
    if not isinstance(level, str):
        return level
    name = level.lower()
    return LEVELS.get(name) or _LEVEL_ALIASES.get(name, INFO)


def allowed_layers() -> tuple[str, ...]:
    """Return the layers known to the configuration in force."""
    return tuple(_state.config().thresholds)


def _check_layer(layer: str) -> None:
    if layer not in _state.config().thresholds:
        raise ValueError(
            f"unknown layer {layer!r}; use one of: "
            f"{', '.join(allowed_layers())} "
            "(add a layer by configuring a threshold for it)"
        )


class UnifiedLogger:
    """One logger per module and layer, the same API in every layer.

    Level methods take the event name positionally, so any keyword, even
    ``event`` or ``level``, is a field: reserved names are written as
    ``field_<name>``. A call never raises into the caller.
    """

    __slots__ = ("coordinator", "dedup_policy", "layer", "logger_name")

    def __init__(
        self,
        logger_name: str,
        layer: str,
        *,
        dedup_policy: DeduplicationPolicy | None = None,
    ) -> None:
        from .coordinator import LoggingCoordinator

        _check_layer(layer)
        self.logger_name = logger_name
        self.layer = layer
        self.dedup_policy = dedup_policy or _STRICT
        self.coordinator = LoggingCoordinator()

    def __repr__(self) -> str:
        return f"UnifiedLogger({self.logger_name!r}, {self.layer!r})"

    # -- levels -------------------------------------------------------------

    def debug(self, event: str, /, **fields: Any) -> None:
        """Write a debug line."""
        if _state.PIPELINE.min_level <= DEBUG:
            self._log(DEBUG, event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        """Write an info line."""
        if _state.PIPELINE.min_level <= INFO:
            self._log(INFO, event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        """Write a warning line; repeats in a request are counted."""
        if _state.PIPELINE.min_level <= WARNING:
            self._log(WARNING, event, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        """Write an error line; pass ``exc_info`` to attach an exception."""
        if _state.PIPELINE.min_level <= ERROR:
            self._log(ERROR, event, fields)

    def critical(self, event: str, /, **fields: Any) -> None:
        """Write a critical line."""
        if _state.PIPELINE.min_level <= CRITICAL:
            self._log(CRITICAL, event, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """Write an error line with the exception being handled."""
        if _state.PIPELINE.min_level <= ERROR:
            fields.setdefault("exc_info", True)
            self._log(ERROR, event, fields)

    def log(self, level: int | str, event: str, /, **fields: Any) -> None:
        """Write a line at *level* (a number or a level name)."""
        number = _level_number(level)
        if number >= _state.PIPELINE.min_level:
            self._log(number, event, fields)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        try:
            ctx = request_context.get()
            exc = None
            if "exc_info" in fields:
                exc = _exception_from(fields.pop("exc_info"))
            if (
                level >= WARNING
                and ctx is not None
                and not self._first_of_kind(ctx, event, exc, fields)
            ):
                return
            if exc is not None:
                here = _innermost_open()
                _attach_error(
                    ctx, exc, self.layer, here.name if here else None, fields
                )
            emit(self.logger_name, self.layer, level, event, fields, ctx)
        except Exception as error:
            _diagnostics.report("log", f"the {event!r} call failed", error)

    def _first_of_kind(
        self,
        ctx: RequestContext,
        event: str,
        exc: BaseException | None,
        fields: dict[str, Any],
    ) -> bool:
        pipeline = _state.ensure_configured()
        if not pipeline.config.dedupe:
            return True
        key = _fingerprint(self.layer, event, exc, fields, pipeline.volatile)
        if ctx.has_logged(key):
            ctx.note_suppressed(key)
            if exc is not None:
                _errors_of(ctx).repeat_under(key, exc)
            return False
        ctx.mark_logged(key)
        if exc is not None:
            _errors_of(ctx).first_under(key, exc)
        return True

    # -- operations and boundaries -----------------------------------------

    def operation(self, name: str, /, **fields: Any) -> Operation:
        """Time a block as one operation of this logger's layer.

        Works with ``with`` and ``async with`` and yields a dict whose keys
        land on the completion line. A ``layer`` keyword runs the operation
        in another known layer.
        """
        layer = fields.pop("layer", None)
        if layer is None or layer == self.layer:
            layer = self.layer
        elif layer not in _state.config().thresholds:
            _diagnostics.report(
                "operation-layer",
                f"unknown layer {layer!r} for operation {name!r}; "
                f"using {self.layer!r}",
            )
            layer = self.layer
        return Operation(self, name, layer, fields)

    def log_boundary(
        self,
        operation: str,
        direction: str,
        data: Any = None,
        **fields: Any,
    ) -> None:
        """Write where data crosses into or out of this layer.

        The payload is described by type, size and (for mappings) keys,
        never rendered whole.
        """
        if _state.PIPELINE.min_level > INFO:
            return
        try:
            ctx = request_context.get()
            key = generate_operation_key(
                self.layer, "boundary", operation, direction
            )
            if ctx is not None and not self._admit(ctx, key):
                return
            line = {"operation": operation, "direction": direction}
            if data is not None:
                line.update(_describe_payload(data))
            line.update(fields)
            emit(
                self.logger_name,
                self.layer,
                INFO,
                f"boundary.{direction}",
                line,
                ctx,
            )
        except Exception as error:
            _diagnostics.report("log", "a boundary line failed", error)

    def _admit(self, ctx: RequestContext, key: str) -> bool:
        policy = self.dedup_policy
        if not _state.config().dedupe:
            policy = _NONE
        if policy.should_allow_duplicate(key, ctx):
            ctx.mark_logged(key)
            return True
        ctx.note_suppressed(key)
        return False

    # -- events and metrics -------------------------------------------------

    def log_event(
        self, event: str, /, severity: str = "info", **fields: Any
    ) -> None:
        """Write an event line; events are never deduplicated."""
        level = _level_number(severity)
        if level >= _state.PIPELINE.min_level:
            self._emit_plain(level, event, fields)

    def log_business_event(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        severity: str = "info",
    ) -> None:
        """Write a business event named *name* with payload ``data``."""
        level = _level_number(severity)
        if level >= _state.PIPELINE.min_level:
            fields: dict[str, Any] = {"event_kind": "business"}
            if data is not None:
                fields["data"] = data
            self._emit_plain(level, name, fields)

    def log_metric(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        **tags: Any,
    ) -> None:
        """Write one measurement as a ``metric.recorded`` line."""
        if _state.PIPELINE.min_level <= INFO:
            fields: dict[str, Any] = {"metric": name, "value": value}
            if unit is not None:
                fields["unit"] = unit
            fields.update(tags)
            self._emit_plain(INFO, "metric.recorded", fields)

    def _emit_plain(
        self, level: int, event: str, fields: dict[str, Any]
    ) -> None:
        emit(
            self.logger_name,
            self.layer,
            level,
            event,
            fields,
            request_context.get(),
        )


class Operation:
    """A timed operation; made by :meth:`UnifiedLogger.operation`.

    However the block ends (normally, by an exception, by cancellation, or
    because the generator or task holding it was closed from elsewhere),
    the end is recorded once and nothing is raised by the operation itself.
    Being closed from elsewhere counts as cancelled.
    """

    __slots__ = (
        "_ctx",
        "_done",
        "_logger",
        "_observed",
        "_parent",
        "_start",
        "_token",
        "data",
        "layer",
        "name",
    )

    def __init__(
        self,
        logger: UnifiedLogger,
        name: str,
        layer: str,
        fields: dict[str, Any],
    ) -> None:
        self._logger = logger
        self.name = name
        self.layer = layer
        self.data = fields
        self._ctx: RequestContext | None = None
        self._token: contextvars.Token[Operation | None] | None = None
        self._parent: Operation | None = None
        self._start = 0.0
        self._done = False
        self._observed: tuple[tuple[OperationObserver, Any], ...] = ()

    @property
    def context(self) -> RequestContext | None:
        """The request this operation runs in, if any."""
        return self._ctx

    def __enter__(self) -> dict[str, Any]:
        return self._begin()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> dict[str, Any]:
        return self._begin()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    def _begin(self) -> dict[str, Any]:
        self._done = False
        self._start = time.perf_counter()
        try:
            ctx = self._ctx = request_context.get()
            if ctx is not None:
                ctx.operation_count += 1
                _tracker_of(ctx).enter(self.layer, self._start)
            self._parent = _current_operation.get()
            self._token = _current_operation.set(self)
            observers = _state.PIPELINE.observers
            if observers:
                self._observed = _observe_start(self, observers)
            if _state.PIPELINE.min_level <= DEBUG:
                self._write(DEBUG, "operation.started", "started", {})
        except Exception as error:
            _diagnostics.report(
                "operation", "an operation failed to start", error
            )
        return self.data

    def _finish(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        end = time.perf_counter()
        try:
            self._leave_context()
            duration = end - self._start
            exceeds, threshold = self._record(end, duration)
            fields = {**self.data}
            fields["operation"] = self.name
            fields["duration_ms"] = round(duration * 1000, 3)
            if exc is None:
                outcome = "slow" if exceeds else "completed"
                self._completed(fields, exceeds, threshold)
            elif isinstance(exc, Exception):
                outcome = "failed"
                self._failed(fields, exc, exceeds)
            else:
                outcome = "cancelled"
                self._cancelled(fields, exc)
            if self._observed:
                # After the line, so that it still carries a span's ids.
                _observe_end(self, exc, duration, outcome)
        except Exception as error:
            _diagnostics.report(
                "operation", "an operation end was lost", error
            )

    def _leave_context(self) -> None:
        token, self._token = self._token, None
        if token is None or _current_operation.get() is not self:
            # Ended out of order, or from another context: an inner
            # operation still owns the variable, which skips this one now
            # that it has ended.
            return
        try:
            _current_operation.reset(token)
        except (ValueError, RuntimeError):
            # A copy of the context that entered it (a task or generator
            # finalised elsewhere): the token belongs to the original.
            pass

    def _record(self, end: float, duration: float) -> tuple[bool, float]:
        ctx = self._ctx
        if ctx is None:
            threshold = _state.config().thresholds.get(self.layer, 1.0)
            return duration > threshold, threshold
        tracker = _tracker_of(ctx)
        tracker.leave(self.layer, end)
        return tracker.record_timing(self.layer, self.name, duration)

    def _completed(
        self, fields: dict[str, Any], exceeds: bool, threshold: float
    ) -> None:
        if exceeds:
            if _state.PIPELINE.min_level <= WARNING:
                fields["threshold_ms"] = round(threshold * 1000, 3)
                self._emit(WARNING, "operation.slow", fields)
            return
        if _state.PIPELINE.min_level <= INFO:
            self._write(INFO, "operation.completed", "completed", fields)

    def _failed(
        self, fields: dict[str, Any], exc: Exception, exceeds: bool
    ) -> None:
        if _state.PIPELINE.min_level > ERROR:
            return
        if exceeds:
            fields["slow"] = True
        ctx = self._ctx
        logger = self._logger
        # The operation's own fields tell runs apart: a failure of another
        # item is written, the same failure again is counted.
        identity = {**self.data, "operation": self.name}
        if ctx is not None and not logger._first_of_kind(
            ctx, "operation.failed", exc, identity
        ):
            return
        _attach_error(ctx, exc, self.layer, self.name, fields)
        self._emit(ERROR, "operation.failed", fields)

    def _cancelled(self, fields: dict[str, Any], exc: BaseException) -> None:
        if _state.PIPELINE.min_level <= INFO:
            fields["outcome"] = "cancelled"
            fields["reason"] = type(exc).__name__
            self._emit(INFO, "operation.cancelled", fields)

    def _write(
        self, level: int, event: str, phase: str, fields: dict[str, Any]
    ) -> None:
        ctx = self._ctx
        if ctx is not None:
            key = f"{self.layer}.operation.{self.name}.{phase}"
            if not self._logger._admit(ctx, key):
                return
        if not fields:
            fields = {"operation": self.name}
        self._emit(level, event, fields)

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        emit(
            self._logger.logger_name,
            self.layer,
            level,
            event,
            fields,
            self._ctx,
        )


def _observe_start(
    operation: Operation, observers: tuple[OperationObserver, ...]
) -> tuple[tuple[OperationObserver, Any], ...]:
    observed = []
    for observer in observers:
        try:
            observed.append((observer, observer.started(operation)))
        except Exception as error:
            _diagnostics.report("observer", "an observer failed", error)
    return tuple(observed)


def _observe_end(
    operation: Operation,
    exc: BaseException | None,
    duration: float,
    outcome: str,
) -> None:
    observed, operation._observed = operation._observed, ()
    for observer, state in reversed(observed):
        try:
            observer.finished(operation, state, exc, duration, outcome)
        except Exception as error:
            _diagnostics.report("observer", "an observer failed", error)


_loggers: dict[tuple[str, str], UnifiedLogger] = {}


def get_unified_logger(name: str, layer: str) -> UnifiedLogger:
    """Return the logger for *name* in *layer*, made once and cached.

    Raises ValueError naming the allowed layers for an unknown *layer*.
    """
    logger = _loggers.get((name, layer))
    if logger is None:
        logger = _loggers.setdefault((name, layer), UnifiedLogger(name, layer))
    return logger


def _tracker_of(ctx: RequestContext) -> PerformanceTracker:
    tracker = ctx.performance_tracker
    if tracker is None:
        tracker = ctx.performance_tracker = PerformanceTracker()
    return tracker


def _errors_of(ctx: RequestContext | None) -> ErrorContext:
    if ctx is None:
        return _process_errors
    errors = ctx.error_context
    if errors is None:
        errors = ctx.error_context = ErrorContext(
            _state.config().max_error_history
        )
    return errors


def _attach_error(
    ctx: RequestContext | None,
    exc: BaseException,
    layer: str | None,
    operation: str | None,
    fields: dict[str, Any],
) -> ErrorRecord:
    """Add error fields: the full record on first sight, else a reference."""
    errors = _errors_of(ctx)
    record = errors.find(exc)
    fields.setdefault("error_type", type(exc).__name__)
    if record is None:
        record = errors.record(exc, layer, operation)
        fields.setdefault("error_id", record.error_id)
        fields.setdefault("error_message", record.message)
        fields.setdefault("exception", format_exception(exc))
        return record
    record.crossed(layer)
    fields.setdefault("error_id", record.error_id)
    fields.setdefault("error_message", exception_message(exc))
    fields["propagated"] = True
    fields.setdefault("origin_layer", record.origin_layer)
    fields.setdefault("origin_operation", record.origin_operation)
    return record


def _fingerprint(
    layer: str,
    event: str,
    exc: BaseException | None,
    fields: dict[str, Any],
    volatile: frozenset[str],
) -> str:
    if exc is not None:
        kind = type(exc).__name__
        return fingerprint(layer, event, kind, fields, volatile)
    memo = _memo_key(layer, event, fields, volatile)
    key = None if memo is None else _fingerprints.get(memo)
    if key is None:
        key = fingerprint(layer, event, _error_type(fields), fields, volatile)
        if memo is not None:
            if len(_fingerprints) >= _MEMO_ENTRIES:
                _fingerprints.clear()
            _fingerprints[memo] = key
    return key


def _memo_key(
    layer: str, event: str, fields: dict[str, Any], volatile: frozenset[str]
) -> tuple[Any, ...] | None:
    # The exception being handled is part of the fingerprint (see
    # _error_type), so it is part of the memo key too.
    handled = sys.exception()
    parts: list[Any] = [layer, event, volatile, type(handled)]
    for name, value in fields.items():
        kind = type(value)
        if kind not in _PLAIN or (kind is str and len(value) > _MEMO_TEXT):
            return None
        parts.append((name, value, kind))
    return tuple(parts)


def _exception_from(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        value = exc_info[1]
        return value if isinstance(value, BaseException) else None
    if exc_info:
        return sys.exception()
    return None


def _error_type(fields: Mapping[str, Any]) -> str | None:
    """Return the error type a line is about, for its dedup key.

    Without an exception among the fields or an ``error_type``, a line
    written while an exception is handled is about that exception.
    """
    for value in fields.values():
        if isinstance(value, BaseException):
            return type(value).__name__
    kind = fields.get("error_type")
    if isinstance(kind, str):
        return kind
    handled = sys.exception()
    return None if handled is None else type(handled).__name__


def _describe_payload(data: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"payload_type": type(data).__name__}
    if isinstance(data, Sized):
        try:
            facts["payload_size"] = len(data)
        except Exception:
            pass
    if isinstance(data, Mapping):
        keys = [key_text(k) for _, k in zip(range(20), data, strict=False)]
        facts["payload_keys"] = keys
    return facts
