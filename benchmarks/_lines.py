"""Comparisons 1-3: an emitted line, a call filtered by level, a deduped call.

Every contender logs ``order.placed`` with the request's ids and five
fields to its own file under ``var/bench/``. Contenders with a background
thread (stratalog's writer, OpenTelemetry's batch processor) flush at the
end of every batch, inside the timing, so the thread's work is charged to
the contender that caused it. After the run each file's line count is
checked against the calls made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._family import Family, require
from ._peers import (
    FIELDS,
    IDS,
    LoguruSetup,
    OtelLogSetup,
    StdlibSetup,
    StructlogSetup,
    count_lines,
)
from ._subject import Options, configure_file, open_request
from ._timing import Contender, interleave

__all__ = ["run"]


class _Counted:
    """Count the calls a batch function makes, to check the files after."""

    def __init__(self, run: Callable[[int], Any]) -> None:
        self._run = run
        self.calls = 0

    def __call__(self, n: int) -> None:
        self.calls += n
        self._run(n)


class StratalogSetup:
    """stratalog: file output through the buffered writer, in a request."""

    label = "stratalog, file output through the buffered writer"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stratalog = configure_file(path)
        logger = require("stratalog.logger", "get_unified_logger")
        self.log = logger.get_unified_logger("bench.orders", "service")
        self.ctx = open_request(**IDS)
        self.log.warning("cache.degraded", backend="redis", fallback="db")

    def emit(self, n: int) -> None:
        """Write *n* info lines, then flush the writer."""
        info = self.log.info
        for _ in range(n):
            info("order.placed", **FIELDS)
        self.stratalog.flush()

    def filtered(self, n: int) -> None:
        """Make *n* debug calls below the level."""
        debug = self.log.debug
        for _ in range(n):
            debug("order.placed", **FIELDS)

    def deduped(self, n: int) -> None:
        """Repeat a warning already written in this request *n* times."""
        warning = self.log.warning
        for _ in range(n):
            warning("cache.degraded", backend="redis", fallback="db")

    def close(self) -> None:
        """Flush what is left."""
        self.stratalog.flush()


def _setups(family: Family, var: Path) -> dict[str, Any]:
    builders: dict[str, Callable[[], Any]] = {
        "stratalog": lambda: StratalogSetup(_fresh(var, "stratalog")),
        "structlog": lambda: StructlogSetup(_fresh(var, "structlog")),
        "stdlib": lambda: StdlibSetup(_fresh(var, "stdlib")),
        "loguru": lambda: LoguruSetup(_fresh(var, "loguru")),
        "otel": OtelLogSetup,
    }
    setups = {}
    for name, build in builders.items():
        setup = family.attempt(f"emitted.{name}", build)
        if setup is None:
            family.unavailable[f"filtered.{name}"] = family.unavailable[
                f"emitted.{name}"
            ]
        else:
            setups[name] = setup
    return setups


def _fresh(var: Path, name: str) -> Path:
    path = var / f"lines-{name}.log"
    path.unlink(missing_ok=True)
    return path


def run(options: Options) -> Family:
    """Time every setup's emitted and filtered call, and the dedup call."""
    family = Family("lines", "Log calls: emitted, filtered, deduplicated")
    setups = _setups(family, options.var)
    counters: dict[str, _Counted] = {}
    contenders = []
    for name, setup in setups.items():
        counters[name] = _Counted(setup.emit)
        contenders.append(Contender(f"emitted.{name}", counters[name]))
        contenders.append(Contender(f"filtered.{name}", setup.filtered))
    if "stratalog" in setups:
        contenders.append(
            Contender("deduped.stratalog", setups["stratalog"].deduped)
        )
    else:
        family.unavailable["deduped.stratalog"] = family.unavailable[
            "emitted.stratalog"
        ]
    samples = interleave(
        contenders, options.rounds(40), options.target(0.04, 0.01)
    )
    for name, setup in setups.items():
        setup.close()
        kind = "emitted"
        family.timing(
            f"{kind}.{name}",
            f"{setup.label}: info line",
            samples[f"{kind}.{name}"],
        )
        family.timing(
            f"filtered.{name}",
            f"{setup.label}: debug call at info level",
            samples[f"filtered.{name}"],
        )
        _check_written(family, name, setup, counters[name].calls)
    if "deduped.stratalog" in samples:
        family.timing(
            "deduped.stratalog",
            "stratalog: a warning repeated in one request (suppressed)",
            samples["deduped.stratalog"],
        )
    peers = [name for name in setups if name != "stratalog"]
    for kind in ("emitted", "filtered"):
        family.compare.extend(
            (f"{kind}.stratalog", f"{kind}.{peer}") for peer in peers
        )
    family.compare.append(("deduped.stratalog", "emitted.stratalog"))
    family.notes.append(
        "Line: event order.placed, correlation/session/user ids bound the "
        "way each library binds request context, five fields "
        f"({', '.join(FIELDS)}); one file per contender under var/bench/."
    )
    return family


def _check_written(family: Family, name: str, setup: Any, calls: int) -> None:
    path = getattr(setup, "path", None)
    if path is not None:
        written = count_lines(path)
        if name == "stratalog":
            written -= 1
    else:
        written = setup.exporter.exported
    family.figures[f"emitted.{name}"]["written"] = written
    family.figures[f"emitted.{name}"]["calls"] = calls
    if written != calls:
        family.notes.append(
            f"{name}: {calls:,} calls but {written:,} records written."
        )
