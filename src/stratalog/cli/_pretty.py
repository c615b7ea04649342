"""Filter NDJSON lines and format them for reading in a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from rich.text import Text

from stratalog.cli._follow import LINE_LIMIT, OVERSIZED
from stratalog.cli._text import clean

__all__ = ["LEVELS", "LineFilter", "format_line"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_ALIASES = {"warn": 30, "err": 40, "fatal": 50, "trace": 10, "notset": 0}
_LEVEL_STYLE = {
    10: "dim",
    20: "green",
    30: "yellow",
    40: "bold red",
    50: "bold white on red",
}
_LAYER_STYLE = {
    "api": "cyan",
    "service": "green",
    "core": "yellow",
    "infrastructure": "magenta",
}
_HEAD = ("timestamp", "level", "layer", "event", "logger")
_IDS = (
    "correlation_id",
    "session_id",
    "user_id",
    "investigation_id",
    "agent_phase",
    "trace_id",
    "span_id",
)
_SKIPPED = frozenset((*_HEAD, *_IDS, "exception"))
_PASS_THROUGH_LIMIT = 4096
_QUOTED = frozenset(' ="')
_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARN", 40: "ERROR", 50: "CRIT"}


def level_of(value: object) -> int:
    """Return the numeric level of a line's ``level`` field (info if odd)."""
    if isinstance(value, str):
        name = value.lower()
        return LEVELS.get(name, _ALIASES.get(name, 20))
    return 20


@dataclass(frozen=True)
class LineFilter:
    """Which parsed lines to show; an empty criterion accepts everything."""

    minimum: int = 0
    layers: Sequence[str] = ()
    correlation_id: str | None = None
    events: Sequence[str] = ()

    def accepts(self, line: dict[str, Any]) -> bool:
        """Whether *line* passes every criterion."""
        if self.minimum and level_of(line.get("level")) < self.minimum:
            return False
        if self.layers and line.get("layer") not in self.layers:
            return False
        if (
            self.correlation_id is not None
            and line.get("correlation_id") != self.correlation_id
        ):
            return False
        event = line.get("event")
        return not self.events or (
            isinstance(event, str) and event.startswith(tuple(self.events))
        )


def format_line(
    raw: bytes, line_filter: LineFilter, width: int | None = None
) -> list[Text]:
    """Return the rows to print for *raw*; empty when it is filtered out.

    Field values longer than *width* characters are cut short.
    """
    if raw == OVERSIZED:
        note = f"[a line longer than {LINE_LIMIT} bytes was skipped]"
        return [Text(note, style="dim")]
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        line = None
    if not isinstance(line, dict):
        return [_pass_through(raw)] if raw.strip() else []
    if not line_filter.accepts(line):
        return []
    rows = [_headline(line, width)]
    exception = line.get("exception")
    if isinstance(exception, str):
        rows.extend(
            Text(f"    {clean(text)}", style="dim red")
            for text in exception.splitlines()
        )
    return rows


def _pass_through(raw: bytes) -> Text:
    text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
    if len(text) > _PASS_THROUGH_LIMIT:
        extra = len(text) - _PASS_THROUGH_LIMIT
        text = f"{text[:_PASS_THROUGH_LIMIT]}... ({extra} more characters)"
    return Text(clean(text), style="dim")


def _headline(line: dict[str, Any], width: int | None) -> Text:
    level = level_of(line.get("level"))
    name = line.get("level")
    name = _NAMES.get(level) if name in LEVELS else clean(name or "-")
    layer = line.get("layer")
    stamp = line.get("timestamp")
    if isinstance(stamp, str) and len(stamp) >= 26 and stamp[10:11] == "T":
        stamp = stamp[11:26]
    text = Text.assemble(
        (f"{clean(stamp or '-'):<15} ", "dim"),
        (f"{name:<5} ", _LEVEL_STYLE.get(level, "")),
        (f"{clean(layer or '-'):<14} ", _LAYER_STYLE.get(str(layer), "")),
        (clean(line.get("event", "-")), "bold"),
    )
    for key, value in line.items():
        if key not in _SKIPPED:
            text.append(f" {clean(key)}=", style="dim")
            text.append(_value(value, width))
    for key in _IDS:
        if key in line:
            text.append(f" {key}={_value(line[key], width)}", style="dim")
    return text


def _value(value: object, width: int | None) -> str:
    if isinstance(value, str) and value and not _QUOTED.intersection(value):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=str).decode()
        except orjson.JSONEncodeError:
            text = repr(value)
    if width is not None and len(text) > width:
        text = f"{text[:width]}...(+{len(text) - width})"
    return clean(text)
