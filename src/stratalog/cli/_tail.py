"""``stratalog tail``: pretty-print NDJSON lines as they arrive."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from stratalog.cli._follow import follow_lines, stream_lines
from stratalog.cli._pretty import LEVELS, LineFilter, format_line
from stratalog.cli._text import out_console

__all__ = ["tail"]

_FIELD_WIDTH = 160


@click.command()
@click.argument(
    "file",
    default="-",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Keep waiting for new lines at the end of FILE.",
)
@click.option(
    "-n",
    "--lines",
    "last",
    type=click.IntRange(min=0),
    default=None,
    help="Start at the last N lines of FILE instead of its beginning.",
)
@click.option(
    "--level",
    type=click.Choice(list(LEVELS), case_sensitive=False),
    default=None,
    help="Minimum level to show.",
)
@click.option("--layer", "layers", multiple=True, help="Show only this layer.")
@click.option("--correlation-id", help="Show only this request's lines.")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="Show only events starting with this prefix.",
)
@click.option(
    "--wide",
    is_flag=True,
    help="Show long field values in full instead of cutting them short.",
)
def tail(
    file: str,
    follow: bool,
    last: int | None,
    level: str | None,
    layers: tuple[str, ...],
    correlation_id: str | None,
    events: tuple[str, ...],
    wide: bool,
) -> None:
    """Pretty-print the NDJSON lines of FILE (default: stdin) as they arrive.

    Lines that are not JSON objects pass through dimmed. Control
    characters in log data are shown escaped, never sent to the terminal.
    """
    line_filter = LineFilter(
        minimum=LEVELS[level.lower()] if level else 0,
        layers=layers,
        correlation_id=correlation_id,
        events=events,
    )
    console = out_console()
    width = None if wide else _FIELD_WIDTH
    try:
        for raw in _lines(file, follow, last):
            for row in format_line(raw, line_filter, width):
                console.print(row, soft_wrap=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`); stop quietly like tail(1).
        sys.stderr.close()


def _lines(file: str, follow: bool, last: int | None) -> Iterator[bytes]:
    if file == "-":
        return stream_lines(sys.stdin.buffer)
    return follow_lines(file, follow=follow, last=last)
