"""Turn event dicts into bytes: JSON lines that never fail, or console text.

The fast path hands the whole event to ``orjson`` once. Only when orjson
refuses (a cycle, an integer beyond 64 bits, a key it cannot convert,
nesting past its limit) or the line is longer than the string limit does
the slow path walk the value and rebuild it with the documented rules, so
the common line pays for no walk at all. Both paths agree on every value
they both accept.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import enum
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any
from uuid import UUID

import orjson

from . import _diagnostics

__all__ = [
    "CUT_MARKER",
    "CYCLE_MARKER",
    "Limits",
    "console_renderer",
    "iso_at",
    "json_renderer",
    "key_text",
    "now_iso",
    "safe_repr",
    "sorted_members",
    "to_jsonable",
    "to_native",
]

# Dates and times go through ``to_native`` (isoformat): orjson writes some
# ``time`` values wrongly (12:00:00.010000 as 12:00:00.10000).
_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
CUT_MARKER = "<max depth>"
CYCLE_MARKER = "<circular>"


class Limits:
    """Caps applied by the slow path: string length, depth, line size."""

    __slots__ = ("max_depth", "max_items", "max_line_bytes", "max_string")

    def __init__(
        self,
        max_string: int = 16_384,
        max_depth: int = 32,
        max_line_bytes: int = 262_144,
        max_items: int = 1_000,
    ) -> None:
        self.max_string = max_string
        self.max_depth = max_depth
        self.max_line_bytes = max_line_bytes
        self.max_items = max_items


# Timestamps: formatting a datetime costs ~2.7 µs; the second-resolution
# prefix changes once a second, so it is cached and only the fraction is
# formatted per line.
_ts_cache: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """Return the current UTC time as RFC 3339 with microseconds."""
    return iso_at(time.time())


def iso_at(now: float) -> str:
    """Return the UTC time *now* (epoch seconds) as RFC 3339 with micros."""
    global _ts_cache
    second = int(now)
    cached_second, prefix = _ts_cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _ts_cache = (second, prefix)
    micros = int((now - second) * 1_000_000)
    return f"{prefix}.{micros:06d}Z"


def safe_repr(value: object, limit: int = 200) -> str:
    """Return ``repr(value)`` cut to *limit*, or a placeholder if it raises."""
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
    if len(text) > limit:
        return text[:limit] + "..."
    return text


def _escape_bytes(value: bytes | bytearray | memoryview) -> str:
    escaped: bytes = codecs.escape_encode(bytes(value))[0]
    return escaped.decode("ascii")


def sorted_members(value: set[Any] | frozenset[Any]) -> list[Any]:
    """Return the members sorted, by their repr when they do not compare."""
    try:
        return sorted(value)
    except Exception:
        return sorted(value, key=safe_repr)


def to_native(value: Any) -> Any:
    """Convert what orjson cannot serialise natively; never raises."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted_members(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _escape_bytes(value)
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": _safe_str(value)}
    if isinstance(value, PurePath | UUID):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return _isoformat(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_fields(value)
    return safe_repr(value, 1_000)


def _isoformat(value: dt.date | dt.time) -> str:
    try:
        return value.isoformat()
    except Exception:
        return safe_repr(value)


def _dataclass_fields(value: Any) -> dict[str, Any]:
    """Mirror orjson, which writes a dataclass as a mapping of its fields."""
    return {
        f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)
    }


def _utf8(text: str) -> str:
    """Escape lone surrogates, which have no UTF-8 form."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def key_text(key: Any) -> str:
    """Write a mapping key as a string, the way orjson's fast path does."""
    if isinstance(key, enum.Enum):
        return key_text(key.value)
    if isinstance(key, str):
        return _utf8(str.__str__(key))
    if key is None or isinstance(key, bool):
        return "null" if key is None else ("true" if key else "false")
    if isinstance(key, int):
        return (
            _int_text(int.__int__(key)) or f"<int of {key.bit_length()} bits>"
        )
    if isinstance(key, float):
        return orjson.dumps(float.__float__(key)).decode()
    if isinstance(key, dt.date | dt.time):
        return _isoformat(key)
    if isinstance(key, tuple):
        return _utf8(safe_repr(key))
    return _utf8(_safe_str(key))


def _int_text(value: int) -> str | None:
    """Return the digits of *value*, or None past ``str()``'s digit limit."""
    try:
        return str(value)
    except ValueError:
        return None


