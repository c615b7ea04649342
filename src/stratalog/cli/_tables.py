"""Tables that print as rich tables on a terminal and as plain text otherwise.

Plain text is meant for pipes, files and scripts: one header line, one
line per row, columns separated by two spaces, numbers right-aligned, no
colour and no box drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from stratalog.cli._text import clean

__all__ = ["Table", "render"]


@dataclass
class Table:
    """A titled table; cells are cleaned of control characters on output."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]] = ()
    numeric: frozenset[int] = frozenset()
    note: str = ""
    empty: str = "none"


def render(console: Console, tables: Sequence[Table]) -> None:
    """Print *tables* to *console*, rich on a terminal and plain otherwise."""
    for index, table in enumerate(tables):
        if console.is_terminal:
            _render_rich(console, table)
        else:
            if index:
                console.out("")
            _render_plain(console, table)


def _render_rich(console: Console, table: Table) -> None:
    if not table.rows:
        console.print(Text(f"{table.title}: {table.empty}", style="dim"))
        return
    grid = RichTable(
        title=table.title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        caption=table.note or None,
        caption_justify="left",
    )
    for index, column in enumerate(table.columns):
        if index in table.numeric:
            grid.add_column(column, justify="right", overflow="fold")
        else:
            grid.add_column(column, overflow="fold")
    for row in table.rows:
        grid.add_row(*(Text(clean(cell)) for cell in row))
    console.print(grid)


def _render_plain(console: Console, table: Table) -> None:
    console.out(clean(table.title), highlight=False)
    if not table.rows:
        console.out(f"  {table.empty}", highlight=False)
        return
    cells = [[clean(cell) for cell in row] for row in table.rows]
    header = [clean(column) for column in table.columns]
    widths = [
        max(len(line[index]) for line in [header, *cells])
        for index in range(len(header))
    ]
    for line in [header, *cells]:
        console.out("  " + _join(line, widths, table.numeric), highlight=False)
    if table.note:
        console.out(f"  {clean(table.note)}", highlight=False)


def _join(
    cells: Sequence[str], widths: Sequence[int], numeric: frozenset[int]
) -> str:
    padded = [
        cell.rjust(width) if index in numeric else cell.ljust(width)
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(padded).rstrip()
