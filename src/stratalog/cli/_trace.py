"""``stratalog trace``: one request's lines as a waterfall."""

from __future__ import annotations

from typing import Any

import click
import orjson

from stratalog.cli._scan import scan
from stratalog.cli._text import clean, out_console
from stratalog.cli._waterfall import Waterfall, render_waterfall

__all__ = ["TraceCollector", "trace"]

LINE_LIMIT = 100_000


class TraceCollector:
    """Keep the parsed lines whose ``correlation_id`` is one id.

    Only lines containing the id's JSON text are parsed. An id that JSON
    would escape (quotes, backslashes, control characters) disables that
    shortcut and every line is parsed. At most ``LINE_LIMIT`` lines are
    kept; the rest are counted in ``dropped``.
    """

    def __init__(self, correlation_id: str) -> None:
        self.correlation_id = correlation_id
        encoded = orjson.dumps(correlation_id)[1:-1]
        plain = encoded == correlation_id.encode()
        self._needle = encoded if plain and encoded else b""
        self.lines: list[dict[str, Any]] = []
        self.dropped = 0

    def feed(self, block: bytes) -> None:
        """Keep the matching lines of *block*."""
        needle = self._needle
        for line in block.split(b"\n"):
            if needle not in line or not line:
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if type(event) is dict and (
                event.get("correlation_id") == self.correlation_id
            ):
                self._keep(event)

    def _keep(self, event: dict[str, Any]) -> None:
        if len(self.lines) < LINE_LIMIT:
            self.lines.append(event)
        else:
            self.dropped += 1


@click.command()
@click.argument("correlation_id")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
def trace(correlation_id: str, files: tuple[str, ...]) -> None:
    """Draw the request CORRELATION_ID found in FILE... as a waterfall.

    Operations are bars on a time axis from the request's start; each
    operation's start is its line's timestamp minus its duration_ms. The
    summary's per-layer timeline follows. Exits with status 1 when no line
    carries the id.
    """
    collector = TraceCollector(correlation_id)
    scan(files, collector.feed)
    if not collector.lines:
        raise click.ClickException(
            f"no line with correlation_id '{clean(correlation_id)}' "
            f"in {', '.join(clean(name) for name in files)}"
        )
    waterfall = Waterfall.build(collector.lines)
    render_waterfall(out_console(), waterfall, dropped=collector.dropped)
