"""Prometheus metrics from stratalog's lines and operations.

Optional: needs the ``prometheus`` extra; ``prometheus_client`` is
imported only when metrics are made. Wire them in with
:func:`install_metrics` and serve them with :func:`metrics_app`::

    metrics = stratalog.metrics.install_metrics()
    app.mount("/metrics", stratalog.metrics.metrics_app())

Three sources feed the metrics, each chosen to count what it sees in
full:

- an operation observer times every operation and counts threshold
  violations and external calls (the operation each call runs in), at
  any log level;
- a pipeline processor reads ``request.completed`` (requests, durations,
  the summary's errors and suppressed lines), ``external.retry.scheduled``,
  ``external.call.short_circuited`` and ``circuit.*`` lines, so a line the
  level filters out is not counted (requests at ``LOG_LEVEL=warning``
  count only the slow and failed ones), and short circuits repeated
  within one request count once, as they are logged once;
- at each scrape, the output's own counts of dropped, lost and pending
  lines (its ``log.dropped`` line is written past the pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _diagnostics

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

_installed: PrometheusMetrics | None = None

ASGIApp = Callable[..., Any]


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

        from ._prometheus import (
            OperationMetrics,
            OutputCollector,
            line_handlers,
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
        self.registry.register(OutputCollector(namespace))
        self.observer = OperationMetrics(self)
        self._handlers = line_handlers(self)

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
        from ._prometheus import exposition, lifespan

        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        chosen = registry
        if chosen is None and _installed is not None:
            chosen = _installed.registry
        status, headers, body = exposition(chosen, scope)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
