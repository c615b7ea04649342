"""Lay out one request's lines on a time axis and print them.

The axis starts at the request's start: the summary's ``start_time``,
else its timeline's ``start``, else the earliest start of any line. An
operation line is written when the operation ends, so its bar runs from
``timestamp - duration_ms`` to ``timestamp``; every other line is a point.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from stratalog._emit import RESERVED
from stratalog.cli._tables import Table, render
from stratalog.cli._text import clean, fmt_ms

__all__ = ["Row", "Waterfall", "micros", "render_waterfall"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LAYERS = ("api", "service", "core", "infrastructure")
_LAYER_STYLE = {
    "api": "cyan",
    "service": "green",
    "core": "yellow",
    "infrastructure": "magenta",
}
_KIND_STYLE = {
    "failed": "bold red",
    "error": "bold red",
    "slow": "bold yellow",
    "retry": "yellow",
    "circuit": "bold yellow",
    "external": "blue",
    "summary": "bold",
}
_OPERATIONS = {
    "operation.completed": "operation",
    "operation.slow": "slow",
    "operation.failed": "failed",
    "operation.cancelled": "cancelled",
}
_COMMON = RESERVED | {"exception"}


_SHOWN = frozenset(("client", "duration_ms", "operation"))


def micros(value: object) -> int | None:
    """Return an RFC 3339 timestamp as microseconds since the epoch."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass
class Row:
    """One line placed on the axis: a bar with a duration or a point."""

    at_ms: float | None
    duration_ms: float | None
    layer: str
    label: str
    detail: str
    kind: str
    traceback: str = ""


@dataclass
class Waterfall:
    """A request's rows, its axis length and its summary line (if any)."""

    rows: list[Row]
    total_ms: float
    summary: dict[str, Any] | None
    start_us: int | None
    correlation_id: str

    @classmethod
    def build(cls, lines: list[dict[str, Any]]) -> Waterfall:
        """Order *lines* by timestamp and place them on the axis."""
        keyed = [(micros(line.get("timestamp")), line) for line in lines]
        keyed.sort(key=lambda item: (item[0] is None, item[0] or 0))
        summaries = [line for _, line in keyed if _is_summary(line)]
        summary = summaries[-1] if summaries else None
        start = _start(summary, keyed)
        rows = [_row(at, line, start) for at, line in keyed]
        total = _number(summary.get("duration_ms")) if summary else None
        ends = [
            (row.at_ms or 0.0) + (row.duration_ms or 0.0)
            for row in rows
            if row.at_ms is not None
        ]
        axis = max([total or 0.0, *ends, 0.001])
        ident = str(lines[0].get("correlation_id", ""))
        return cls(rows, axis, summary, start, ident)


def render_waterfall(
    console: Console, waterfall: Waterfall, dropped: int = 0
) -> None:
    """Print the header, the rows, the summary's timeline and errors."""
    fancy = console.is_terminal
    for line in _header(waterfall, dropped):
        console.print(line, soft_wrap=True)
    label_width = min(
        max((len(_label(row)) for row in waterfall.rows), default=10), 48
    )
    bar_width = max(20, min(60, console.width - label_width - 50))
    for row in waterfall.rows:
        console.print(
            _row_text(row, waterfall.total_ms, label_width, bar_width, fancy),
            soft_wrap=True,
        )
        for text in row.traceback.splitlines():
            console.print(
                Text(f"{'':>22}{clean(text)}", style="dim red"), soft_wrap=True
            )
    if waterfall.summary is not None:
        console.print("")
        render(console, _summary_tables(waterfall))


def _is_summary(line: dict[str, Any]) -> bool:
    return line.get("event") == "request.completed"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _start(
    summary: dict[str, Any] | None,
    keyed: list[tuple[int | None, dict[str, Any]]],
) -> int | None:
    if summary is not None:
        timeline = summary.get("request_timeline")
        for value in (
            summary.get("start_time"),
            timeline.get("start") if isinstance(timeline, dict) else None,
        ):
            found = micros(value)
            if found is not None:
                return found
    starts = [
        at - int((_number(line.get("duration_ms")) or 0.0) * 1000)
        for at, line in keyed
        if at is not None
    ]
    return min(starts, default=None)


def _row(at: int | None, line: dict[str, Any], start: int | None) -> Row:
    event = clean(line.get("event", "?"))
    layer = clean(line.get("layer", ""))
    duration = _number(line.get("duration_ms"))
    offset = None if at is None or start is None else (at - start) / 1000
    kind = _kind(event, line)
    if duration is not None and offset is not None and _has_bar(event):
        offset -= duration
    else:
        duration = None
    traceback = line.get("exception")
    return Row(
        offset,
        duration,
        layer,
        _name(event, line),
        _detail(event, line),
        kind,
        traceback if isinstance(traceback, str) else "",
    )


def _has_bar(event: str) -> bool:
    return event in _OPERATIONS or event.startswith("external.call.")


def _kind(event: str, line: dict[str, Any]) -> str:
    if event in _OPERATIONS:
        return _OPERATIONS[event]
    if event == "external.retry.scheduled":
        return "retry"
    if event.startswith("circuit."):
        return "circuit"
    if event == "request.completed":
        return "summary"
    if line.get("level") in ("error", "critical"):
        return "error"
    if event.startswith("external."):
        return "external"
    return "event"


def _name(event: str, line: dict[str, Any]) -> str:
    operation = line.get("operation")
    if event in _OPERATIONS and operation is not None:
        return clean(operation)
    if event.startswith(("external.", "circuit.")):
        client = clean(line.get("client", "?"))
        return f"{event} {client}"
    return event


