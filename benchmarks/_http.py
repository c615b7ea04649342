"""Comparison 7: a FastAPI hello world under uvicorn, loaded with wrk.

Every application of ``benchmarks/apps/`` runs at once in its own
uvicorn process (one worker, ``--log-level warning``, no access log),
pinned to core 0; wrk runs pinned to core 1. Each round loads every
server in turn, in a fresh random order, for the same duration. The
server's CPU time (utime + stime from ``/proc/<pid>/stat``, read before
and after the load) divided by the requests wrk completed gives the CPU
per request: on a shared machine it is the figure to judge by, since
requests per second and latency move with whatever else runs.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._family import Family
from ._peers import count_lines
from ._subject import Options

__all__ = ["run"]

APPS = {
    "bare": ("benchmarks.apps.bare:app", "no middleware"),
    "stratalog": (
        "benchmarks.apps.with_stratalog:app",
        "stratalog LoggingMiddleware, summary line to a file",
    ),
    "correlation": (
        "benchmarks.apps.with_correlation:app",
        "asgi-correlation-id + one structlog line (pure ASGI middleware)",
    ),
    "basehttp": (
        "benchmarks.apps.with_basehttp:app",
        "BaseHTTPMiddleware binding a request id + one structlog line",
    ),
}

_SERVER_CORE = "0"
_LOAD_CORE = "1"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class _Server:
    name: str
    target: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cpu: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0

    def cpu_seconds(self) -> float:
        """Return the server's utime + stime so far, in seconds."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _uvicorn(target: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def _pinned(core: str, command: list[str]) -> list[str]:
    if shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", core, *command]


def _wait_ready(server: _Server, limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", server.port), 0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _start(family: Family, name: str, options: Options) -> _Server | None:
    target, _ = APPS[name]
    port = _free_port()
    env = {**os.environ, "BENCH_LOG_DIR": str(options.var)}
    process = subprocess.Popen(
        _pinned(_SERVER_CORE, _uvicorn(target, port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = _Server(
        name, target, port, process, options.var / f"http-{name}.log"
    )
    if _wait_ready(server):
        return server
    _stop(server)
    stderr = (
        process.stderr.read().decode(errors="replace")
        if process.stderr
        else ""
    )
    last = stderr.strip().splitlines()[-1:] or ["no output"]
    family.unavailable[f"cpu.{name}"] = f"the server did not start: {last[0]}"
    return None


def _stop(server: _Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"wrk printed no {pattern!r}:\n{text}")
    return match.group(1)


def _parse_wrk(text: str) -> tuple[int, float, float, int]:
    """Return (requests, requests/s, p99 ms, non-2xx or socket errors)."""
    requests = int(_find(r"(\d+) requests in", text))
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", text))
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    p99 = (
        float(match.group(1)) * _UNITS[match.group(2)]
        if match
        else float("nan")
    )
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (.*)", r"Socket errors: (.*)"):
        found = re.search(pattern, text)
        if found:
            errors += sum(int(n) for n in re.findall(r"\d+", found.group(1)))
    return requests, rps, p99, errors


def _load(
    server: _Server, seconds: float
) -> tuple[int, float, float, int, float]:
    command = _pinned(
        _LOAD_CORE,
        [
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds:g}s",
            "--latency",
            f"http://127.0.0.1:{server.port}/hello",
        ],
    )
    before = server.cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    used = server.cpu_seconds() - before
    requests, rps, p99, errors = _parse_wrk(done.stdout)
    return requests, rps, p99, errors, used


def run(options: Options) -> Family:
    """Serve every app, load each in turn per round, record the figures."""
    family = Family("http", "HTTP: FastAPI hello world under uvicorn")
    if shutil.which("wrk") is None:
        for name in APPS:
            family.unavailable[f"cpu.{name}"] = "wrk is not installed"
        return family
    seconds = 3.0 if options.quick else 10.0
    rounds = options.rounds(4, 1)
    servers = [s for name in APPS if (s := _start(family, name, options))]
    try:
        for server in servers:
            _load(server, 2.0)
        order = random.Random(7)
        for _ in range(rounds):
            order.shuffle(servers)
            for server in servers:
                requests, rps, p99, errors, used = _load(server, seconds)
                server.requests += requests
                server.errors += errors
                server.cpu.append(used / requests * 1e6)
                server.rps.append(rps)
                server.p99.append(p99)
    finally:
        for server in servers:
            _stop(server)
    _record(family, servers, seconds, rounds)
    return family


def _record(
    family: Family, servers: list[_Server], seconds: float, rounds: int
) -> None:
    for server in sorted(servers, key=lambda s: list(APPS).index(s.name)):
        label = APPS[server.name][1]
        family.value(
            f"cpu.{server.name}",
            f"{label}: server CPU per request",
            "µs",
            server.cpu,
        )
        family.value(
            f"rps.{server.name}",
            f"{label}: requests per second",
            "req/s",
            server.rps,
        )
        family.value(
            f"p99.{server.name}", f"{label}: p99 latency", "ms", server.p99
        )
        if server.errors:
            family.notes.append(
                f"{server.name}: {server.errors:,} non-2xx responses or "
                "socket errors."
            )
        if server.name != "bare":
            lines = count_lines(server.log)
            family.notes.append(
                f"{server.name}: {lines:,} lines in its log for "
                f"{server.requests:,} measured requests (plus warm-up)."
            )
        command = _pinned(_SERVER_CORE, _uvicorn(server.target, 0))
        command[command.index("--port") + 1] = "PORT"
        family.commands.append(" ".join(command))
    family.commands.append(
        f"taskset -c {_LOAD_CORE} wrk -t1 -c32 -d{seconds:g}s --latency "
        f"http://127.0.0.1:PORT/hello   # {rounds} round(s) per app, "
        "after a 2 s warm-up"
    )
    for kind in ("cpu", "rps", "p99"):
        family.compare += [
            (f"{kind}.stratalog", f"{kind}.{peer}")
            for peer in ("bare", "correlation", "basehttp")
        ]
