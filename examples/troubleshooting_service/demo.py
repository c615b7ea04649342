"""``make demo``: the service under real traffic, then its report.

Starts the fake provider and the service under uvicorn on free loopback
ports, drives concurrent clients with sessions through three phases
(normal, a provider outage that opens the breaker, recovery), stops both
servers cleanly and prints ``stratalog report`` of the log written under
``./var/``. Exits non-zero when a step broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

PACKAGE = "examples.troubleshooting_service"
DESCRIPTIONS = (
    "Checkout fails with a postgres deadlock on the orders table",
    "Users see TLS handshake timeout from the edge",
    "Pods crash after the latest rollout of the payments image",
    "Latency doubled since this morning for no clear reason",
    "Reports are empty for some tenants but not others",
    "Memory keeps growing in the worker until it restarts",
)

console = Console(stderr=True)
STRATALOG_COMMAND = (
    sys.executable,
    "-c",
    "from stratalog.cli import main; main()",
)


@dataclass
class Tally:
    """What the clients saw."""

    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0

    def add(self, status: int) -> None:
        self.sent += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    app: str, port: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def client_loop(
    base: str, until: float, tally: Tally, seed: int, advance: object
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        session = await http.post("/sessions", json={"user": f"user-{seed}"})
        tally.add(session.status_code)
        headers = {"X-Session-ID": session.json()["session_id"]}
        if seed % 4 == 0:
            headers = {}
        while time.monotonic() < until:
            await one_story(http, headers, rng, tally)
            advance()  # type: ignore[operator]
            await asyncio.sleep(rng.uniform(0.3, 1.0))


async def one_story(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    rng: random.Random,
    tally: Tally,
) -> None:
    try:
        title = "" if rng.random() < 0.05 else "incident"
        created = await http.post(
            "/cases",
            json={"title": title, "description": rng.choice(DESCRIPTIONS)},
            headers=headers,
        )
        tally.add(created.status_code)
        if created.status_code != 201:
            return
        case_id = created.json()["case_id"]
        if rng.random() < 0.05:
            case_id = "case-missing"
        result = await http.post(
            f"/cases/{case_id}/troubleshoot", headers=headers
        )
        tally.add(result.status_code)
        read = await http.get(f"/cases/{case_id}", headers=headers)
        tally.add(read.status_code)
    except httpx.TransportError:
        tally.transport_errors += 1


async def set_provider_mode(provider: str, **mode: float) -> None:
    async with httpx.AsyncClient(base_url=provider, timeout=5.0) as http:
        response = await http.post("/admin/mode", json=mode)
        response.raise_for_status()


async def drive(
    service: str, provider: str, duration: float, clients: int
) -> Tally:
    tally = Tally()
    start = time.monotonic()
    until = start + duration
    with Progress(
        TextColumn("[bold]traffic"),
        BarColumn(),
        TextColumn("{task.fields[phase]:<9} {task.fields[sent]:>4} requests"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("", total=duration, phase="normal", sent=0)

        def advance() -> None:
            progress.update(
                task,
                completed=min(time.monotonic() - start, duration),
                sent=tally.sent,
            )

        loops = [
            client_loop(service, until, tally, seed, advance)
            for seed in range(clients)
        ]
        phases = run_phases(provider, duration, progress, task)
        await asyncio.gather(phases, *loops)
        progress.update(task, completed=duration, sent=tally.sent)
    return tally


async def run_phases(
    provider: str, duration: float, progress: Progress, task: object
) -> None:
    await asyncio.sleep(duration * 0.35)
    progress.update(task, phase="outage")  # type: ignore[arg-type]
    await set_provider_mode(provider, error_rate=1.0, throttle_rate=0.0)
    await asyncio.sleep(duration * 0.2)
    progress.update(task, phase="recovery")  # type: ignore[arg-type]
    await set_provider_mode(provider, error_rate=0.02, throttle_rate=0.01)


def check_log(log_file: Path, tally: Tally) -> list[str]:
    events: dict[str, int] = {}
    requests = 0
    for raw in log_file.read_text().splitlines():
        line = json.loads(raw)
        events[line["event"]] = events.get(line["event"], 0) + 1
        requests += line["event"] == "request.completed"
    problems = []
    if requests != tally.sent:
        problems.append(f"{tally.sent} requests sent, {requests} summaries")
    for needed in ("circuit.opened", "circuit.closed"):
        if not events.get(needed):
            problems.append(f"no {needed} line in the log")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--var", type=Path, default=Path("var"))
    args = parser.parse_args(argv)

    args.var.mkdir(parents=True, exist_ok=True)
    log_file = args.var / "demo.log"
    log_file.unlink(missing_ok=True)
    servers_log = args.var / "demo-servers.log"
    servers_log.unlink(missing_ok=True)
    provider_port, service_port = free_port(), free_port()
    provider = f"http://127.0.0.1:{provider_port}"
    env = {
        **os.environ,
        "LOG_FILE": str(log_file),
        "LOG_OUTPUT": "none",
        "LOG_FORMAT": "json",
        "PROVIDER_URL": provider,
        "BREAKER_FAILURES": "5",
        "BREAKER_RECOVERY_S": str(max(1.0, args.duration / 10)),
    }
    console.print(f"[bold]stratalog demo[/] writing {log_file}")
    provider_process = start_server(
        f"{PACKAGE}.provider:app", provider_port, env, servers_log
    )
    service_process = start_server(
        f"{PACKAGE}.app:app", service_port, env, servers_log
    )
    try:
        wait_for_port(provider_port, provider_process)
        wait_for_port(service_port, service_process)
        tally = asyncio.run(
            drive(
                f"http://127.0.0.1:{service_port}",
                provider,
                args.duration,
                args.clients,
            )
        )
    finally:
        service_status = stop(service_process)
        stop(provider_process)

    seen = dict(sorted(tally.statuses.items()))
    console.print(f"statuses seen by the clients: {seen}")
    report = subprocess.run(
        [*STRATALOG_COMMAND, "report", str(log_file)], check=False
    )
    problems = check_log(log_file, tally)
    # uvicorn ends a graceful SIGTERM shutdown by re-raising the signal.
    if service_status not in (0, -signal.SIGTERM):
        problems.append(f"the service exited with {service_status}")
    if tally.transport_errors:
        problems.append(f"{tally.transport_errors} transport errors")
    if report.returncode != 0:
        problems.append("stratalog report failed")
    for problem in problems:
        console.print(f"[red]demo problem:[/] {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
