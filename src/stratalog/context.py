"""The request context: one mutable object per request, held in a ContextVar.

Design note. asyncio tasks and ``asyncio.to_thread`` run on a *copy* of the
context, and FastAPI runs plain ``def`` dependencies that way. A value
``set`` on the variable inside such a copy never reaches the code that
started the request. So the variable is set once per request, to a
:class:`RequestContext`, and everything learned later (``user_id`` after a
session lookup, attributes bound by an endpoint) is written *into that
object*. Every copy of the context points at the same object, so the
request's summary sees it all.

The helpers at the bottom carry the request into places that do not copy
the context by themselves: ``loop.run_in_executor`` and
``Executor.submit``. Tasks and ``asyncio.to_thread`` copy it already.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import orjson

from ._ids import uuid4_string
from ._render import Limits, to_jsonable

if TYPE_CHECKING:
    from .errors import ErrorContext
    from .performance import PerformanceTracker

__all__ = [
    "ID_FIELDS",
    "ContextManager",
    "RequestContext",
    "bind",
    "bind_context",
    "get_context",
    "new_correlation_id",
    "request_context",
    "run_in_executor",
    "submit",
    "to_thread",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

ID_FIELDS: tuple[str, ...] = (
    "correlation_id",
    "session_id",
    "user_id",
    "investigation_id",
    "agent_phase",
)
"""Request fields that go on every line of the request when set."""


def new_correlation_id() -> str:
    """Return a random UUID4 string, without a system call (see ``_ids``)."""
    return uuid4_string()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_ATTRIBUTE_LIMITS = Limits(max_string=1_024, max_depth=8, max_items=64)


def _attribute_size(key: str, value: Any) -> int:
    try:
        # Plain JSON values (the common case) need no walk.
        rendered = orjson.dumps(value)
    except Exception:
        try:
            rendered = orjson.dumps(to_jsonable(value, _ATTRIBUTE_LIMITS))
        except Exception:
            return len(key) + 64
    return len(key) + len(rendered)


class _Seen:
    """How often a dedup key was logged and when (``perf_counter``)."""

    __slots__ = ("count", "last")

    def __init__(self, now: float) -> None:
        self.count = 1
        self.last = now


class _Suppressed:
    """Lines held back under one key: count, first and last (perf)."""

    __slots__ = ("count", "first", "last")

    def __init__(self, now: float) -> None:
        self.count = 0
        self.first = now
        self.last = now


@dataclass(slots=True, eq=False)
class RequestContext:
    """Everything stratalog knows about one request.

    The ids are set when known and stay ``None`` otherwise; the
    correlation id is fixed for the request's life. Collections are
    bounded: logged operation keys (least recently logged evicted first),
    attributes (by total rendered size, oldest evicted first) and, through
    :class:`~stratalog.ErrorContext`, the error history.

    The object is shared by every task and thread working for the request.
    Counters may miss an increment when threads log at the very same
    moment; ids and attributes are plain attribute writes and always land.
    """

    correlation_id: str = field(default_factory=new_correlation_id)
    session_id: str | None = None
    user_id: str | None = None
    investigation_id: str | None = None
    agent_phase: str | None = None
    start_time: dt.datetime = field(default_factory=_utcnow)
    attributes: dict[str, Any] = field(default_factory=dict)
    logged_operations: OrderedDict[str, _Seen] = field(
        default_factory=OrderedDict
    )
    error_context: ErrorContext | None = None
    performance_tracker: PerformanceTracker | None = None
    max_logged_operations: int = 10_000
    max_attributes_size: int = 10_000
    start_perf: float = field(default_factory=time.perf_counter)
    lines_emitted: int = 0
    operation_count: int = 0
    suppressed: dict[str, _Suppressed] = field(default_factory=dict)
    suppressed_total: int = 0
    _attribute_sizes: dict[str, int] = field(default_factory=dict)
    _attribute_total: int = 0
    _token: contextvars.Token[RequestContext | None] | None = None
    _previous: RequestContext | None = None

    # -- deduplication bookkeeping -----------------------------------------

    def has_logged(self, operation_key: str) -> bool:
        """Whether a line under *operation_key* was written in this request."""
        return operation_key in self.logged_operations

    def mark_logged(self, operation_key: str) -> None:
        """Record that a line under *operation_key* was written now."""
        now = time.perf_counter()
        seen = self.logged_operations.get(operation_key)
        if seen is not None:
            seen.count += 1
            seen.last = now
            self.logged_operations.move_to_end(operation_key)
            return
        self.logged_operations[operation_key] = _Seen(now)
        if len(self.logged_operations) > self.max_logged_operations:
            self.logged_operations.popitem(last=False)

    def get_last_logged_time(self, operation_key: str) -> float | None:
        """Return when *operation_key* was last logged (``perf_counter``)."""
        seen = self.logged_operations.get(operation_key)
        return None if seen is None else seen.last

    def get_operation_count(self, operation_key: str) -> int:
        """Return how many lines under *operation_key* were written."""
        seen = self.logged_operations.get(operation_key)
        return 0 if seen is None else seen.count

    def note_suppressed(self, operation_key: str) -> None:
        """Count one line held back under *operation_key*, now.

        Every held-back line counts in ``suppressed_total``; per-key
        entries are kept for at most ``max_logged_operations`` keys.
        """
        self.suppressed_total += 1
        now = time.perf_counter()
        entry = self.suppressed.get(operation_key)
        if entry is None:
            if len(self.suppressed) >= self.max_logged_operations:
                return
            seen = self.logged_operations.get(operation_key)
            first = now if seen is None else seen.last
            entry = self.suppressed[operation_key] = _Suppressed(first)
        entry.count += 1
        entry.last = now

    def wall_time(self, perf: float) -> dt.datetime:
        """Return the wall-clock time of a ``perf_counter`` reading."""
        return self.start_time + dt.timedelta(seconds=perf - self.start_perf)

    # -- attributes ---------------------------------------------------------

    def set_attribute(self, key: str, value: Any) -> None:
        """Set an attribute, keeping the total size under the limit.

        Size is the length of the rendered JSON of key and value. When a new
        value would push the total over ``max_attributes_size``, the oldest
        attributes are removed until it fits; a single value larger than the
        whole limit is stored as a marker naming its size instead, and when
        not even the marker fits, the key is dropped.
        """
        size = _attribute_size(key, value)
        self._forget_attribute(key)
        limit = self.max_attributes_size
        if size > limit:
            value = f"<dropped: {size} bytes, attribute limit is {limit}>"
            size = _attribute_size(key, value)
            if size > limit:
                return
        while self.attributes and self._attribute_total + size > limit:
            self._forget_attribute(next(iter(self.attributes)))
        self.attributes[key] = value
        self._attribute_sizes[key] = size
        self._attribute_total += size

    def _forget_attribute(self, key: str) -> None:
        if key in self.attributes:
            del self.attributes[key]
            self._attribute_total -= self._attribute_sizes.pop(key, 0)

    @property
    def attributes_size(self) -> int:
        """The accounted size of all attributes, in rendered bytes."""
        return self._attribute_total

    def bind(self, **fields: Any) -> None:
        """Set known ids as fields and everything else as attributes.

        The correlation id is fixed for the request and is never changed.
        """
        for key, value in fields.items():
            if key == "correlation_id":
                continue
            if key in ID_FIELDS:
                setattr(self, key, None if value is None else str(value))
            else:
                self.set_attribute(key, value)

    def ids(self) -> dict[str, str]:
        """Return the ids that are set, by name."""
        found = {"correlation_id": self.correlation_id}
        for name in ID_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        return found


request_context: contextvars.ContextVar[RequestContext | None] = (
    contextvars.ContextVar("stratalog_request_context", default=None)
)
"""The current request, or ``None`` outside any request."""


def get_context() -> RequestContext | None:
    """Return the current request context, or ``None``."""
    return request_context.get()


def bind(**fields: Any) -> None:
    """Add ids or attributes to the current request; no-op outside one.

    Safe from sync dependencies run in a thread: it changes the shared
    request object rather than the context variable.
    """
    ctx = request_context.get()
    if ctx is not None:
        ctx.bind(**fields)


class ContextManager:
    """Set, read and carry the request context across async boundaries."""

    @staticmethod
    def set_context(
        context: RequestContext | None,
    ) -> contextvars.Token[RequestContext | None]:
        """Make *context* current; return the token that undoes it."""
        return request_context.set(context)

    @staticmethod
    def get_context() -> RequestContext | None:
        """Return the current request context, or ``None``."""
        return request_context.get()

    @staticmethod
    def clear_context() -> contextvars.Token[RequestContext | None]:
        """Leave the current request; return the token that undoes it."""
        return request_context.set(None)

    @staticmethod
    def reset_context(token: contextvars.Token[RequestContext | None]) -> None:
        """Undo a :meth:`set_context` or :meth:`clear_context`."""
        request_context.reset(token)

    @staticmethod
    def copy_context() -> dict[str, RequestContext | None]:
        """Capture the current request for later :meth:`restore_context`."""
        return {"request_context": request_context.get()}

    @staticmethod
    def restore_context(
        context_copy: dict[str, RequestContext | None],
    ) -> contextvars.Token[RequestContext | None] | None:
        """Make a captured request current again; return the undo token."""
        if "request_context" not in context_copy:
            return None
        return request_context.set(context_copy["request_context"])


def bind_context(func: Callable[_P, _T]) -> Callable[_P, _T]:
    """Wrap *func* to run in a copy of the current context, wherever called.

    Use it for thread targets, executor jobs and callbacks that run after
    the request has returned: their lines keep the request's ids.
    """
    captured = contextvars.copy_context()

    @functools.wraps(func)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return captured.copy().run(func, *args, **kwargs)

    return run


def run_in_executor(
    executor: Executor | None,
    func: Callable[..., _T],
    *args: Any,
) -> asyncio.Future[_T]:
    """``loop.run_in_executor`` that keeps the request context."""
    loop = asyncio.get_running_loop()
    return loop.run_in_executor(executor, bind_context(func), *args)


def submit(
    executor: Executor, func: Callable[..., _T], *args: Any, **kwargs: Any
) -> Future[_T]:
    """``executor.submit`` that keeps the request context."""
    return executor.submit(bind_context(func), *args, **kwargs)


def to_thread(
    func: Callable[..., _T], *args: Any, **kwargs: Any
) -> Coroutine[Any, Any, _T]:
    """``asyncio.to_thread``, which already carries the context."""
    return asyncio.to_thread(func, *args, **kwargs)
