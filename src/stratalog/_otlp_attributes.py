"""Turn a line's fields into OpenTelemetry attribute values.

Scalars stay as they are, small mappings become dotted keys, sequences of
one scalar type stay sequences, and anything else travels as its JSON
text, so a summary line arrives whole and every value is one the
protocol accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._render import Limits, to_jsonable

__all__ = ["attributes_of"]

_NOT_ATTRIBUTES = frozenset(
    {"event", "level", "timestamp", "trace_id", "span_id", "trace_sampled"}
)
# Below the SDK's default of 128 attributes per record, past which it
# drops attributes with a warning.
_MAX_ATTRIBUTES = 100
_MAX_FLATTENED = 24
_MAX_DEPTH = 3
_INT64 = (-(2**63), 2**63 - 1)
_VALUE_LIMITS = Limits(max_string=8_192, max_depth=8, max_items=256)


def attributes_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return the fields of a line as OpenTelemetry attribute values.

    Scalars stay as they are, small mappings are flattened to dotted keys,
    sequences of one scalar type stay sequences, and everything else is
    sent as its JSON text. ``None`` is left out.
    """
    attributes: dict[str, Any] = {}
    for key, value in event.items():
        if key in _NOT_ATTRIBUTES or value is None:
            continue
        if len(attributes) >= _MAX_ATTRIBUTES:
            attributes["stratalog.attributes_dropped"] = True
            break
        _add(attributes, str(key), value, 0)
    return attributes


def _add(out: dict[str, Any], key: str, value: Any, depth: int) -> None:
    scalar = _scalar(value)
    if scalar is not None:
        out[key] = scalar
    elif isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        if depth < _MAX_DEPTH and _flatten(flat, key, value, depth):
            out.update(flat)
        else:
            out[key] = _json(value)
    elif isinstance(value, list | tuple):
        out[key] = _sequence(value)
    else:
        converted = to_jsonable(value, _VALUE_LIMITS)
        out[key] = converted if isinstance(converted, str) else _json(value)


def _flatten(
    out: dict[str, Any], prefix: str, value: Mapping[Any, Any], depth: int
) -> bool:
    for sub_key, item in value.items():
        if item is None:
            continue
        if len(out) >= _MAX_FLATTENED:
            return False
        key = f"{prefix}.{sub_key}"
        if isinstance(item, Mapping):
            if depth + 1 >= _MAX_DEPTH or not _flatten(
                out, key, item, depth + 1
            ):
                return False
        else:
            _add(out, key, item, depth + 1)
    return len(out) <= _MAX_FLATTENED


def _scalar(value: Any) -> str | bool | int | float | None:
    kind = type(value)
    if kind is str or kind is bool or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    return None


def _sequence(value: list[Any] | tuple[Any, ...]) -> Any:
    kinds = {type(item) for item in value}
    if len(kinds) == 1 and kinds <= {str, bool, float}:
        return tuple(value)
    if kinds == {int} and all(_INT64[0] <= v <= _INT64[1] for v in value):
        return tuple(value)
    return _json(value)


def _json(value: Any) -> str:
    try:
        rendered = orjson.dumps(
            to_jsonable(value, _VALUE_LIMITS), option=orjson.OPT_NON_STR_KEYS
        )
    except Exception:
        return "<unrepresentable>"
    return rendered.decode("utf-8", "replace")
