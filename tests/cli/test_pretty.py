"""Tests for stratalog.cli._pretty: level names and line filters."""

from __future__ import annotations

import pytest

from stratalog.cli._pretty import LineFilter, format_line, level_of


@pytest.mark.parametrize(
    ("name", "level"),
    [
        pytest.param("warning", 30, id="warning"),
        pytest.param("WARN", 30, id="warn-alias-any-case"),
        pytest.param("fatal", 50, id="fatal-is-critical"),
        pytest.param("verbose", 20, id="unknown-is-info"),
        pytest.param(None, 20, id="missing-is-info"),
    ],
)
def test_level_of(name: object, level: int) -> None:
    """Levels map to stdlib numbers; unknown names count as info."""
    assert level_of(name) == level


def test_a_line_without_a_layer_fails_a_layer_filter() -> None:
    """Foreign stdlib records have no layer and never match --layer."""
    line_filter = LineFilter(layers=("api",))

    assert not line_filter.accepts({"event": "x", "level": "info"})
    assert line_filter.accepts({"event": "x", "layer": "api"})


def test_blank_lines_print_nothing() -> None:
    """Empty lines produce no output row."""
    assert format_line(b"\n", LineFilter()) == []


def test_unknown_level_names_are_shown_escaped() -> None:
    """A level name outside the known set is printed as given, escaped."""
    rows = format_line(b'{"level": "n\\u001bte", "event": "e"}', LineFilter())

    assert "n\\x1bte" in rows[0].plain
