"""Test helpers: capture_logs, MemorySink and the pytest fixtures."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import stratalog
from stratalog import _state
from stratalog.config import LoggingConfig
from stratalog.coordinator import LoggingCoordinator
from stratalog.testing import MemorySink, capture_logs

coordinator = LoggingCoordinator()
log = stratalog.get_unified_logger("tests.testing", "service")


def test_capture_logs_yields_fully_processed_dicts(sink: MemorySink) -> None:
    """Captured dicts are what is written: ids merged, redacted, deduped."""
    with capture_logs() as captured:
        coordinator.start_request(correlation_id="cap-1", user_id="u-1")
        log.info("login", password="hunter2", user="alice")
        for _ in range(3):
            log.error("db.down", host="db")
        coordinator.end_request()

    login, down = captured
    assert login["event"] == "login"
    assert login["level"] == "info"
    assert login["layer"] == "service"
    assert login["correlation_id"] == "cap-1"
    assert login["user_id"] == "u-1"
    assert login["password"] == "[REDACTED]"
    assert login["user"] == "alice"
    assert down["event"] == "db.down"
    assert len(sink.lines) == 2


def test_capture_logs_stops_at_the_end_of_the_block(sink: MemorySink) -> None:
    """Lines after the block are not captured."""
    with capture_logs() as captured:
        log.info("inside")
    log.info("outside")

    assert [c["event"] for c in captured] == ["inside"]
    assert _state.PIPELINE.captures == ()


def test_nested_captures_both_collect(sink: MemorySink) -> None:
    """An inner capture sees its lines; the outer one sees them all."""
    with capture_logs() as outer:
        log.info("a")
        with capture_logs() as inner:
            log.info("b")
        log.info("c")

    assert [c["event"] for c in outer] == ["a", "b", "c"]
    assert [c["event"] for c in inner] == ["b"]


def test_capture_survives_a_configure_inside_the_block(
    sink: MemorySink,
) -> None:
    """Reconfiguring inside the block keeps the capture going."""
    with capture_logs() as captured:
        log.info("before")
        stratalog.configure(sink=MemorySink(), format="json")
        log.info("after")

    assert [c["event"] for c in captured] == ["before", "after"]


def test_capture_logs_before_any_configure_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without configure(), the capture configures from the environment."""
    monkeypatch.setenv("LOG_OUTPUT", "none")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    _state.install(
        _state.Pipeline(config=LoggingConfig(), min_level=0, configured=False)
    )

    with capture_logs() as captured:
        log.info("filtered")
        log.warning("kept")

    assert [c["event"] for c in captured] == ["kept"]


def test_capture_follows_the_configured_level(
    sink: MemorySink,
) -> None:
    """Captures follow the configured level, like the written lines."""
    stratalog.configure(sink=sink, format="json", level="info")

    with capture_logs() as captured:
        log.debug("hidden")
        log.info("shown")

    assert [c["event"] for c in captured] == ["shown"]


def test_memory_sink_keeps_lines_parsed_and_as_text() -> None:
    """The sink keeps bytes, parses them and joins them as text."""
    memory = MemorySink()

    memory.write(b'{"event":"a"}\n', 20)
    memory.write(b'{"event":"b"}\n', 30)

    assert memory.records() == [{"event": "a"}, {"event": "b"}]
    assert memory.text() == '{"event":"a"}\n{"event":"b"}\n'
    assert memory.flush() is True


def test_memory_sink_keeps_lines_after_close() -> None:
    """Closing marks the sink but keeps accepting lines."""
    memory = MemorySink()

    assert memory.close(1.0) is True
    memory.write(b'{"event":"late"}\n', 20)

    assert memory.closed
    assert memory.records() == [{"event": "late"}]


def test_log_output_fixture(log_output: list[dict[str, Any]]) -> None:
    """The ``log_output`` fixture collects the processed dicts of a test."""
    log.info("via.fixture", n=1)

    assert any(c["event"] == "via.fixture" and c["n"] == 1 for c in log_output)


def test_memory_sink_fixture(memory_sink: MemorySink) -> None:
    """The ``memory_sink`` fixture configures JSON into memory."""
    log.warning("to.memory")

    (line,) = [r for r in memory_sink.records() if r["event"] == "to.memory"]
    assert line["level"] == "warning"


def test_fixtures_work_as_an_installed_pytest_plugin(tmp_path: Path) -> None:
    """A fresh pytest run finds both fixtures through the plugin entry."""
    module = tmp_path / "test_plugin_user.py"
    module.write_text(
        textwrap.dedent(
            """
            import stratalog
            from stratalog import _state

            log = stratalog.get_unified_logger("plugin.user", "core")


            def test_log_output(log_output):
                log.info("seen")
                assert [c["event"] for c in log_output] == ["seen"]


            def test_memory_sink(memory_sink):
                before = _state.PIPELINE.sink
                log.warning("kept")
                assert memory_sink.records()[0]["event"] == "kept"
                assert before is memory_sink
            """
        )
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(module),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"LOG_OUTPUT": "none", "PATH": "/usr/bin:/bin"},
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
