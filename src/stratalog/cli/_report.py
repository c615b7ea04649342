"""``stratalog report``: request, layer, error and dedup figures of logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import orjson

from stratalog.cli._document import build_document
from stratalog.cli._parallel import aggregate
from stratalog.cli._tables import Table, render
from stratalog.cli._text import clean, err_console, fmt_ms, out_console

__all__ = ["report"]

_PERCENTILES = ("p50", "p95", "p99")
_NUMBERS = frozenset(range(1, 12))


@click.command()
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document."
)
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Length of the slowest-requests and other ranked lists.",
)
@click.option(
    "--jobs",
    "-j",
    default=0,
    type=click.IntRange(min=0),
    help=(
        "Processes reading in parallel; 0 (default): one per CPU, at "
        "most 4, for inputs over 192 MiB, else 1."
    ),
)
def report(files: tuple[str, ...], as_json: bool, top: int, jobs: int) -> None:
    """Summarise requests, layers, errors and dedup savings of FILE...

    FILE may be plain NDJSON, gzip (.gz) or - for standard input.
    Percentiles are nearest-rank.
    """
    aggregator, inputs = aggregate(files, top, jobs)
    aggregator.finish()
    document = build_document(aggregator, inputs)
    if as_json:
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    else:
        render(out_console(), _tables(document))
    _warn(document["input"])


def _warn(inputs: dict[str, Any]) -> None:
    console = err_console()
    for failure in inputs["unreadable"]:
        message = f"{failure['file']}: read stopped early: {failure['error']}"
        console.out(f"stratalog: {clean(message)}", highlight=False)
    if inputs["malformed"]:
        reasons = ", ".join(
            f"{reason}: {count}"
            for reason, count in inputs["malformed_by_reason"].items()
        )
        console.out(
            f"stratalog: skipped {inputs['malformed']} malformed "
            f"line(s) ({reasons})",
            highlight=False,
        )


def _tables(document: dict[str, Any]) -> list[Table]:
    return [
        _overview(document),
        _routes(document["routes"]),
        _layers(document["layers"]),
        _violations(document["violations"]),
        *_errors(document["errors"]),
        *_dedup(document["dedup"]),
        _breakers(document["breakers"]),
        _slowest(document["slowest"]),
    ]


def _overview(document: dict[str, Any]) -> Table:
    inputs = document["input"]
    requests = document["requests"]
    latency = requests["latency_ms"]
    rate = requests["error_rate"]
    rows: list[Sequence[object]] = [
        (
            "input",
            f"{len(inputs['files'])} file(s), {inputs['bytes']:,} bytes",
        ),
        ("lines", f"{inputs['lines']:,} ({inputs['malformed']:,} malformed)"),
        (
            "time span",
            f"{requests['first'] or '-'} .. {requests['last'] or '-'}",
        ),
        ("requests", f"{requests['count']:,}"),
        (
            "server errors",
            f"{requests['server_errors']:,}"
            + (f" ({rate:.2%})" if rate is not None else ""),
        ),
        ("status classes", _pairs(requests["status_classes"])),
        ("outcomes", _pairs(requests["outcomes"])),
        (
            "latency ms",
            "  ".join(
                f"{p} {fmt_ms(latency[p])}" for p in (*_PERCENTILES, "max")
            ),
        ),
    ]
    note = f"percentiles: nearest-rank; errors: {requests['error_rule']}"
    return Table("Overview", ("figure", "value"), rows, note=note)


def _routes(routes: list[dict[str, Any]]) -> Table:
    rows = [
        (
            route["route"],
            f"{route['requests']:,}",
            f"{route['server_errors']:,}",
            f"{route['error_rate']:.1%}",
            *_latency(route["latency_ms"]),
        )
        for route in routes
    ]
    columns = (
        "route",
        "requests",
        "5xx/error",
        "rate",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    )
    return Table("Routes", columns, rows, numeric=_NUMBERS)


def _layers(layers: list[dict[str, Any]]) -> Table:
    rows = [
        (
            layer["layer"],
            f"{layer['timeline_ms']['count']:,}",
            *_latency(layer["timeline_ms"])[:3],
            f"{layer['operations_ms']['count']:,}",
            *_latency(layer["operations_ms"])[:3],
        )
        for layer in layers
    ]
    columns = (
        "layer",
        "timelines",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "operations",
        "op p50 ms",
        "op p95 ms",
        "op p99 ms",
    )
    note = (
        "timelines: request_timeline <layer>_layer.duration; "
        "operations: duration_ms of operation lines"
    )
    return Table("Layers", columns, rows, numeric=_NUMBERS, note=note)


def _violations(violations: list[dict[str, Any]]) -> Table:
    rows = [
        (
            f"{item['layer']}.{item['operation']}",
            f"{item['slow_lines']:,}",
            f"{item['in_summaries']:,}",
            fmt_ms(item["max_ms"]),
            fmt_ms(item["threshold_ms"]),
        )
        for item in violations
    ]
    columns = (
        "operation",
        "slow lines",
        "in summaries",
        "max ms",
        "threshold ms",
    )
    return Table("Threshold violations", columns, rows, numeric=_NUMBERS)


def _errors(errors: dict[str, Any]) -> list[Table]:
    rows = [
        (
            item["origin_layer"],
            f"{item['errors']:,}",
            f"{item['cascade_lines_avoided']:,}",
        )
        for item in errors["by_origin"]
    ]
    by_origin = Table(
        "Errors by origin layer",
        ("origin layer", "errors", "cascade lines avoided"),
        rows,
        numeric=_NUMBERS,
        note=f"cascade lines avoided {errors['cascade_rule']}",
    )
    types = Table(
        "Error types",
        ("type", "errors"),
        [(item["type"], f"{item['errors']:,}") for item in errors["types"]],
        numeric=_NUMBERS,
    )
    return [by_origin, types]


def _dedup(dedup: dict[str, Any]) -> list[Table]:
    share = dedup["saved_share"]
    summary = Table(
        "Dedup savings",
        ("figure", "value"),
        [
            ("lines suppressed", f"{dedup['suppressed']:,}"),
            ("lines written", f"{dedup['lines_written']:,}"),
            ("saved", f"{share:.1%}" if share is not None else "-"),
            (
                "requests with suppression",
                f"{dedup['requests_with_suppression']:,}",
            ),
        ],
    )
    keys = Table(
        "Most suppressed keys",
        ("key", "suppressed"),
        [(item["key"], f"{item['suppressed']:,}") for item in dedup["keys"]],
        numeric=_NUMBERS,
    )
    return [summary, keys]


def _breakers(breakers: list[dict[str, Any]]) -> Table:
    rows = [
        (
            item["client"],
            str(item["transitions"].get("opened", 0)),
            str(item["transitions"].get("half_opened", 0)),
            str(item["transitions"].get("closed", 0)),
            item["last"] or "-",
            item["last_at"] or "-",
        )
        for item in breakers
    ]
    columns = ("client", "opened", "half-opened", "closed", "last", "last at")
    return Table(
        "Circuit breakers", columns, rows, numeric=frozenset((1, 2, 3))
    )


def _slowest(slowest: list[dict[str, Any]]) -> Table:
    rows = [
        (
            fmt_ms(item["duration_ms"]),
            item["status"] if item["status"] is not None else "-",
            f"{item['method'] or ''} {item['path'] or item['route']}".strip(),
            item["correlation_id"] or "-",
            item["timestamp"] or "-",
        )
        for item in slowest
    ]
    columns = ("ms", "status", "request", "correlation id", "at")
    return Table("Slowest requests", columns, rows, numeric=frozenset((0, 1)))


def _latency(summary: dict[str, Any]) -> tuple[str, ...]:
    return tuple(fmt_ms(summary[key]) for key in (*_PERCENTILES, "max"))


def _pairs(counts: dict[str, int]) -> str:
    return (
        ", ".join(f"{key} {value:,}" for key, value in counts.items()) or "-"
    )
