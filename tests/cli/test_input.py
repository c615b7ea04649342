"""Tests for stratalog.cli._input: blocks of whole lines from any input."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratalog.cli import _input
from stratalog.cli._input import Source, iter_blocks, iter_sources, total_size


def _source(data: bytes) -> Source:
    stream = io.BytesIO(data)
    return Source("memory", stream, stream)


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))),
    st.booleans(),
    st.integers(min_value=1, max_value=64),
)
def test_blocks_hold_whole_lines_and_lose_nothing(
    lines: list[bytes], trailing_newline: bool, chunk_size: int
) -> None:
    """Blocks join back to the input and only the last may end mid-line."""
    data = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    blocks = list(iter_blocks(_source(data), chunk_size=chunk_size))

    assert b"".join(blocks) == data
    assert all(block.endswith(b"\n") for block in blocks[:-1])


def test_an_oversized_line_is_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line past MAX_LINE is skipped to its newline; reading goes on."""
    monkeypatch.setattr(_input, "MAX_LINE", 16)
    source = _source(b'{"a":1}\n' + b"x" * 100 + b'\n{"b":2}\n')

    blocks = list(iter_blocks(source, chunk_size=8))

    assert b"".join(blocks) == b'{"a":1}\n{"b":2}\n'
    assert source.oversized == 1


def test_gzip_files_are_decompressed(tmp_path: Path) -> None:
    """A .gz path is read through gzip and its position is the disk one."""
    path = tmp_path / "app.log.gz"
    with gzip.open(path, "wb") as out:
        out.write(b'{"a":1}\n' * 1000)

    data = b"".join(
        block
        for source in iter_sources([str(path)])
        for block in iter_blocks(source)
    )

    assert data == b'{"a":1}\n' * 1000
    assert total_size([str(path)]) == path.stat().st_size


def test_total_size_is_unknown_for_stdin(tmp_path: Path) -> None:
    """Progress has no total when one input is standard input."""
    path = tmp_path / "a.log"
    path.write_bytes(b"{}\n")

    assert total_size([str(path)]) == 3
    assert total_size([str(path), "-"]) is None
