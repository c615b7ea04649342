"""Make log data safe to print and pick plain or rich output.

Log fields are written by clients as much as by the service: a header
value with ESC sequences can recolour, move the cursor or retitle a
terminal, a CR can overwrite what a reader sees, and bidirectional
overrides can reorder it. Every value from a log passes through
``clean`` before it is printed, rich or plain, and rich output never
interprets markup inside data.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

__all__ = ["clean", "err_console", "fmt_ms", "out_console"]

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_INVISIBLE = (
    *range(0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,
    0x2029,
    0xFEFF,
)
_TABLE = {
    code: _NAMED.get(
        code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )
    for code in _INVISIBLE
}


def clean(value: object) -> str:
    """Return *value* as text with control and bidi characters escaped."""
    text = value if isinstance(value, str) else str(value)
    return text.translate(_TABLE)


def fmt_ms(value: object) -> str:
    """Format a duration in milliseconds for a table cell."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def out_console(file: TextIO | None = None) -> Console:
    """Return a console on stdout: colours on a terminal, plain otherwise."""
    return _console(file or sys.stdout)


def err_console() -> Console:
    """Return a console on stderr for progress and messages."""
    return _console(sys.stderr)


def _console(file: TextIO) -> Console:
    return Console(
        file=file,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )
