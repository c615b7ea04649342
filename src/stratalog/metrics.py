"""Prometheus metrics from stratalog's lines and operations.

Optional: needs the ``prometheus`` extra; ``prometheus_client`` is
imported only when metrics are made. Wire them in with
:func:`install_metrics` and serve them with :func:`metrics_app`::

    metrics = stratalog.metrics.install_metrics()
    app.mount("/metrics", stratalog.metrics.metrics_app())

Two sources feed the metrics. Operation durations and threshold
violations come from an operation observer, so every operation counts
whatever the log level. Requests, errors, deduplication, external calls,
breakers and dropped lines are read from the lines the pipeline writes
(``request.completed``, ``external.*``, ``circuit.*``, ``log.dropped``):
a line filtered out by the level is not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _diagnostics, _state

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "PrometheusMetrics",
    "install_metrics",
    "metrics_app",
    "uninstall_metrics",
]

DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Histogram buckets, in seconds, for request and operation durations."""

CIRCUIT_STATES: Mapping[str, float] = {
    "circuit.closed": 0.0,
    "circuit.half_opened": 1.0,
    "circuit.opened": 2.0,
}
"""The value of ``stratalog_circuit_state`` after each breaker event."""

_LABEL_LIMIT = 128
_installed: PrometheusMetrics | None = None

ASGIApp = Callable[..., Any]


def _label(value: Any, missing: str = "unknown") -> str:
    if value is None or value == "":
        return missing
    text = str(value)
    return text if len(text) <= _LABEL_LIMIT else text[:_LABEL_LIMIT]


class PrometheusMetrics:
    """Counters and histograms of one service, in one registry.

    By default the metrics live in a :class:`CollectorRegistry` of their
    own (``.registry``), so several instances (tests, sub-applications)
    never collide; pass ``prometheus_client.REGISTRY`` to share the
    global one. ``.observer`` is an operation observer and ``.processor``
    a pipeline processor: :func:`install_metrics` adds both to the
    pipeline, or pass them to :func:`stratalog.configure` yourself.

    Route labels are route templates (``/cases/{case_id}``), never raw
    paths, so the number of series stays bounded.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "stratalog",
        buckets: tuple[float, ...] = DURATION_BUCKETS,
    ) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.registry = (
            registry if registry is not None else CollectorRegistry()
        )
        common: dict[str, Any] = {
            "namespace": namespace,
            "registry": self.registry,
        }
        self.requests = Counter(
            "requests",
            "Requests served, by route, status and outcome.",
            ["method", "route", "status", "outcome"],
            **common,
        )
        self.request_duration = Histogram(
            "request_duration_seconds",
            "Request duration, by route.",
            ["method", "route"],
            buckets=buckets,
            **common,
        )
        self.operation_duration = Histogram(
            "operation_duration_seconds",
            "Operation duration, by layer and outcome.",
            ["layer", "outcome"],
            buckets=buckets,
            **common,
        )
        self.threshold_violations = Counter(
            "threshold_violations",
            "Operations slower than their layer's threshold.",
            ["layer"],
            **common,
        )
        self.dedup_suppressed = Counter(
            "dedup_suppressed_lines",
            "Lines held back as repeats within a request.",
            **common,
        )
        self.errors = Counter(
            "errors",
            "Distinct errors of requests, by the layer that first saw them.",
            ["origin_layer", "type"],
            **common,
        )
        self.external_calls = Counter(
            "external_calls",
            "Calls to external services, by client and outcome.",
            ["client", "outcome"],
            **common,
        )
        self.external_retries = Counter(
            "external_retries",
            "Retries scheduled for external calls, by client.",
            ["client"],
            **common,
        )
        self.circuit_state = Gauge(
            "circuit_state",
            "Breaker state by client: 0 closed, 1 half-open, 2 open.",
            ["client"],
            **common,
        )
        self.circuit_transitions = Counter(
            "circuit_transitions",
            "Breaker state changes, by client and the state entered.",
            ["client", "state"],
            **common,
        )
        self.dropped_lines = Counter(
            "dropped_lines",
            "Lines dropped because the output buffer was full.",
            **common,
        )
        self.observer = _OperationMetrics(self)
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "request.completed": self._request_completed,
            "external.call.succeeded": self._external_call,
            "external.call.failed": self._external_call,
            "external.call.short_circuited": self._external_call,
            "external.retry.scheduled": self._external_retry,
            "circuit.opened": self._circuit,
            "circuit.half_opened": self._circuit,
            "circuit.closed": self._circuit,
            "log.dropped": self._log_dropped,
        }

    def processor(
        self, logger: Any, method_name: str, event_dict: dict[str, Any]
    ) -> dict[str, Any]:
        """Update the counters a line speaks of; pass the line on."""
        handler = self._handlers.get(str(event_dict.get("event")))
        if handler is not None:
            try:
                handler(event_dict)
            except Exception as error:
                _diagnostics.report("metrics", "a metric update failed", error)
        return event_dict

    # -- lines ----------------------------------------------------------------

    def _request_completed(self, line: dict[str, Any]) -> None:
        method = _label(line.get("method"))
        route = _label(line.get("route"), "unmatched")
        self.requests.labels(
            method,
            route,
            _label(line.get("status"), "none"),
            _label(line.get("outcome")),
        ).inc()
        duration_ms = line.get("duration_ms")
        if isinstance(duration_ms, int | float):
            self.request_duration.labels(method, route).observe(
                duration_ms / 1000
            )
        counts = line.get("counts")
        if isinstance(counts, Mapping):
            suppressed = counts.get("suppressed")
            if isinstance(suppressed, int) and suppressed > 0:
                self.dedup_suppressed.inc(suppressed)
        for error in line.get("errors") or ():
            if isinstance(error, Mapping):
                self.errors.labels(
                    _label(error.get("origin_layer")),
                    _label(error.get("type")),
                ).inc()

    def _external_call(self, line: dict[str, Any]) -> None:
        outcome = line.get("outcome")
        if not isinstance(outcome, str) or not outcome:
            outcome = line["event"].rsplit(".", 1)[-1]
        self.external_calls.labels(_label(line.get("client")), outcome).inc()

    def _external_retry(self, line: dict[str, Any]) -> None:
        self.external_retries.labels(_label(line.get("client"))).inc()

    def _circuit(self, line: dict[str, Any]) -> None:
        client = _label(line.get("client"))
        event = line["event"]
        self.circuit_state.labels(client).set(CIRCUIT_STATES[event])
        state = event.rsplit(".", 1)[-1]
        self.circuit_transitions.labels(client, state).inc()

    def _log_dropped(self, line: dict[str, Any]) -> None:
        dropped = line.get("dropped")
        if isinstance(dropped, int) and dropped > 0:
            self.dropped_lines.inc(dropped)


class _OperationMetrics:
    """Observe every operation's duration and threshold, at any level."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def started(self, operation: Any) -> None:
        return None

    def finished(
        self,
        operation: Any,
        state: Any,
        exc: BaseException | None,
        duration: float,
        outcome: str,
    ) -> None:
        metrics = self._metrics
        layer = operation.layer
        metrics.operation_duration.labels(layer, outcome).observe(duration)
        if outcome == "slow" or (
            outcome == "failed"
            and duration > _state.config().thresholds.get(layer, duration)
        ):
            metrics.threshold_violations.labels(layer).inc()


def install_metrics(
    registry: CollectorRegistry | None = None,
) -> PrometheusMetrics:
    """Make metrics and add them to this and every later pipeline.

    Calling it again returns the installed metrics when *registry* is
    ``None`` or the same registry; another registry replaces them.
    """
    global _installed
    from ._telemetry import add_integration

    current = _installed
    if current is not None and registry in (None, current.registry):
        return current
    metrics = PrometheusMetrics(registry)
    add_integration("prometheus", [metrics.processor], [metrics.observer])
    _installed = metrics
    return metrics


def uninstall_metrics() -> None:
    """Take the installed metrics out of the pipeline."""
    global _installed
    from ._telemetry import add_integration

    add_integration("prometheus")
    _installed = None


def metrics_app(registry: CollectorRegistry | None = None) -> ASGIApp:
    """Return an ASGI app serving the metrics in Prometheus' text format.

    Without *registry* it serves the metrics of :func:`install_metrics`
    (or the global registry when none are installed), looked up at each
    scrape. Mount it (``app.mount("/metrics", metrics_app())``) or serve
    it alone; it answers any path, and lifespan events are acknowledged.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, headers, body = _scrape(registry, scope)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def _scrape(
    registry: CollectorRegistry | None, scope: dict[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    from prometheus_client import REGISTRY
    from prometheus_client.exposition import choose_encoder

    if scope.get("method") not in ("GET", "HEAD"):
        return 405, [(b"allow", b"GET, HEAD")], b""
    if registry is None:
        registry = _installed.registry if _installed is not None else REGISTRY
    accept = b",".join(
        value
        for name, value in scope.get("headers") or ()
        if name == b"accept"
    )
    encode, content_type = choose_encoder(accept.decode("latin-1"))
    body = encode(registry)
    if scope["method"] == "HEAD":
        body = b""
    return 200, [(b"content-type", content_type.encode("latin-1"))], body


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
