"""Comparison 10: ``stratalog report`` against jq on the same large log.

The log is generated once with ``stratalog.cli._generate.write_log``
(1 GiB, or 64 MiB with ``--quick``) into ``var/bench/`` and reused while
present. jq computes what the report's route table shows, request count
and nearest-rank p95 duration per route, with the program in
:data:`JQ_PROGRAM`: it reads the lines one by one (``-n`` with
``inputs``, no slurp) and keeps only a ``[route, duration]`` pair per
request, so its time grows linearly with the file. (A ``reduce`` that
appends each duration to a per-route array copies the array on every
append in jq 1.6 and turns quadratic: 141 s instead of about 20 s on
1 GiB.) Each round runs both, in turn; wall time and CPU time come from
``wait4`` on each child (CPU includes its reaped worker processes), and
peak memory is the summed Pss of the child's process tree, sampled. Both
answers are compared route by route.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from ._family import Family, Unavailable, require
from ._subject import Options

__all__ = ["JQ_PROGRAM", "run"]

JQ_PROGRAM = """\
[inputs | select(.event == "request.completed")
  | [(.route // .path), .duration_ms]]
| group_by(.[0])
| map({key: .[0][0], value: (map(.[1]) | sort
    | {count: length, p95: .[(length * 0.95 | ceil) - 1]})})
| from_entries
"""


# Not wait4's ru_maxrss: on Linux it keeps the high-water mark of the
# forked copy of this process from before the exec, so a small tool
# reports this process's own size.
_KEYS = ("wall", "cpu", "tree_pss", "tree_rss", "processes")


def _log_file(options: Options) -> tuple[Path, float]:
    generate = require("stratalog.cli._generate", "write_log")
    size = (64 if options.quick else 1024) << 20
    path = options.var / f"report-{size >> 20}m.ndjson"
    started = time.perf_counter()
    if not path.exists() or path.stat().st_size < size:
        partial = path.with_suffix(".partial")
        generate.write_log(partial, size, seed=0)
        partial.rename(path)
        return path, time.perf_counter() - started
    return path, 0.0


class _TreeMemory(threading.Thread):
    """Sample the summed memory of a process and its descendants.

    ``wait4`` reports the largest single process of the tree; a command
    that spreads work over worker processes uses their sum. Every 50 ms
    the Pss (each shared page divided among the processes sharing it)
    and the Rss of every process in the tree are summed; the peaks stay.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_pss = 0.0
        self.peak_rss = 0.0
        self.most_processes = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.05):
            pids = _tree(self.pid)
            pss = rss = 0.0
            for pid in pids:
                found = _rollup(pid)
                pss += found.get("Pss", 0.0)
                rss += found.get("Rss", 0.0)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self.most_processes = max(self.most_processes, len(pids))

    def stop(self) -> None:
        """Stop sampling."""
        self._done.set()
        self.join()


def _tree(root: int) -> list[int]:
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children")
                pending.extend(int(c) for c in children.read_text().split())
        except OSError:
            continue
    return found


def _rollup(pid: int) -> dict[str, float]:
    """Return the Rss and Pss of *pid* in MiB (empty once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            found[name] = int(rest.split()[0]) / 1024
    return found


def _measure(command: list[str], out: Path) -> dict[str, float]:
    started = time.perf_counter()
    with out.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink)
        memory = _TreeMemory(process.pid)
        memory.start()
        _, status, usage = os.wait4(process.pid, 0)
        memory.stop()
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise Unavailable(f"{command[0]} exited with {process.returncode}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "tree_pss": memory.peak_pss,
        "tree_rss": memory.peak_rss,
        "processes": memory.most_processes,
    }


def _commands(path: Path, program: Path) -> dict[str, list[str]]:
    stratalog = Path(sys.executable).with_name("stratalog")
    return {
        "stratalog": [str(stratalog), "report", "--json", str(path)],
        "jq": ["jq", "-n", "-c", "-f", str(program), str(path)],
    }


def _agreement(var: Path) -> str:
    report = json.loads((var / "report-stratalog.out").read_text())
    answer = json.loads((var / "report-jq.out").read_text())
    ours = {
        row["route"]: (row["requests"], row["latency_ms"]["p95"])
        for row in report["routes"]
    }
    theirs = {k: (v["count"], v["p95"]) for k, v in answer.items()}
    if ours == theirs:
        return f"agree on all {len(ours)} routes (count and p95)"
    differing = sorted(set(ours.items()) ^ set(theirs.items()))
    return f"DISAGREE: {differing[:4]}"


def run(options: Options) -> Family:
    """Generate the log if needed, then time both tools, interleaved."""
    family = Family("report", "stratalog report against jq")
    try:
        if shutil.which("jq") is None:
            raise Unavailable("jq is not installed")
        path, generated = _log_file(options)
        program = options.var / "report-p95.jq"
        program.write_text(JQ_PROGRAM)
        commands = _commands(path, program)
        found: dict[str, dict[str, list[float]]] = {
            tool: {key: [] for key in _KEYS} for tool in commands
        }
        for turn in range(options.rounds(2, 1)):
            tools = list(commands) if turn % 2 == 0 else list(commands)[::-1]
            for tool in tools:
                out = options.var / f"report-{tool}.out"
                for key, value in _measure(commands[tool], out).items():
                    found[tool][key].append(value)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, Unavailable) else repr(exc)
        for key in ("wall.stratalog", "wall.jq", "rss.stratalog"):
            family.unavailable[key] = reason
        return family
    size = path.stat().st_size
    for tool, figures in found.items():
        family.value(
            f"wall.{tool}", f"{tool}: wall time", "s", figures["wall"]
        )
        family.value(
            f"cpu.{tool}",
            f"{tool}: CPU time (user + sys)",
            "s",
            figures["cpu"],
        )
        family.value(
            f"rss.{tool}",
            f"{tool}: peak memory, summed Pss of its process tree "
            "(sampled every 50 ms)",
            "MiB",
            figures["tree_pss"],
        )
        family.value(
            f"rss_sum.{tool}",
            f"{tool}: peak summed Rss of its process tree (shared pages "
            "counted once per process)",
            "MiB",
            figures["tree_rss"],
        )
        family.value(
            f"processes.{tool}",
            f"{tool}: most processes seen at once",
            "processes",
            figures["processes"],
        )
        family.value(
            f"rate.{tool}",
            f"{tool}: throughput",
            "MiB/s",
            [size / (1 << 20) / wall for wall in figures["wall"]],
        )
    family.compare += [
        ("wall.jq", "wall.stratalog"),
        ("cpu.jq", "cpu.stratalog"),
        ("rss.stratalog", "rss.jq"),
    ]
    family.notes.append(
        f"Input: {path.name}, {size:,} bytes"
        + (f", generated in {generated:.0f} s" if generated else ", reused")
        + f". Answers: {_agreement(options.var)}."
    )
    family.commands += [" ".join(c) for c in commands.values()]
    family.commands += ["", "# report-p95.jq", *JQ_PROGRAM.splitlines()]
    return family
