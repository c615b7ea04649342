"""Records from stdlib ``logging`` come out through stratalog's pipeline."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import stratalog
from stratalog.testing import MemorySink

ROOT = Path(__file__).resolve().parent.parent


def test_stdlib_record_carries_the_request_ids(sink: MemorySink) -> None:
    """A third-party logger's record gets the same format and the ids."""
    coordinator = stratalog.LoggingCoordinator()
    coordinator.start_request(correlation_id="req-1", session_id="s-1")
    logging.getLogger("thirdparty.client").warning(
        "retrying %s", "GET /x", extra={"attempt": 2}
    )
    coordinator.end_request()

    (record,) = [
        r for r in sink.records() if r["logger"] == "thirdparty.client"
    ]
    assert record["event"] == "retrying GET /x"
    assert record["level"] == "warning"
    assert record["correlation_id"] == "req-1"
    assert record["session_id"] == "s-1"
    assert record["attempt"] == 2
    assert "layer" not in record


def test_stdlib_exception_keeps_its_traceback(sink: MemorySink) -> None:
    """``logger.exception`` from stdlib code writes the traceback once."""
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("thirdparty").exception("lookup failed")

    (record,) = [r for r in sink.records() if r["logger"] == "thirdparty"]
    assert record["level"] == "error"
    assert record["error_type"] == "KeyError"
    assert "Traceback" in record["exception"]


def fail_through_layers(stdlib_first: bool) -> dict[str, Any]:
    """Fail in core, log the error from stdlib, cross service and api.

    Return the request summary's one error.
    """
    core = stratalog.get_unified_logger("app.core", "core")
    service = stratalog.get_unified_logger("app.service", "service")
    api = stratalog.get_unified_logger("app.api", "api")
    coordinator = stratalog.LoggingCoordinator()
    ctx = coordinator.start_request()

    def lookup() -> None:
        if stdlib_first:
            raise KeyError("missing")
        with core.operation("lookup"):
            raise KeyError("missing")

    def handle() -> None:
        with api.operation("handle"), service.operation("answer"):
            try:
                lookup()
            except KeyError:
                logging.getLogger("thirdparty").exception("lookup failed")
                raise

    with pytest.raises(KeyError):
        handle()
    (error,) = coordinator.end_request(ctx)["errors"]

    return error


def test_a_stdlib_record_adds_no_layer_to_the_error(
    sink: MemorySink,
) -> None:
    """Between layers, a stdlib record leaves the error's path as it was."""
    error = fail_through_layers(stdlib_first=False)

    assert error["origin_layer"] == "core"
    assert error["layers"] == ["core", "service", "api"]


def test_an_error_first_seen_by_stdlib_has_no_origin_layer(
    sink: MemorySink,
) -> None:
    """A stdlib record that sees an error first gives it no layer."""
    error = fail_through_layers(stdlib_first=True)

    assert error["origin_layer"] is None
    assert error["layers"] == ["service", "api"]
    (record,) = [r for r in sink.records() if r["logger"] == "thirdparty"]
    assert "Traceback" in record["exception"]


def test_configure_twice_keeps_one_root_handler() -> None:
    """A second ``configure()`` replaces the handler instead of adding one."""
    memory = MemorySink()
    stratalog.configure(sink=memory, format="json")
    before = len(logging.getLogger().handlers)
    stratalog.configure(sink=memory, format="json")
    logging.getLogger("twice").warning("once")

    assert len(logging.getLogger().handlers) == before
    assert [r["event"] for r in memory.records()] == ["once"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the server exited before serving")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError("the server did not start")


def _serve_one_request(
    command: list[str], port: int, log_file: Path
) -> tuple[list[dict[str, object]], str]:
    env = {**os.environ, "STRATALOG_TEST_LOG": str(log_file)}
    env.pop("LOG_FORMAT", None)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_serving(port, process)
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5.0)
        assert response.text == "ok"
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    lines = [json.loads(x) for x in stdout.decode().splitlines() if x]
    return lines, stderr.decode()


SERVERS = [
    pytest.param(
        lambda port: [
            sys.executable, "-m", "uvicorn",
            "tests.apps.configure_twice:app",
            "--port", str(port),
        ],
        id="uvicorn",
    ),
    pytest.param(
        lambda port: [
            sys.executable, "-m", "gunicorn",
            "-k", "uvicorn_worker.UvicornWorker", "-w", "1",
            "-b", f"127.0.0.1:{port}",
            "tests.apps.configure_twice:app",
        ],
        id="gunicorn",
    ),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("command", SERVERS)
def test_c16_each_line_once_under_a_server(
    command: object, tmp_path: Path
) -> None:
    """C16: configured at import and at startup, every line comes out once.

    The startup probe request and the access lines are counted in stdout
    and in the NDJSON file; uvicorn's own error channel stays visible.
    """
    port = _free_port()
    log_file = tmp_path / "app.log"
    stdout_lines, stderr = _serve_one_request(
        command(port),
        port,
        log_file,  # type: ignore[operator]
    )
    file_lines = [
        json.loads(x) for x in log_file.read_text().splitlines() if x
    ]

    for lines in (stdout_lines, file_lines):
        hellos = [x for x in lines if x["event"] == "hello"]
        access = [
            x for x in lines
            if x["logger"] == "uvicorn.access" and "GET / " in str(x["event"])
        ]  # fmt: skip
        assert len(hellos) == 1
        assert len(access) == 1
        startup = [x for x in lines if x["event"] == "startup.configured"]
        assert len(startup) == 1
    assert "hello" not in stderr


def test_secrets_in_stdlib_messages_are_redacted(sink: MemorySink) -> None:
    """An access line or client URL with a token in its query is redacted."""
    logging.getLogger("tests.access").warning(
        '%s - "%s %s HTTP/1.1" %d',
        "127.0.0.1:5000",
        "GET",
        "/callback?access_token=abcdef123456",
        200,
    )

    (record,) = [r for r in sink.records() if r["logger"] == "tests.access"]
    assert "abcdef123456" not in record["event"]
    assert "[REDACTED]" in record["event"]
