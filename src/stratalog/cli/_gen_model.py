"""The traffic model of generated logs: routes, operations, rates."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BREAKER_OPEN_US",
    "BREAKER_TRIP_RATE",
    "EPOCH_S",
    "ERRORS",
    "ERROR_RATE",
    "INFRA",
    "LAYERS",
    "RETRY_RATE",
    "ROUTES",
    "THRESHOLDS_S",
    "USER_AGENTS",
    "WEIGHTS",
    "Breaker",
    "Op",
    "Request",
    "Route",
    "api_name",
    "inner",
    "operations",
    "traceback_text",
]

LAYERS = ("api", "service", "core", "infrastructure")
THRESHOLDS_S = {
    "api": 0.5,
    "service": 0.4,
    "core": 0.3,
    "infrastructure": 0.25,
}

EPOCH_S = calendar.timegm((2026, 12, 3, 14, 0, 0, 0, 0, 0))
INFRA = "infrastructure"
ERROR_RATE = 0.03
RETRY_RATE = 0.04
BREAKER_TRIP_RATE = 1.0 / 1_000
BREAKER_OPEN_US = 200_000
USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
    "python-httpx/0.28.1",
    "curl/8.5.0",
    "investigator-cli/2.4.0 (+https://example.invalid/cli)",
)
ERRORS = {
    "infrastructure": (("ReadTimeout", "timed out after 5.0s", 502),),
    "core": (("ValidationError", "evidence set is empty", 422),),
    "service": (("KeyError", "'investigation'", 500),),
}


@dataclass(frozen=True)
class Route:
    """A route: its share of traffic, median latency and operations."""

    method: str
    template: str
    weight: int
    median_ms: float
    service_op: str
    core_ops: tuple[str, ...]
    infra_ops: tuple[tuple[str, str], ...]


ROUTES = (
    Route(
        "GET",
        "/api/v1/investigations/{investigation_id}",
        30,
        35.0,
        "investigations.fetch",
        ("investigation.load", "evidence.rank"),
        (("db.query", ""), ("cache.get", "")),
    ),
    Route(
        "POST",
        "/api/v1/investigations",
        10,
        110.0,
        "investigations.create",
        ("investigation.validate", "investigation.store", "audit.record"),
        (("db.insert", ""), ("search.index", "search-index")),
    ),
    Route(
        "GET",
        "/api/v1/investigations/{investigation_id}/events",
        20,
        55.0,
        "events.list",
        ("events.query",),
        (("db.query", ""),),
    ),
    Route(
        "POST",
        "/api/v1/agents/{agent_id}/runs",
        8,
        380.0,
        "agents.run",
        ("agent.plan", "agent.act", "agent.reflect"),
        (("llm.complete", "llm-provider"), ("llm.complete", "llm-provider")),
    ),
    Route(
        "GET",
        "/api/v1/sessions/{session_id}",
        15,
        18.0,
        "sessions.fetch",
        ("session.load",),
        (("cache.get", ""),),
    ),
    Route("GET", "/healthz", 10, 1.5, "health.check", (), ()),
    Route(
        "POST",
        "/api/v1/payments/{payment_id}/refunds",
        4,
        160.0,
        "payments.refund",
        ("refund.authorize", "refund.execute"),
        (("payments.refund", "payments-api"), ("db.update", "")),
    ),
    Route(
        "GET",
        "/api/v1/search",
        6,
        140.0,
        "search.query",
        ("search.plan",),
        (("search.query", "search-index"),),
    ),
)
WEIGHTS = [route.weight for route in ROUTES]


@dataclass
class Op:
    """One operation of a request: layer, span and how it ended."""

    layer: str
    name: str
    start_us: int
    end_us: int
    parent: int
    client: str = ""
    retried: bool = False
    failure: tuple[str, str, str] | None = None
    propagated: bool = False

    @property
    def duration_ms(self) -> float:
        return round((self.end_us - self.start_us) / 1000.0, 3)


@dataclass
class Breaker:
    """The simulated state of one client's circuit breaker."""

    state: str = "closed"
    until_us: int = 0


@dataclass
class Request:
    """One request being built: its operations and its lines."""

    route: Route
    path: str
    start_us: int
    end_us: int
    ids: dict[str, str]
    ops: list[Op]
    lines: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


def api_name(route: Route) -> str:
    """Return the api-layer operation name of *route*."""
    return f"{route.method.lower()}_{route.service_op.split('.')[0]}"


def inner(outer: Op, layer: str, name: str, parent: int, pad: float) -> Op:
    """Return an operation nested in *outer*, *pad* of its span inside."""
    span = outer.end_us - outer.start_us
    margin = max(int(span * pad), 10)
    return Op(
        layer, name, outer.start_us + margin, outer.end_us - margin, parent
    )


def operations(ops: list[Op]) -> dict[str, Any]:
    """Return the summary's per-operation count, total and maximum."""
    found: dict[str, Any] = {}
    for op in ops:
        entry = found.setdefault(
            f"{op.layer}.{op.name}",
            {"count": 0, "total_ms": 0.0, "max_ms": 0.0},
        )
        entry["count"] += 1
        entry["total_ms"] = round(entry["total_ms"] + op.duration_ms, 3)
        entry["max_ms"] = max(entry["max_ms"], op.duration_ms)
    return found


def traceback_text(op: Op, kind: str, message: str) -> str:
    """Return a plausible traceback for a failure of *op*."""
    module = op.name.replace(".", "_")
    return (
        "Traceback (most recent call last):\n"
        f'  File "/srv/app/{op.layer}/{module}.py", line 88, in run\n'
        "    result = await self._call(request)\n"
        f'  File "/srv/app/{op.layer}/{module}.py", line 141, in _call\n'
        "    return await self._client.send(request, timeout=self._timeout)\n"
        '  File "/srv/venv/lib/python3.11/site-packages/httpx/_client.py",'
        " line 1661, in send\n"
        "    response = await self._send_handling_auth(request)\n"
        f"{kind}: {message}"
    )
