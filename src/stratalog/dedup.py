"""Deduplication inside one request: keys, policies and the repeat rule.

Which lines are candidates:

- boundary lines and operation start/completion lines, keyed by
  :func:`generate_operation_key`, under a STRICT policy by default: the
  first of each per request is written, repeats are counted;
- warning-and-above lines, keyed by their *fingerprint*: logger layer,
  event name, error type (of the line's exception, else of the exception
  being handled when the line is written), and the non-volatile fields
  with their values.
  A field is volatile when its name ends in ``_id``, ``_ms``, ``_s`` or
  ``_at``, or is listed in ``LOG_DEDUPE_VOLATILE_FIELDS``. The first line of
  a fingerprint is written in full, later ones are counted.

Metrics, business events and slow-operation warnings are never held back.
Counts of held-back lines reach the request summary under ``dedup``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .context import RequestContext

__all__ = [
    "DeduplicationPolicy",
    "fingerprint",
    "generate_operation_key",
]


def generate_operation_key(
    layer: str,
    operation_type: str,
    operation_name: str,
    direction: str | None = None,
) -> str:
    """Return ``layer.type.name`` or ``layer.type.name.direction``."""
    if direction:
        return f"{layer}.{operation_type}.{operation_name}.{direction}"
    return f"{layer}.{operation_type}.{operation_name}"


class DeduplicationPolicy:
    """Decide whether a line may repeat within one request.

    STRICT writes each key once; TIME_WINDOW again once ``window_seconds``
    (default 60) passed since it was last written, on the monotonic
    ``perf_counter`` clock;
    COUNT_BASED up to ``max_count`` times (default 1); NONE always.
    """

    STRICT = "strict"
    TIME_WINDOW = "time_window"
    COUNT_BASED = "count_based"
    NONE = "none"

    __slots__ = ("max_count", "params", "policy", "window_seconds")

    def __init__(self, policy: str = STRICT, **params: Any) -> None:
        if policy not in _POLICIES:
            raise ValueError(
                f"unknown deduplication policy {policy!r}; "
                f"use one of: {', '.join(_POLICIES)}"
            )
        self.policy = policy
        self.params = params
        self.window_seconds = float(params.get("window_seconds", 60.0))
        self.max_count = int(params.get("max_count", 1))

    def __repr__(self) -> str:
        return f"DeduplicationPolicy({self.policy!r}, **{self.params!r})"

    def should_allow_duplicate(
        self, operation_key: str, context: RequestContext
    ) -> bool:
        """Return whether a line under *operation_key* may be written now."""
        policy = self.policy
        if policy == self.NONE:
            return True
        if policy == self.STRICT:
            return not context.has_logged(operation_key)
        if policy == self.TIME_WINDOW:
            last = context.get_last_logged_time(operation_key)
            if last is None:
                return True
            return time.perf_counter() - last >= self.window_seconds
        return context.get_operation_count(operation_key) < self.max_count


_POLICIES = (
    DeduplicationPolicy.STRICT,
    DeduplicationPolicy.TIME_WINDOW,
    DeduplicationPolicy.COUNT_BASED,
    DeduplicationPolicy.NONE,
)

_VOLATILE_SUFFIXES = ("_id", "_ms", "_s", "_at")
_SCALARS = (str, int, float, bool, type(None))


def fingerprint(
    layer: str | None,
    event: str,
    error_type: str | None,
    fields: Mapping[str, Any],
    volatile: frozenset[str],
) -> str:
    """Return the dedup key of a warning-or-above line (see module doc)."""
    stable = []
    for key, value in fields.items():
        if key in volatile or key.endswith(_VOLATILE_SUFFIXES):
            continue
        if isinstance(value, _SCALARS):
            text = str(value)
            shown = text if len(text) <= 64 else f"{text[:64]}..."
        else:
            shown = f"<{type(value).__name__}>"
        stable.append(f"{key}={shown}")
    key = f"{layer or '-'}.log.{event}"
    if error_type:
        key = f"{key}[{error_type}]"
    if stable:
        key = f"{key}{{{','.join(sorted(stable))}}}"
    return key
