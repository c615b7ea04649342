"""Write ``RESULTS.md`` for people and ``results.json`` for machines."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ._subject import Options
from ._timing import ratio

__all__ = ["machine", "versions", "write_results"]

PACKAGES = (
    "stratalog",
    "structlog",
    "orjson",
    "loguru",
    "opentelemetry-sdk",
    "tenacity",
    "stamina",
    "asgi-correlation-id",
    "fastapi",
    "starlette",
    "uvicorn",
)

_TOOLS = {"wrk": ["wrk", "-v"], "jq": ["jq", "--version"]}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Describe the machine: CPU, cores, Python, kernel, load."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def _tool_version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _git_revision() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def versions() -> dict[str, str]:
    """Return the version of every package and tool compared."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["stratalog"] += f" (git {_git_revision()})"
    for tool, command in _TOOLS.items():
        found[tool] = _tool_version(command)
    return found


def write_results(
    out: Path,
    documents: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    options: Options,
    argv: list[str],
) -> None:
    """Write both result files into *out*."""
    data = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks", *argv]).strip(),
        "quick": options.quick,
        "machine": machine(),
        "versions": versions(),
        "targets": verdicts,
        "families": documents,
    }
    for document in documents:
        document["ratios"] = _ratios(document)
    (out / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "RESULTS.md").write_text(_markdown(data))


def _ratios(document: dict[str, Any]) -> list[dict[str, Any]]:
    figures = document["figures"]
    found = []
    for numerator, denominator in document.get("compare", []):
        if numerator in figures and denominator in figures:
            spread = ratio(
                figures[numerator]["samples"], figures[denominator]["samples"]
            )
            found.append({"of": numerator, "to": denominator, **spread})
    return found


def _markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Generated {data['generated']} by `make bench` "
        f"(`{data['command']}`)"
        + (
            ", **quick mode**: short runs, small log file"
            if data["quick"]
            else ""
        )
        + ". See [README.md](README.md) for what each figure means.",
        "",
        "These figures come from a shared, noisy 2-core machine that "
        "other engineers' test runs were using at the same time. Times "
        "are CPU time of the benchmarking process (every thread), "
        "contenders interleaved round by round; judge by the ratios, "
        "which hold better than the absolute figures.",
        "",
        *_machine_table(data["machine"], data["versions"]),
        *_target_table(data["targets"]),
    ]
    for document in data["families"]:
        lines.extend(_family_section(document))
    return "\n".join(lines) + "\n"


def _machine_table(
    info: dict[str, Any], packages: dict[str, str]
) -> list[str]:
    rows = [
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {info['cpu']} |",
        f"| cores | {info['cores']} |",
        f"| Python | {info['implementation']} {info['python']} |",
        f"| kernel | {info['kernel']} |",
        f"| load average at the end | {info['load_average']} |",
    ]
    rows.extend(
        f"| {name} | {version} |" for name, version in packages.items()
    )
    rows.append("")
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _target_table(verdicts: list[dict[str, Any]]) -> list[str]:
    rows = [
        "## Targets",
        "",
        "| target | measured | quartiles | verdict |",
        "|---|---|---|---|",
    ]
    for verdict in verdicts:
        if verdict["status"] == "not available":
            rows.append(
                f"| {verdict['text']} | - | - | not available: "
                f"{verdict['detail']} |"
            )
            continue
        quartiles = (
            f"{_fmt(verdict['q1'])} to {_fmt(verdict['q3'])}"
            if verdict.get("q1") is not None
            else "-"
        )
        rows.append(
            f"| {verdict['text']} | {_fmt(verdict['value'])} | {quartiles} "
            f"| **{verdict['status']}** |"
        )
    rows.append("")
    return rows


def _family_section(document: dict[str, Any]) -> list[str]:
    rows = [f"## {document['title']}", ""]
    figures = document["figures"]
    timings = {k: f for k, f in figures.items() if f["kind"] == "timing"}
    values = {k: f for k, f in figures.items() if f["kind"] == "value"}
    if timings:
        rows.extend(_timing_table(timings))
    if values:
        rows.extend(_value_table(values))
    if document.get("ratios"):
        rows.extend(_ratio_table(document["ratios"]))
    for key, reason in document["unavailable"].items():
        rows.append(f"- `{key}`: not available ({reason})")
    if document["unavailable"]:
        rows.append("")
    rows.extend(f"- {note}" for note in document["notes"])
    if document["notes"]:
        rows.append("")
    if document["commands"]:
        rows.extend(["Commands:", "", "```"])
        rows.extend(document["commands"])
        rows.extend(["```", ""])
    if "elapsed_s" in document:
        rows.extend([f"Family run time: {document['elapsed_s']} s.", ""])
    return rows


def _timing_table(figures: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "| figure | what | CPU µs median | IQR | stdev | wall µs median "
        "| calls x rounds |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, fig in figures.items():
        cpu, wall = fig["cpu"], fig["wall"]
        rows.append(
            f"| `{key}` | {fig['label']} | {_fmt(cpu['median'])} "
            f"| {_fmt(cpu['q1'])} to {_fmt(cpu['q3'])} "
            f"| {_fmt(cpu['stdev'], 2)} | {_fmt(wall['median'])} "
            f"| {fig['batch']:,} x {fig['rounds']} |"
        )
    rows.append("")
    return rows


def _value_table(figures: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "| figure | what | median | IQR | unit | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for key, fig in figures.items():
        stats = fig["stats"]
        rows.append(
            f"| `{key}` | {fig['label']} | {_fmt(stats['median'])} "
            f"| {_fmt(stats['q1'])} to {_fmt(stats['q3'])} "
            f"| {fig['unit']} | {fig['rounds']} |"
        )
    rows.append("")
    return rows


def _ratio_table(ratios: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| ratio | median | IQR (per-round ratios) |",
        "|---|---|---|",
    ]
    for entry in ratios:
        quartiles = (
            f"{_fmt(entry['q1'])} to {_fmt(entry['q3'])}"
            if "q1" in entry
            else "- (medians)"
        )
        rows.append(
            f"| `{entry['of']}` / `{entry['to']}` "
            f"| {_fmt(entry['median'])}x | {quartiles} |"
        )
    rows.append("")
    return rows
