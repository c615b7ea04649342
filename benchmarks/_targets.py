"""The targets, judged on ratios (or values) measured in the same run.

A ratio between two figures of one family pairs their rounds (each round
ran both within seconds) and is judged on the median of the per-round
ratios; its quartiles show how steady it was.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from ._timing import ratio

__all__ = ["TARGETS", "Target", "evaluate", "figure", "print_verdicts"]


@dataclass(frozen=True)
class Target:
    """``family.numerator / family.denominator`` compared with *limit*.

    Without a denominator the numerator's own median is compared.
    *at_most* False means the figure must reach at least *limit*.
    """

    key: str
    text: str
    family: str
    numerator: str
    denominator: str | None
    limit: float
    at_most: bool = True


TARGETS: tuple[Target, ...] = (
    Target(
        "line-vs-structlog",
        "emitted line ≤ 1.0x structlog's fastest setup",
        "lines",
        "emitted.stratalog",
        "emitted.structlog",
        1.0,
    ),
    Target(
        "line-vs-stdlib",
        "emitted line ≤ 0.5x stdlib JSON",
        "lines",
        "emitted.stratalog",
        "emitted.stdlib",
        0.5,
    ),
    Target(
        "filtered-vs-structlog",
        "filtered call ≤ 1.0x structlog's filtered call",
        "lines",
        "filtered.stratalog",
        "filtered.structlog",
        1.0,
    ),
    Target(
        "dedup-vs-line",
        "dedup-suppressed call ≤ 0.1x an emitted line",
        "lines",
        "deduped.stratalog",
        "emitted.stratalog",
        0.1,
    ),
    Target(
        "operation-vs-line",
        "operation() ≤ 2.5x one emitted line",
        "operations",
        "operation.written",
        "emitted.stratalog",
        2.5,
    ),
    Target(
        "operation-vs-span",
        "operation() ≤ 0.5x an OpenTelemetry span",
        "operations",
        "operation.written",
        "span.otel",
        0.5,
    ),
    Target(
        "external-vs-tenacity",
        "call_external happy path ≤ 0.25x tenacity's AsyncRetrying",
        "calls",
        "call_external",
        "tenacity.async_retrying",
        0.25,
    ),
    Target(
        "http-cpu-vs-bare",
        "HTTP server CPU/request with the middleware ≤ 1.10x bare",
        "http",
        "cpu.stratalog",
        "cpu.bare",
        1.10,
    ),
    Target(
        "http-cpu-vs-correlation",
        "HTTP server CPU/request ≤ 0.75x asgi-correlation-id + structlog",
        "http",
        "cpu.stratalog",
        "cpu.correlation",
        0.75,
    ),
    Target(
        "http-cpu-vs-basehttp",
        "HTTP server CPU/request ≤ 0.4x BaseHTTPMiddleware + structlog",
        "http",
        "cpu.stratalog",
        "cpu.basehttp",
        0.4,
    ),
    Target(
        "http-rps-vs-bare",
        "HTTP requests/s with the middleware ≥ 1/1.10 of bare",
        "http",
        "rps.stratalog",
        "rps.bare",
        1 / 1.10,
        at_most=False,
    ),
    Target(
        "http-rps-vs-correlation",
        "HTTP requests/s ≥ 1/0.75 of asgi-correlation-id + structlog",
        "http",
        "rps.stratalog",
        "rps.correlation",
        1 / 0.75,
        at_most=False,
    ),
    Target(
        "http-rps-vs-basehttp",
        "HTTP requests/s ≥ 1/0.4 of BaseHTTPMiddleware + structlog",
        "http",
        "rps.stratalog",
        "rps.basehttp",
        1 / 0.4,
        at_most=False,
    ),
    Target(
        "writer-rate",
        "writer ≥ 200,000 lines per second",
        "writer",
        "rate.file",
        None,
        200_000,
        at_most=False,
    ),
    Target(
        "writer-stall",
        "event-loop stall p99 ≤ 1 ms while writing at full rate",
        "writer",
        "stall.p99",
        None,
        1.0,
    ),
    Target(
        "context-size",
        "RequestContext ≤ 2 KiB",
        "memory",
        "context.bytes",
        None,
        2048,
    ),
    Target(
        "operations-growth",
        "no growth past the bounds over one million operations (≤ 64 KiB)",
        "memory",
        "growth.bytes",
        None,
        65_536,
    ),
    Target(
        "report-vs-jq",
        "report ≥ 3x jq's speed on the same file",
        "report",
        "wall.jq",
        "wall.stratalog",
        3.0,
        at_most=False,
    ),
    Target(
        "report-rss",
        "report peak memory ≤ 256 MiB (summed Pss of its processes)",
        "report",
        "rss.stratalog",
        None,
        256,
    ),
)


def figure(
    documents: list[dict[str, Any]], family: str, key: str
) -> dict[str, Any] | None:
    """Return figure *key* of *family*, or None when it was not measured."""
    for document in documents:
        if document["name"] == family:
            found: dict[str, Any] | None = document["figures"].get(key)
            return found
    return None


def _why_missing(
    documents: list[dict[str, Any]], family: str, keys: list[str]
) -> str:
    for document in documents:
        if document["name"] != family:
            continue
        for key in keys:
            if key in document["unavailable"]:
                return f"{key}: {document['unavailable'][key]}"
        if family in document["unavailable"]:
            return document["unavailable"][family]
        return f"{', '.join(keys)} not measured"
    return f"family {family} not run"


def _judge(target: Target, value: float) -> bool:
    if target.at_most:
        return value <= target.limit
    return value >= target.limit


def evaluate(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one verdict per target."""
    verdicts = []
    for target in TARGETS:
        keys = [target.numerator]
        if target.denominator is not None:
            keys.append(target.denominator)
        found = [figure(documents, target.family, key) for key in keys]
        verdict: dict[str, Any] = {
            "key": target.key,
            "text": target.text,
            "limit": target.limit,
            "at_most": target.at_most,
        }
        if any(f is None for f in found):
            verdict["status"] = "not available"
            verdict["detail"] = _why_missing(documents, target.family, keys)
        else:
            verdict.update(_measure(target, found))
            verdict["status"] = (
                "met" if _judge(target, verdict["value"]) else "missed"
            )
        verdicts.append(verdict)
    return verdicts


