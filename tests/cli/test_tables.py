"""Tests for stratalog.cli._tables: plain text and rich tables."""

from __future__ import annotations

import io

from rich.console import Console

from stratalog.cli._tables import Table, render


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer, force_terminal=terminal, width=100, markup=False
    )
    return console, buffer


def test_plain_tables_align_numbers_right() -> None:
    """Off a terminal: title, header and rows, numbers right-aligned."""
    console, buffer = _console(terminal=False)
    table = Table(
        "Routes",
        ("route", "n"),
        [("/a", "5"), ("/long", "120")],
        numeric=frozenset({1}),
    )

    render(console, [table, Table("Empty", ("x",), [])])

    assert buffer.getvalue() == (
        "Routes\n  route    n\n  /a       5\n  /long  120\n\nEmpty\n  none\n"
    )


def test_rich_tables_show_cells_as_text_not_markup() -> None:
    """On a terminal, cell text like [red] is printed, not interpreted."""
    console, buffer = _console(terminal=True)

    render(console, [Table("T", ("a",), [("[red]x[/red]\x1b[2J",)])])

    assert "[red]x[/red]\\x1b[2J" in buffer.getvalue()
    assert "\x1b[2J" not in buffer.getvalue()
