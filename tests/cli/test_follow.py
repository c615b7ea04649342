"""Tests for stratalog.cli._follow: last lines, long lines, truncation."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratalog.cli import _follow
from stratalog.cli._follow import OVERSIZED, follow_lines, stream_lines


@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))),
    st.integers(min_value=0, max_value=8),
    st.booleans(),
)
def test_last_lines_are_the_tail_of_the_file(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    count: int,
    final_newline: bool,
) -> None:
    """Starting at the last N lines yields exactly those lines."""
    path = tmp_path_factory.mktemp("last") / "a.log"
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path.write_bytes(data)
    whole = re.findall(rb"[^\n]*\n|[^\n]+\Z", data)
    expected = whole[-count:] if count else []

    got = list(follow_lines(str(path), follow=False, last=count))

    assert got == expected


def test_a_runaway_line_becomes_one_notice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line past LINE_LIMIT is replaced by OVERSIZED; the next survives."""
    monkeypatch.setattr(_follow, "LINE_LIMIT", 8)
    stream = io.BytesIO(b"x" * 50 + b"\nok\n")

    assert list(stream_lines(stream)) == [OVERSIZED, b"ok\n"]


def test_a_truncated_file_is_read_again_from_its_start(
    tmp_path: Path,
) -> None:
    """A file cut shorter than the read position restarts at offset 0."""
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\n")
    lines = follow_lines(str(path), poll=0.01)
    assert [next(lines), next(lines)] == [b"one\n", b"two\n"]

    path.write_bytes(b"3\n")

    assert next(lines) == b"3\n"
    lines.close()


def test_gzip_files_are_read_once(tmp_path: Path) -> None:
    """A .gz file is decompressed and not followed."""
    import gzip

    path = tmp_path / "a.log.gz"
    path.write_bytes(gzip.compress(b"a\nb"))

    assert list(follow_lines(str(path))) == [b"a\n", b"b"]
