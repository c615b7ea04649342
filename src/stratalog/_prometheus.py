"""The machinery behind :mod:`stratalog.metrics`: observers, collectors.

Imported only by that module, once metrics are made, so
``prometheus_client`` may be imported at the top here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from . import _diagnostics, _state
from .metrics import CIRCUIT_STATES

if TYPE_CHECKING:
    from .metrics import PrometheusMetrics

__all__ = [
    "OperationMetrics",
    "OutputCollector",
    "exposition",
    "label",
    "lifespan",
    "line_handlers",
]

Handler = Callable[[dict[str, Any]], None]

_LABEL_LIMIT = 128


def label(value: Any, missing: str = "unknown") -> str:
    """Return *value* as a bounded label value; *missing* for none."""
    if value is None or value == "":
        return missing
    text = str(value)
    return text if len(text) <= _LABEL_LIMIT else text[:_LABEL_LIMIT]


def line_handlers(metrics: PrometheusMetrics) -> dict[str, Handler]:
    """Return, by event name, what each line changes in *metrics*."""
    circuit = partial(_circuit, metrics)
    return {
        "request.completed": partial(_request_completed, metrics),
        "external.call.short_circuited": partial(_short_circuited, metrics),
        "external.retry.scheduled": partial(_external_retry, metrics),
        "circuit.opened": circuit,
        "circuit.half_opened": circuit,
        "circuit.closed": circuit,
    }


def _request_completed(
    metrics: PrometheusMetrics, line: dict[str, Any]
) -> None:
    method = label(line.get("method"))
    route = label(line.get("route"), "unmatched")
    metrics.requests.labels(
        method,
        route,
        label(line.get("status"), "none"),
        label(line.get("outcome")),
    ).inc()
    duration_ms = line.get("duration_ms")
    if isinstance(duration_ms, int | float):
        metrics.request_duration.labels(method, route).observe(
            duration_ms / 1000
        )
    counts = line.get("counts")
    if isinstance(counts, Mapping):
        suppressed = counts.get("suppressed")
        if isinstance(suppressed, int) and suppressed > 0:
            metrics.dedup_suppressed.inc(suppressed)
    for error in line.get("errors") or ():
        if isinstance(error, Mapping):
            metrics.errors.labels(
                label(error.get("origin_layer")),
                label(error.get("type")),
            ).inc()


def _short_circuited(metrics: PrometheusMetrics, line: dict[str, Any]) -> None:
    client = label(line.get("client"))
    metrics.external_calls.labels(client, "short_circuited").inc()


def _external_retry(metrics: PrometheusMetrics, line: dict[str, Any]) -> None:
    metrics.external_retries.labels(label(line.get("client"))).inc()


def _circuit(metrics: PrometheusMetrics, line: dict[str, Any]) -> None:
    client = label(line.get("client"))
    event = line["event"]
    metrics.circuit_state.labels(client).set(CIRCUIT_STATES[event])
    state = event.rsplit(".", 1)[-1]
    metrics.circuit_transitions.labels(client, state).inc()


class OperationMetrics:
    """Time every operation, at any level; count external calls.

    An external call runs in an infrastructure operation whose fields
    name the ``client`` and, once it ended, the ``attempts`` and the
    ``outcome``: such an operation counts as one call.
    """

    __slots__ = ("_metrics",)

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def started(self, operation: Any) -> None:
        """Nothing to remember: the duration comes with the end."""
        return

    def finished(
        self,
        operation: Any,
        state: Any,
        exc: BaseException | None,
        duration: float,
        outcome: str,
    ) -> None:
        """Record the duration, a violation, an external call."""
        metrics = self._metrics
        layer = operation.layer
        metrics.operation_duration.labels(layer, outcome).observe(duration)
        if outcome == "slow" or (
            outcome == "failed"
            and duration > _state.config().thresholds.get(layer, duration)
        ):
            metrics.threshold_violations.labels(layer).inc()
        data = operation.data
        if (
            layer == "infrastructure"
            and "client" in data
            and "attempts" in data
        ):
            called = data.get("outcome") or outcome
            metrics.external_calls.labels(
                label(data["client"]), label(called)
            ).inc()


class OutputCollector:
    """Read the output's line counts when Prometheus scrapes."""

    def __init__(self, namespace: str) -> None:
        self._prefix = f"{namespace}_" if namespace else ""

    def describe(self) -> list[Any]:
        """Name the families, without reading the output."""
        return self._families(None)

    def collect(self) -> list[Any]:
        """Read the current output's counts."""
        stats = getattr(_state.PIPELINE.sink, "stats", None)
        try:
            counts = stats() if callable(stats) else None
        except Exception as error:
            _diagnostics.report("metrics", "output stats failed", error)
            counts = None
        return self._families(counts)

    def _families(self, counts: Any) -> list[Any]:
        prefix = self._prefix
        dropped = CounterMetricFamily(
            f"{prefix}dropped_lines",
            "Lines the output dropped because its buffer was full.",
        )
        lost = CounterMetricFamily(
            f"{prefix}lost_lines",
            "Lines a destination of the output failed to take.",
        )
        pending = GaugeMetricFamily(
            f"{prefix}pending_lines", "Lines waiting for the output's writer."
        )
        if counts is not None:
            dropped.add_metric([], counts.dropped)
            lost.add_metric([], counts.lost)
            pending.add_metric([], counts.pending)
        return [dropped, lost, pending]


def exposition(
    registry: CollectorRegistry | None, scope: dict[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Return status, headers and body of a scrape of *registry*.

    ``None`` means the global registry.
    """
    if scope.get("method") not in ("GET", "HEAD"):
        return 405, [(b"allow", b"GET, HEAD")], b""
    if registry is None:
        registry = REGISTRY
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


async def lifespan(receive: Any, send: Any) -> None:
    """Acknowledge startup and shutdown of a standalone app."""
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
