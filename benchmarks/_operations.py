"""Comparisons 4 and 6: operation() against a span; a request's life.

How operations are measured. Operation start and completion lines are
deduplicated per request (the first ``core.operation.<name>.completed``
is written, repeats are counted), so a loop over one name would time the
suppressed path. ``operation.written`` therefore runs operations with
distinct names, 100 per request, in a fresh request each time: every
operation writes its ``operation.completed`` line (the ``started`` line
is debug, below the info level). Opening and closing the requests is
left out of the timing, the writer's flush at the end of the batch is
in. ``operation.repeated`` is the same operation over and over in one
request, its line suppressed after the first.

The span is OpenTelemetry's ``start_as_current_span`` on an SDK
``TracerProvider`` with a ``SimpleSpanProcessor`` and an exporter that
drops every span: start, attach, end, detach, no I/O.

Requests: ``request.empty`` is ``start_request()`` then
``end_request()``; ``request.typical`` opens a request with a user and a
session id and one attribute, runs three nested operations (api, service,
core) untimed, then times ``end_request()`` (the summary) and writing the
summary line, plus the opening.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._family import Family, require
from ._peers import FIELDS, IDS
from ._subject import Options, configure_file, open_request
from ._timing import Contender, Stopwatch, interleave

__all__ = ["run"]

_PER_REQUEST = 100


class _Subject:
    """stratalog configured to a file, with the loggers the family uses."""

    def __init__(self, options: Options) -> None:
        path = options.var / "operations-stratalog.log"
        path.unlink(missing_ok=True)
        self.stratalog = configure_file(path)
        logger = require("stratalog.logger", "get_unified_logger")
        coordinator = require(
            "stratalog.coordinator", "LoggingCoordinator", "emit_summary"
        )
        self.emit_summary = coordinator.emit_summary
        self.coordinator = coordinator.LoggingCoordinator()
        self.api = logger.get_unified_logger("bench.api", "api")
        self.service = logger.get_unified_logger("bench.service", "service")
        self.core = logger.get_unified_logger("bench.core", "core")
        self.names = [f"load_item_{i}" for i in range(_PER_REQUEST)]
        state = require("stratalog._state", "PIPELINE", "install")
        self.install = state.install
        self.default = state.PIPELINE
        self.unobserved = dataclasses.replace(state.PIPELINE, observers=())

    def without_observers(self) -> dict[str, Any]:
        """Run a batch on the same pipeline minus its operation observers.

        Shows what the default ``operation_spans="auto"`` observer costs
        when no OpenTelemetry SDK provider is installed.
        """
        return {
            "before": lambda: self.install(self.unobserved),
            "after": lambda: self.install(self.default),
        }

    def line(self, n: int) -> None:
        """Write *n* info lines in the open request, then flush."""
        info = self.core.info
        for _ in range(n):
            info("order.placed", **FIELDS)
        self.stratalog.flush()

    def operations_written(self, n: int) -> tuple[int, int]:
        """Run *n* distinct operations, 100 per fresh request."""
        watch = Stopwatch()
        operation = self.core.operation
        coordinator = self.coordinator
        names = self.names
        done = 0
        while done < n:
            count = min(_PER_REQUEST, n - done)
            coordinator.start_request(**IDS)
            watch.start()
            for name in names[:count]:
                with operation(name, item=7):
                    pass
            watch.stop()
            coordinator.end_request()
            done += count
        watch.start()
        self.stratalog.flush()
        watch.stop()
        return watch.totals()

    def operations_repeated(self, n: int) -> None:
        """Run one operation *n* times in the open request."""
        operation = self.core.operation
        for _ in range(n):
            with operation("load_item", item=7):
                pass
        self.stratalog.flush()

    def request_empty(self, n: int) -> None:
        """Open and close *n* requests with nothing in them."""
        coordinator = self.coordinator
        for _ in range(n):
            coordinator.start_request()
            coordinator.end_request()

    def request_typical(self, n: int) -> tuple[int, int]:
        """Time opening, summarising and writing *n* typical requests."""
        watch = Stopwatch()
        coordinator = self.coordinator
        emit_summary = self.emit_summary
        for _ in range(n):
            watch.start()
            ctx = coordinator.start_request(
                user_id="u-1042", session_id="s-5521", tenant="acme"
            )
            watch.stop()
            with (
                self.api.operation("create_order"),
                self.service.operation("place_order"),
                self.core.operation("reserve_stock"),
            ):
                pass
            watch.start()
            summary = coordinator.end_request()
            emit_summary(summary, ctx)
            watch.stop()
        watch.start()
        self.stratalog.flush()
        watch.stop()
        return watch.totals()


class _NoOpSpanExporter:
    """Take every span and drop it."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _Spans:
    """OpenTelemetry spans: SDK provider, simple processor, no-op exporter."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        self.provider = TracerProvider()
        self.provider.add_span_processor(
            SimpleSpanProcessor(_NoOpSpanExporter())
        )
        self.tracer = self.provider.get_tracer("bench")

    def spans(self, n: int) -> None:
        """Start and end *n* spans, each current while open."""
        start = self.tracer.start_as_current_span
        attributes = {"item": 7}
        for _ in range(n):
            with start("load_item", attributes=attributes):
                pass


def _session(subject: _Subject) -> dict[str, Any]:
    """Open a request before a batch and close it after."""
    return {
        "before": lambda: open_request(**IDS),
        "after": subject.coordinator.end_request,
    }


def run(options: Options) -> Family:
    """Time operations, spans and request lifecycles, interleaved."""
    family = Family("operations", "Operations, spans and requests")
    subject = family.attempt("operation.written", lambda: _Subject(options))
    spans = family.attempt("span.otel", _Spans)
    contenders = []
    if subject is not None:
        session = _session(subject)
        contenders += [
            Contender("emitted.stratalog", subject.line, **session),
            Contender(
                "operation.written",
                subject.operations_written,
                self_timed=True,
            ),
            Contender(
                "operation.written.no_observers",
                subject.operations_written,
                self_timed=True,
                **subject.without_observers(),
            ),
            Contender(
                "operation.repeated", subject.operations_repeated, **session
            ),
            Contender("request.empty", subject.request_empty),
            Contender(
                "request.typical", subject.request_typical, self_timed=True
            ),
        ]
    else:
        reason = family.unavailable["operation.written"]
        for key in (
            "emitted.stratalog",
            "operation.written.no_observers",
            "operation.repeated",
            "request.empty",
            "request.typical",
        ):
            family.unavailable[key] = reason
    if spans is not None:
        contenders.append(Contender("span.otel", spans.spans))
    samples = interleave(
        contenders, options.rounds(40), options.target(0.04, 0.01)
    )
    labels = {
        "emitted.stratalog": "stratalog: one info line in a request "
        "(reference)",
        "operation.written": "stratalog: `with operation(name, item=7)`, "
        "completion line written",
        "operation.written.no_observers": "the same, on the same pipeline "
        "without its default operation-span observer (auto mode, no SDK "
        "provider installed)",
        "operation.repeated": "stratalog: the same operation repeated in "
        "one request (line deduplicated)",
        "span.otel": "OpenTelemetry: `start_as_current_span` + end, "
        "SimpleSpanProcessor, no-op exporter",
        "request.empty": "stratalog: start_request() + end_request(), "
        "nothing inside",
        "request.typical": "stratalog: start_request(2 ids, 1 attribute) + "
        "end_request() after 3 nested operations + summary line",
    }
    for key, sample in samples.items():
        family.timing(key, labels[key], sample)
    family.compare += [
        ("operation.written", "emitted.stratalog"),
        ("operation.written", "span.otel"),
        ("operation.written.no_observers", "span.otel"),
        ("operation.written.no_observers", "emitted.stratalog"),
        ("operation.repeated", "span.otel"),
        ("request.typical", "emitted.stratalog"),
    ]
    family.notes.append(
        "operation.written: distinct operation names, 100 per fresh "
        "request; opening and closing the requests is not timed, the "
        "writer's flush at the end of each batch is. operation.repeated: "
        "one name in one request, so its completion line is suppressed "
        "after the first. No global OpenTelemetry SDK provider is "
        "installed, so the default operation-span observer (auto) opens no "
        "span; operation.written.no_observers shows what it costs anyway."
    )
    return family