def central(fig: dict[str, Any]) -> float:
    """The figure's median (CPU time for timings)."""
    value: float = fig["cpu" if fig["kind"] == "timing" else "stats"]["median"]
    return value


def _measure(target: Target, found: list[Any]) -> dict[str, Any]:
    if len(found) == 1:
        return {"value": central(found[0])}
    spread = ratio(found[0]["samples"], found[1]["samples"])
    return {
        "value": spread["median"],
        "q1": spread.get("q1"),
        "q3": spread.get("q3"),
        "paired": spread["paired"],
    }


def print_verdicts(verdicts: list[dict[str, Any]]) -> int:
    """Print one verdict per line; return how many were not met.

    A target that could not be measured counts as not met: ``--check``
    cannot vouch for it.
    """
    missed = 0
    unknown = 0
    for verdict in verdicts:
        status = verdict["status"]
        if status == "not available":
            line = f"n/a     {verdict['text']}: {verdict['detail']}"
            unknown += 1
        else:
            sign = "≤" if verdict["at_most"] else "≥"
            line = (
                f"{'MET' if status == 'met' else 'MISSED':7} "
                f"{verdict['text']}: {_fmt(verdict['value'])} "
                f"(target {sign} {_fmt(verdict['limit'])})"
            )
            missed += status == "missed"
        print(line)
    print(
        f"{missed} target(s) missed, {unknown} not measured",
        file=sys.stderr,
    )
    return missed + unknown


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"
