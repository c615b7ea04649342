"""Tests for ``stratalog tail``: filters, escaping, stdin and follow mode."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

from stratalog.cli import main

from .logs import encode, line

LINES = [
    line("boundary.inbound", 1, level="debug", correlation_id="a"),
    line("operation.completed", 2, layer="core", correlation_id="a"),
    line(
        "operation.slow", 3, level="warning", layer="core", correlation_id="b"
    ),
    line(
        "operation.failed",
        4,
        level="error",
        layer="infrastructure",
        correlation_id="a",
        exception="Traceback (most recent call last):\nReadTimeout: slow",
    ),
    line("request.completed", 5, level="warning", correlation_id="a"),
]


def _tail(*args: str, stdin: bytes | None = None) -> str:
    result = CliRunner().invoke(main, ["tail", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    ("options", "events"),
    [
        pytest.param(
            ["--level", "warning"],
            ["operation.slow", "operation.failed", "request.completed"],
            id="level-is-a-minimum",
        ),
        pytest.param(
            ["--layer", "core"],
            ["operation.completed", "operation.slow"],
            id="layer",
        ),
        pytest.param(
            ["--correlation-id", "b"], ["operation.slow"], id="correlation-id"
        ),
        pytest.param(
            ["--event", "operation.", "--level", "ERROR"],
            ["operation.failed"],
            id="event-prefix-and-level",
        ),
    ],
)
def test_filters_select_lines(
    write_log: Callable[..., Path], options: list[str], events: list[str]
) -> None:
    """Each filter keeps exactly the lines it names."""
    output = _tail("--no-follow", *options, str(write_log(LINES)))
    shown = [
        name
        for name in (str(record["event"]) for record in LINES)
        if f" {name}" in output
    ]

    assert shown == events


def test_lines_are_pretty_printed_with_tracebacks_below(
    write_log: Callable[..., Path],
) -> None:
    """Time, level, layer, event and fields lead; a traceback follows."""
    output = _tail("--no-follow", str(write_log(LINES)))
    rows = output.splitlines()

    assert rows[3].split()[:4] == [
        "14:00:00.004000",
        "ERROR",
        "infrastructure",
        "operation.failed",
    ]
    assert rows[4] == "    Traceback (most recent call last):"
    assert rows[5] == "    ReadTimeout: slow"


def test_non_json_lines_pass_through_and_hostile_text_is_escaped(
    write_log: Callable[..., Path],
) -> None:
    """Foreign lines are shown, escaped, even with filters on; none crash."""
    records = [
        b"plain \x1b]0;owned\x07 text\r\n",
        b"[1, 2]\n",
        b'{"level": "info", "event": "x\\u001b[2J", "f": "\\u202e"}\n',
        b"\xff\xfe not utf-8\n",
        b'{"torn": ',
    ]
    output = _tail("--no-follow", "--level", "debug", str(write_log(records)))

    assert "\x1b" not in output
    assert "\x07" not in output
    assert "\u202e" not in output
    assert "plain \\x1b]0;owned\\x07 text" in output
    assert "x\\x1b[2J" in output
    assert "[1, 2]" in output
    assert '{"torn":' in output


def test_colours_on_a_terminal_never_carry_data_escapes(
    write_log: Callable[..., Path],
) -> None:
    """With colours forced on, only rich's own SGR codes are emitted."""
    records = [line("x\x1b[2J\x1b]2;t\x07", 1, user="\x9b31m")]
    result = CliRunner().invoke(
        main,
        ["tail", "--no-follow", str(write_log(records))],
        env={"FORCE_COLOR": "1"},
    )

    assert "\x1b[2J" not in result.stdout
    assert "\x1b]2;" not in result.stdout
    assert "\x9b" not in result.stdout
    assert "\x1b[" in result.stdout


def test_stdin_is_read_when_no_file_is_given() -> None:
    """Without FILE, lines come from standard input until its end."""
    output = _tail("--layer", "core", stdin=encode(LINES))

    assert "operation.completed" in output
    assert "boundary.inbound" not in output


def test_lines_option_starts_at_the_last_lines(
    write_log: Callable[..., Path],
) -> None:
    """-n N shows only the last N lines of the file."""
    output = _tail("--no-follow", "-n", "2", str(write_log(LINES)))

    assert "operation.failed" in output
    assert "operation.slow" not in output


def test_long_values_are_cut_unless_wide(
    write_log: Callable[..., Path],
) -> None:
    """Field values past 160 characters are cut; --wide shows them whole."""
    path = write_log([line("x", 1, blob="y" * 500)])

    assert "...(+340)" in _tail("--no-follow", str(path))
    assert "y" * 500 in _tail("--no-follow", "--wide", str(path))


class _Reader:
    """Collect a process's stdout on a thread, to wait for text."""

    def __init__(self, stream: IO[str]) -> None:
        self.text = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._read, args=(stream,), daemon=True
        )
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for chunk in iter(stream.readline, ""):
            with self._lock:
                self.text += chunk

    def join(self) -> None:
        self._thread.join(timeout=10)

    def wait_for(self, needle: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if needle in self.text:
                    return True
            time.sleep(0.05)
        return False


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[tuple[Path, _Reader]]:
    """Run ``stratalog tail`` on a log file as a real process."""
    path = tmp_path / "live.log"
    path.write_bytes(encode(LINES[:1]))
    command = Path(sys.executable).with_name("stratalog")
    process = subprocess.Popen(
        [str(command), "tail", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    reader = _Reader(process.stdout)
    try:
        yield path, reader
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join()
        process.stdout.close()


def test_follow_mode_prints_appended_and_rotated_lines(
    follower: tuple[Path, _Reader],
) -> None:
    """New lines appear as written, a torn line once whole, then rotation."""
    path, reader = follower
    assert reader.wait_for("boundary.inbound")

    with path.open("ab") as out:
        out.write(encode([line("appended.first", 9)]))
    assert reader.wait_for("appended.first")

    torn = encode([line("appended.torn", 10)])
    with path.open("ab") as out:
        out.write(torn[:20])
        out.flush()
        time.sleep(0.5)
        out.write(torn[20:])
    assert reader.wait_for("appended.torn")

    path.rename(path.with_suffix(".1"))
    path.write_bytes(encode([line("after.rotation", 11)]))
    assert reader.wait_for("after.rotation")
    assert "\\x" not in reader.text
