"""Run every comparison family, each in a fresh interpreter.

A family configures global logging state (structlog, loguru, the stdlib
root, stratalog's pipeline) and may trace memory, so each runs in its
own process and hands back one JSON document on standard output. A
family that crashes or overruns its time is reported as not available,
with the reason, and the others still run.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._subject import Options

__all__ = ["FAMILIES", "run_family", "run_in_process", "run_suite"]

FAMILIES: dict[str, tuple[str, float]] = {
    "lines": ("benchmarks._lines", 240.0),
    "operations": ("benchmarks._operations", 180.0),
    "calls": ("benchmarks._calls", 180.0),
    "writer": ("benchmarks._writer", 120.0),
    "memory": ("benchmarks._memory", 240.0),
    "http": ("benchmarks._http", 360.0),
    "report": ("benchmarks._report", 480.0),
}
"""Family name: (module with ``run(options)``, time limit in seconds)."""


def run_in_process(name: str, options: Options) -> dict[str, Any]:
    """Run family *name* here and return its document."""
    module = importlib.import_module(FAMILIES[name][0])
    started = time.perf_counter()
    document: dict[str, Any] = module.run(options).to_dict()
    document["elapsed_s"] = round(time.perf_counter() - started, 1)
    return document


def run_family(name: str, options: Options) -> dict[str, Any]:
    """Run family *name* in a child interpreter and return its document."""
    command = [sys.executable, "-m", "benchmarks", "--worker", name]
    if options.quick:
        command.append("--quick")
    limit = FAMILIES[name][1] / (3 if options.quick else 1)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=limit,
            check=False,
            cwd=Path.cwd(),
        )
    except subprocess.TimeoutExpired:
        return _failed(name, f"did not finish within {limit:.0f} s")
    errors = done.stderr.decode(errors="replace")
    sys.stderr.write(errors)
    if done.returncode != 0:
        last = errors.strip().splitlines()[-1:] or ["no output"]
        return _failed(
            name, f"the worker exited with {done.returncode}: {last[0]}"
        )
    try:
        document: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return _failed(name, "the worker printed no JSON document")
    document["elapsed_s"] = round(time.perf_counter() - started, 1)
    return document


def _failed(name: str, reason: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "figures": {},
        "unavailable": {name: reason},
        "notes": [],
        "commands": [],
    }


def run_suite(names: list[str], options: Options) -> list[dict[str, Any]]:
    """Run the families *names* one after another, reporting progress."""
    documents = []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        document = run_family(name, options)
        print(
            f"[bench] {name} done in {document.get('elapsed_s', '?')} s",
            file=sys.stderr,
            flush=True,
        )
        documents.append(document)
    return documents
