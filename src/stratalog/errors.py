"""Error cascade prevention: one full record per failure, per request.

An exception is recorded where it is first seen, which is the innermost
layer that logs it. When the same exception, or one chained from it
(``raise ... from`` or raised while handling it), is seen again further
out, the outer layer gets the existing record back and writes only a short
line that names the error id and the origin. Exceptions cannot be weakly
referenced, so the history holds them strongly and is bounded.
"""

from __future__ import annotations

import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._ids import random_hex

__all__ = [
    "ErrorContext",
    "ErrorRecord",
    "exception_message",
    "format_exception",
]

_CHAIN_LIMIT = 32

_K = TypeVar("_K")
_V = TypeVar("_V")


def _new_error_id() -> str:
    return f"err-{random_hex(10)}"


def format_exception(exc: BaseException) -> str:
    """Return the traceback text of *exc*, with its chain, never raising."""
    try:
        return "".join(traceback.format_exception(exc)).rstrip()
    except Exception:
        return f"{type(exc).__name__}: <traceback unavailable>"


@dataclass(slots=True, eq=False)
class ErrorRecord:
    """One distinct failure in a request and the layers it crossed."""

    error_id: str
    type: str
    message: str
    origin_layer: str | None
    origin_operation: str | None
    exception: BaseException | None = None
    layers: list[str] = field(default_factory=list)

    def crossed(self, layer: str | None) -> None:
        """Note that the failure passed out through *layer*."""
        if layer and (not self.layers or self.layers[-1] != layer):
            self.layers.append(layer)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary entry for this error."""
        return {
            "error_id": self.error_id,
            "type": self.type,
            "message": self.message,
            "origin_layer": self.origin_layer,
            "origin_operation": self.origin_operation,
            "layers": list(self.layers),
        }


class ErrorContext:
    """The distinct errors of one request (at most ``max_history``)."""

    __slots__ = (
        "_by_id",
        "_first_by_key",
        "_repeats",
        "dropped",
        "max_history",
        "records",
    )

    def __init__(self, max_history: int = 50) -> None:
        self.max_history = max_history
        self.records: list[ErrorRecord] = []
        self._by_id: dict[int, ErrorRecord] = {}
        self._first_by_key: OrderedDict[str, BaseException] = OrderedDict()
        self._repeats: OrderedDict[int, tuple[BaseException, ErrorRecord]] = (
            OrderedDict()
        )
        self.dropped = 0

    def find(self, exc: BaseException) -> ErrorRecord | None:
        """Return the record of *exc* or of an exception it was chained to.

        The exceptions of an exception group count as chained to it.
        """
        seen: set[int] = set()
        todo: list[BaseException] = [exc]
        while todo and len(seen) < _CHAIN_LIMIT:
            current = todo.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            record = self._by_id.get(id(current))
            if record is not None and record.exception is current:
                return record
            repeat = self._repeats.get(id(current))
            if repeat is not None and repeat[0] is current:
                return repeat[1]
            for linked in (current.__cause__, current.__context__):
                if linked is not None:
                    todo.append(linked)
            if isinstance(current, BaseExceptionGroup):
                # A TaskGroup's group carries failures its children logged.
                todo.extend(current.exceptions)
        return None

    def record(
        self,
        exc: BaseException,
        layer: str | None,
        operation: str | None,
    ) -> ErrorRecord:
        """Record *exc* as a new distinct error first seen at *layer*."""
        record = ErrorRecord(
            error_id=_new_error_id(),
            type=type(exc).__name__,
            message=exception_message(exc),
            origin_layer=layer,
            origin_operation=operation,
            exception=exc,
        )
        record.crossed(layer)
        self._append(record)
        return record

    def first_under(self, key: str, exc: BaseException) -> None:
        """Note that *exc* was written in full under the dedup *key*."""
        _remember(self._first_by_key, key, exc, self.max_history)

    def repeat_under(self, key: str, exc: BaseException) -> None:
        """Note that *exc* was held back as a repeat of *key*'s error.

        It is then found as that error, so an outer layer it passes
        through writes a short reference rather than its traceback.
        """
        if self.find(exc) is not None:
            return
        first = self._first_by_key.get(key)
        record = None if first is None else self.find(first)
        if record is not None:
            _remember(self._repeats, id(exc), (exc, record), self.max_history)

    def adopt(self, record: ErrorRecord) -> None:
        """Take in *record*, first seen in another history, id and all.

        Whoever sees its exception here afterwards gets the reference, not
        a second traceback.
        """
        exc = record.exception
        if exc is not None and self._by_id.get(id(exc)) is not record:
            self._append(record)

    def _append(self, record: ErrorRecord) -> None:
        if len(self.records) >= self.max_history:
            oldest = self.records.pop(0)
            if oldest.exception is not None:
                self._by_id.pop(id(oldest.exception), None)
            self.dropped += 1
        self.records.append(record)
        if record.exception is not None:
            self._by_id[id(record.exception)] = record

    def summary(self) -> list[dict[str, Any]]:
        """Return one entry per distinct error, oldest first."""
        return [record.as_dict() for record in self.records]


def exception_message(exc: BaseException) -> str:
    """Return ``str(exc)`` cut to 1,000 characters, never raising."""
    try:
        text = str(exc)
    except Exception:
        return f"<unrepresentable {type(exc).__name__}>"
    return text if len(text) <= 1_000 else f"{text[:1_000]}..."


def _remember(
    entries: OrderedDict[_K, _V], key: _K, value: _V, bound: int
) -> None:
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > bound:
        entries.popitem(last=False)