class _Walker:
    """The slow path: rebuild a value under the limits, marking each cut."""

    __slots__ = ("cut", "fragments", "limits", "path")

    def __init__(self, limits: Limits, *, fragments: bool = True) -> None:
        self.limits = limits
        self.path: set[int] = set()
        self.cut = False
        self.fragments = fragments

    def walk(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            return self._string(value)
        if kind is bool or kind is float or value is None:
            return value
        if kind is int:
            return self._int(value)
        if isinstance(value, enum.Enum):
            return self.walk(value.value, depth)
        if isinstance(value, str):
            return self._string(str.__str__(value))
        if isinstance(value, int):
            return self._int(int.__int__(value))
        if isinstance(value, float):
            return float.__float__(value)
        if depth >= self.limits.max_depth:
            self.cut = True
            return CUT_MARKER
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            return self._container(value, depth)
        return self.walk(to_native(value), depth + 1)

    def _int(self, value: int) -> Any:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        text = _int_text(value)
        if text is None:
            self.cut = True
            return f"<int of {value.bit_length()} bits>"
        return orjson.Fragment(text.encode()) if self.fragments else value

    def _string(self, value: str) -> str:
        limit = self.limits.max_string
        if len(value) > limit:
            self.cut = True
            value = f"{value[:limit]}...<{len(value) - limit} more chars>"
        return _utf8(value)

    def _container(self, value: Any, depth: int) -> Any:
        marker = id(value)
        if marker in self.path:
            return CYCLE_MARKER
        self.path.add(marker)
        try:
            if isinstance(value, Mapping):
                return self._mapping(value, depth)
            if isinstance(value, set | frozenset):
                value = sorted_members(value)
            return self._sequence(value, depth)
        finally:
            self.path.discard(marker)

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= self.limits.max_items:
                self.cut = True
                out["..."] = f"<{len(value) - index} more items>"
                break
            out[key_text(key)] = self.walk(item, depth + 1)
        return out

    def _sequence(self, value: Any, depth: int) -> list[Any]:
        items = [
            self.walk(v, depth + 1) for v in value[: self.limits.max_items]
        ]
        if len(value) > self.limits.max_items:
            self.cut = True
            items.append(f"<{len(value) - self.limits.max_items} more items>")
        return items


def to_jsonable(value: Any, limits: Limits | None = None) -> Any:
    """Return *value* rebuilt so that it always serialises, under *limits*."""
    return _Walker(limits or Limits()).walk(value, 0)


def json_renderer(limits: Limits) -> Callable[[dict[str, Any]], bytes]:
    """Make the JSON line renderer for *limits*."""
    dumps = orjson.dumps
    threshold = limits.max_string

    def render(event: dict[str, Any]) -> bytes:
        try:
            line = dumps(event, default=to_native, option=_OPTIONS)
        except Exception:
            return _render_slow(event, limits)
        if len(line) > threshold:
            return _render_slow(event, limits)
        return line

    return render


def _render_slow(event: dict[str, Any], limits: Limits) -> bytes:
    try:
        walker = _Walker(limits)
        rebuilt = walker.walk(event, -1)
        if walker.cut:
            rebuilt["truncated"] = True
        line = orjson.dumps(rebuilt, option=_OPTIONS)
        if len(line) > limits.max_line_bytes:
            line = _render_tight(event, limits)
        return line
    except Exception as exc:
        _diagnostics.report("render", "a log line could not be rendered", exc)
        return _render_minimal(event)


def _render_tight(event: dict[str, Any], limits: Limits) -> bytes:
    tight = Limits(
        max_string=256,
        max_depth=min(limits.max_depth, 8),
        max_line_bytes=limits.max_line_bytes,
        max_items=32,
    )
    walker = _Walker(tight)
    rebuilt = walker.walk(event, -1)
    rebuilt["truncated"] = True
    return orjson.dumps(rebuilt, option=_OPTIONS)


_CORE_KEYS = ("timestamp", "level", "logger", "layer", "event")


def _render_minimal(event: dict[str, Any]) -> bytes:
    try:
        kept: dict[str, Any] = {
            k: _utf8(_safe_str(event[k])[:256])
            for k in _CORE_KEYS
            if k in event
        }
        kept["truncated"] = True
        kept["render_error"] = True
        return orjson.dumps(kept, option=_OPTIONS)
    except Exception:
        return b'{"truncated":true,"render_error":true}\n'


# Console output: control characters from user data (ANSI escapes, CR, NUL,
# the C1 range that some terminals obey) must never reach a terminal raw,
# so every string, key and value, is escaped before the console renderer
# adds its own colours. Only a traceback keeps its line breaks.
_CONTROL = {
    c: f"\\x{c:02x}"
    for c in (*range(0x20), *range(0x7F, 0xA0))
    if c not in (9, 10)
}
_CONTROL_AND_NEWLINE = {**_CONTROL, 10: "\\n"}
_MULTILINE_KEYS = frozenset({"exception", "stack"})


def escape_controls(text: str, *, newlines: bool = True) -> str:
    """Replace control characters by escapes; keep tab, and *newlines*."""
    return text.translate(_CONTROL if newlines else _CONTROL_AND_NEWLINE)


def _console_safe(safe: dict[str, Any]) -> dict[str, Any]:
    return {
        escape_controls(k, newlines=False): (
            escape_controls(v, newlines=k in _MULTILINE_KEYS)
            if isinstance(v, str)
            else v
        )
        for k, v in safe.items()
    }


def console_renderer(
    limits: Limits, *, colors: bool
) -> Callable[[dict[str, Any]], bytes]:
    """Make a renderer for people: structlog's console layout, made safe."""
    from structlog.dev import ConsoleRenderer

    renderer = ConsoleRenderer(colors=colors)

    def render(event: dict[str, Any]) -> bytes:
        try:
            safe = _Walker(limits, fragments=False).walk(event, 0)
            cleaned = _console_safe(safe)
            text = renderer(None, str(cleaned.get("level", "")), cleaned)
            return str(text).encode() + b"\n"
        except Exception as exc:
            _diagnostics.report("render", "console rendering failed", exc)
            return _render_minimal(event)

    return render