def _detail(event: str, line: dict[str, Any]) -> str:
    get = line.get
    if event == "operation.slow":
        return f"slow: threshold {fmt_ms(get('threshold_ms'))} ms"
    if event == "operation.failed":
        return _failure(line)
    if event == "external.retry.scheduled":
        return clean(
            f"attempt {get('attempt')} failed ({get('error_type')}), "
            f"retry in {get('delay_s')} s"
        )
    if event == "request.completed":
        return clean(f"{get('status')} {get('outcome', '')}")
    fields = [
        f"{key}={value}"
        for key, value in line.items()
        if key not in _COMMON and key not in _SHOWN
    ]
    return clean(" ".join(fields))[:120]


def _failure(line: dict[str, Any]) -> str:
    get = line.get
    text = str(get("error_type") or "error")
    if get("error_message"):
        text += f": {get('error_message')}"
    text += f" [{get('error_id')}]"
    origin = [
        str(part)
        for part in (get("origin_layer"), get("origin_operation"))
        if part
    ]
    if get("propagated") and origin:
        text += " from " + ".".join(origin)
    return clean(text)


def _label(row: Row) -> str:
    depth = _LAYERS.index(row.layer) if row.layer in _LAYERS else 0
    return "  " * depth + row.label


def _row_text(
    row: Row, total: float, label_width: int, bar_width: int, fancy: bool
) -> Text:
    style = _KIND_STYLE.get(row.kind, "")
    layer_style = _LAYER_STYLE.get(row.layer, "")
    offset = "" if row.at_ms is None else f"+{fmt_ms(row.at_ms)}"
    duration = "" if row.duration_ms is None else fmt_ms(row.duration_ms)
    label = _label(row)[:label_width].ljust(label_width)
    return Text.assemble(
        (f"{offset:>9} {duration:>8}  ", "dim"),
        (label, style or layer_style),
        "  ",
        (_bar(row, total, bar_width, fancy), style or layer_style),
        "  ",
        (row.detail, style),
    )


def _bar(row: Row, total: float, width: int, fancy: bool) -> str:
    cells = [" "] * width
    if row.at_ms is None:
        return "".join(cells)
    scale = width / total
    first = min(max(int(row.at_ms * scale), 0), width - 1)
    if row.duration_ms is None:
        cells[first] = ("•" if fancy else "|") if row.kind != "error" else "x"
        return "".join(cells)
    last = min(
        max(int((row.at_ms + row.duration_ms) * scale), first + 1), width
    )
    fill = (
        ("█" if fancy else "=")
        if row.kind != "external"
        else ("▒" if fancy else "-")
    )
    for index in range(first, last):
        cells[index] = fill
    return "".join(cells)


def _header(waterfall: Waterfall, dropped: int) -> list[Text]:
    summary = waterfall.summary
    lines = [Text(f"Request {clean(waterfall.correlation_id)}", style="bold")]
    if summary is None:
        lines.append(
            Text(
                "  no request.completed line: the request may still run, "
                "or its summary is in another file",
                style="yellow",
            )
        )
    else:
        get = summary.get
        lines.append(
            Text(
                clean(
                    f"  {get('method', '')} {get('path', '')} -> "
                    f"{get('status')} in {fmt_ms(get('duration_ms'))} ms, "
                    f"outcome {get('outcome')}, route {get('route')}"
                )
            )
        )
    lines.append(
        Text(
            f"  {len(waterfall.rows)} lines on an axis of "
            f"{fmt_ms(waterfall.total_ms)} ms from the request's start",
            style="dim",
        )
    )
    if dropped:
        lines.append(Text(f"  {dropped} more lines not shown", style="yellow"))
    return lines


def _summary_tables(waterfall: Waterfall) -> list[Table]:
    summary = waterfall.summary or {}
    timeline = summary.get("request_timeline")
    rows = []
    if isinstance(timeline, dict):
        for key, span in timeline.items():
            if key.endswith("_layer") and isinstance(span, dict):
                rows.append(
                    _timeline_row(key[: -len("_layer")], span, waterfall)
                )
    errors = summary.get("errors")
    error_rows = [
        (
            item.get("error_id", "-"),
            item.get("type", "-"),
            item.get("message", ""),
            " -> ".join(str(layer) for layer in item.get("layers") or ()),
        )
        for item in (errors if isinstance(errors, list) else [])
        if isinstance(item, dict)
    ]
    return [
        Table(
            "Timeline",
            (
                "layer",
                "start ms",
                "end ms",
                "duration ms",
                "threshold ms",
                "violation",
            ),
            rows,
            numeric=frozenset((1, 2, 3, 4)),
        ),
        Table(
            "Errors",
            ("error id", "type", "message", "layers crossed"),
            error_rows,
        ),
    ]


def _timeline_row(
    layer: str, span: dict[str, Any], waterfall: Waterfall
) -> tuple[str, ...]:
    def offset(value: object) -> str:
        at = micros(value)
        if at is None or waterfall.start_us is None:
            return "-"
        return f"+{fmt_ms((at - waterfall.start_us) / 1000)}"

    duration = _number(span.get("duration"))
    threshold = _number(span.get("threshold"))
    return (
        layer,
        offset(span.get("start")),
        offset(span.get("end")),
        fmt_ms(duration * 1000) if duration is not None else "-",
        fmt_ms(threshold * 1000) if threshold is not None else "-",
        "yes" if span.get("violation") else "no",
    )
