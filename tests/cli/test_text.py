"""Tests for stratalog.cli._text: escaping and number formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratalog.cli._text import clean, fmt_ms


@given(st.text())
def test_clean_leaves_no_control_or_bidi_character(text: str) -> None:
    """No C0, C1, DEL or bidi control survives, whatever the input."""
    cleaned = clean(text)

    assert not any(
        ord(char) < 0x20
        or 0x7F <= ord(char) < 0xA0
        or 0x202A <= ord(char) <= 0x202E
        or 0x2066 <= ord(char) <= 0x2069
        for char in cleaned
    )


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param("a\x1b[31mb", "a\\x1b[31mb", id="esc"),
        pytest.param("a\r\nb\tc", "a\\r\\nb\\tc", id="cr-lf-tab"),
        pytest.param("\u202eabc", "\\u202eabc", id="bidi-override"),
        pytest.param("\x9b2J", "\\x9b2J", id="c1-csi"),
        pytest.param("héllo ✓ 日本", "héllo ✓ 日本", id="printable-kept"),
        pytest.param(42, "42", id="non-string"),
    ],
)
def test_clean_escapes_visibly(raw: object, shown: str) -> None:
    """Escapes are readable and printable text is left alone."""
    assert clean(raw) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(1234.5, "1,234", id="large"),
        pytest.param(12.345, "12.3", id="tens"),
        pytest.param(1.2345, "1.23", id="small"),
        pytest.param(None, "-", id="missing"),
        pytest.param(True, "-", id="bool-is-not-a-duration"),
    ],
)
def test_fmt_ms(value: object, shown: str) -> None:
    """Durations keep about three significant digits."""
    assert fmt_ms(value) == shown
