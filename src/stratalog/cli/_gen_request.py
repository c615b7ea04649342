"""Build the log lines of one generated request (see ``_generate``)."""

from __future__ import annotations

import random
import time
from typing import Any

from stratalog.cli._gen_model import (
    BREAKER_OPEN_US,
    BREAKER_TRIP_RATE,
    EPOCH_S,
    ERROR_RATE,
    ERRORS,
    INFRA,
    LAYERS,
    RETRY_RATE,
    ROUTES,
    THRESHOLDS_S,
    USER_AGENTS,
    WEIGHTS,
    Breaker,
    Op,
    Request,
    Route,
    api_name,
    inner,
    operations,
    traceback_text,
)

__all__ = ["RequestBuilder"]


class RequestBuilder:
    """Draw requests from a seeded generator and render their lines."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._breakers: dict[str, Breaker] = {}
        self._second = -1
        self._second_text = ""

    def build(self, start_us: int) -> list[tuple[int, dict[str, Any]]]:
        """Return ``(microseconds, line)`` pairs of a request at *start_us*."""
        request = self._draw(start_us)
        self._fail(request)
        self._emit_ops(request)
        self._emit_extras(request)
        request.lines.append((request.end_us, self._summary(request)))

        return request.lines

    def iso(self, at_us: int) -> str:
        """Format a simulated time as an RFC 3339 UTC timestamp."""
        second, micro = divmod(at_us, 1_000_000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(EPOCH_S + second)
            )
        return f"{self._second_text}.{micro:06d}Z"

    def _draw(self, start_us: int) -> Request:
        rng = self._rng
        route = rng.choices(ROUTES, WEIGHTS)[0]
        total_us = int(rng.lognormvariate(0.0, 0.55) * route.median_ms * 1e3)
        total_us = max(total_us, 400)
        ids = self._ids(route)
        path = route.template
        for name in ("investigation_id", "agent_id", "session_id"):
            path = path.replace("{" + name + "}", ids.get(name, "x"))
        path = path.replace("{payment_id}", f"pay_{rng.getrandbits(40):x}")
        # The agent is part of the path, not one of the schema's ids.
        ids.pop("agent_id", None)
        ops = self._plan(route, start_us, start_us + total_us)

        return Request(route, path, start_us, start_us + total_us, ids, ops)

    def _ids(self, route: Route) -> dict[str, str]:
        rng = self._rng
        ids = {"correlation_id": f"{rng.getrandbits(128):032x}"}
        if rng.random() < 0.7:
            ids["session_id"] = f"s-{rng.getrandbits(48):012x}"
        if rng.random() < 0.6:
            ids["user_id"] = f"u-{rng.randrange(1, 50_000)}"
        if "investigation" in route.template:
            ids["investigation_id"] = f"inv-{rng.randrange(1, 9_000)}"
        if "agents" in route.template:
            ids["agent_id"] = f"agent-{rng.randrange(1, 40)}"
            ids["agent_phase"] = "act"
        if rng.random() < 0.5:
            ids["trace_id"] = f"{rng.getrandbits(128):032x}"
            ids["span_id"] = f"{rng.getrandbits(64):016x}"
        return ids

    def _plan(self, route: Route, start_us: int, end_us: int) -> list[Op]:
        api = Op("api", api_name(route), start_us + 80, end_us - 60, -1)
        service = inner(api, "service", route.service_op, 0, 0.04)
        ops = [api, service]
        if not route.core_ops:
            return ops
        window = inner(service, "core", "", 1, 0.05)
        step = (window.end_us - window.start_us) // len(route.core_ops)
        for index, name in enumerate(route.core_ops):
            begin = window.start_us + index * step
            ops.append(Op("core", name, begin, begin + step - 20, 1))
        for index, (name, client) in enumerate(route.infra_ops):
            parent = 2 + index % len(route.core_ops)
            infra = inner(ops[parent], "infrastructure", name, parent, 0.15)
            infra.client = client
            infra.retried = bool(client) and self._rng.random() < RETRY_RATE
            ops.append(infra)
        return ops

    def _fail(self, request: Request) -> None:
        origin = self._breaker_failure(request)
        if origin is None and self._rng.random() < ERROR_RATE:
            candidates = [op for op in request.ops if op.layer in ERRORS]
            origin = self._rng.choice(candidates) if candidates else None
            if origin is not None:
                kind, message, status = ERRORS[origin.layer][0]
                origin.failure = (f"err_{self._hex(12)}", kind, message)
                request.status = status
        if origin is None or origin.failure is None:
            return
        self._propagate(request, origin)

    def _breaker_failure(self, request: Request) -> Op | None:
        for op in request.ops:
            if not op.client:
                continue
            breaker = self._breakers.setdefault(op.client, Breaker())
            failure = self._call_breaker(request, op, breaker)
            if failure:
                op.failure = (f"err_{self._hex(12)}", *failure)
                request.status = 503
                return op
        return None

    def _call_breaker(
        self, request: Request, op: Op, breaker: Breaker
    ) -> tuple[str, str] | None:
        if breaker.state == "open" and op.start_us >= breaker.until_us:
            breaker.state = "half_open"
            self._circuit(request, op, "circuit.half_opened", "info", 0)
        if breaker.state == "open":
            self._external(request, op, "external.call.short_circuited")
            return ("CircuitOpenError", f"circuit for {op.client} is open")
        if breaker.state == "half_open":
            breaker.state = "closed"
            self._circuit(request, op, "circuit.closed", "info", 0)
            return None
        if self._rng.random() < BREAKER_TRIP_RATE:
            breaker.state = "open"
            breaker.until_us = op.end_us + BREAKER_OPEN_US
            self._circuit(request, op, "circuit.opened", "warning", 5)
            return ("ConnectError", f"{op.client} refused the connection")
        return None

    def _propagate(self, request: Request, origin: Op) -> None:
        assert origin.failure is not None
        layers = [origin.layer]
        parent = origin.parent
        while parent >= 0:
            outer = request.ops[parent]
            outer.failure = origin.failure
            outer.propagated = True
            layers.append(outer.layer)
            parent = outer.parent
        request.ops = [
            op
            for op in request.ops
            if op.failure is not None or op.end_us <= origin.end_us
        ]
        error_id, kind, message = origin.failure
        request.errors.append(
            {
                "error_id": error_id,
                "type": kind,
                "message": message,
                "origin_layer": origin.layer,
                "origin_operation": origin.name,
                "layers": layers,
            }
        )

    def _emit_ops(self, request: Request) -> None:
        for op in request.ops:
            if op.client:
                self._emit_external(request, op)
            self._emit_op(request, op)

    def _emit_op(self, request: Request, op: Op) -> None:
        fields: dict[str, Any] = {
            "operation": op.name,
            "duration_ms": op.duration_ms,
        }
        if op.failure is not None:
            self._emit_failed(request, op, fields)
            return
        threshold_ms = THRESHOLDS_S[op.layer] * 1000.0
        event, level = "operation.completed", "info"
        if op.duration_ms > threshold_ms:
            event, level = "operation.slow", "warning"
            fields["threshold_ms"] = threshold_ms
        elif op.layer == "infrastructure" and not op.client:
            fields["rows"] = self._rng.randrange(0, 200)
        self._add(request, op.end_us, level, op.layer, event, fields)

    def _emit_failed(
        self, request: Request, op: Op, fields: dict[str, Any]
    ) -> None:
        assert op.failure is not None
        error_id, kind, message = op.failure
        fields.update(
            error_id=error_id, error_type=kind, error_message=message
        )
        if op.propagated:
            origin = request.errors[0]
            fields.update(
                propagated=True,
                origin_layer=origin["origin_layer"],
                origin_operation=origin["origin_operation"],
            )
        else:
            fields["exception"] = traceback_text(op, kind, message)
        event = "operation.failed"
        self._add(request, op.end_us, "error", op.layer, event, fields)

    def _emit_external(self, request: Request, op: Op) -> None:
        failure = op.failure
        if failure and not op.propagated and failure[1] == "CircuitOpenError":
            return
        self._external(request, op, "external.call.started")
        attempts = 1
        if op.retried:
            attempts = 2
            fields = {
                "client": op.client,
                "operation": op.name,
                "attempt": 1,
                "delay_s": 0.2,
                "error_type": "ReadTimeout",
            }
            at_us = (op.start_us + op.end_us) // 2
            event = "external.retry.scheduled"
            self._add(request, at_us, "warning", INFRA, event, fields)
        ok = failure is None
        at_us = op.end_us - 30
        fields = {
            "client": op.client,
            "operation": op.name,
            "attempt": attempts,
            "attempts": attempts,
            "outcome": "success" if ok else "failure",
            "duration_ms": round((at_us - op.start_us) / 1000.0, 3),
        }
        event = "external.call.succeeded" if ok else "external.call.failed"
        level = "info" if ok else "warning"
        self._add(request, at_us, level, INFRA, event, fields)

    def _external(self, request: Request, op: Op, event: str) -> None:
        breaker = self._breakers.setdefault(op.client, Breaker())
        fields = {
            "client": op.client,
            "operation": op.name,
            "attempt": 1,
            "breaker_state": breaker.state,
        }
        self._add(request, op.start_us + 10, "info", INFRA, event, fields)

    def _circuit(
        self,
        request: Request,
        op: Op,
        event: str,
        level: str,
        failures: int,
    ) -> None:
        fields = {"client": op.client, "failures": failures}
        self._add(request, op.end_us, level, INFRA, event, fields)

    def _emit_extras(self, request: Request) -> None:
        rng = self._rng
        route = request.route
        post = route.method == "POST"
        api = api_name(route)
        inbound = {
            "operation": api,
            "direction": "inbound",
            "payload_type": "dict" if post else "none",
            "payload_size": rng.randrange(0, 4000) if post else 0,
            "payload_keys": ["title", "priority"] if post else [],
        }
        at_us = request.start_us + 40
        self._add(request, at_us, "info", "api", "boundary.inbound", inbound)
        if route.infra_ops and rng.random() < 0.3:
            metric = {
                "metric": "db.rows_scanned",
                "value": rng.randrange(1, 5000),
                "unit": "rows",
            }
            at_us = request.end_us - 100
            event = "metric.recorded"
            self._add(request, at_us, "info", INFRA, event, metric)
        outbound = {
            "operation": api,
            "direction": "outbound",
            "payload_type": "dict",
            "payload_size": rng.randrange(80, 64_000),
            "payload_keys": ["data", "meta"],
        }
        at_us = request.end_us - 50
        self._add(request, at_us, "info", "api", "boundary.outbound", outbound)

    def _summary(self, request: Request) -> dict[str, Any]:
        duration_ms = round((request.end_us - request.start_us) / 1000.0, 3)
        status = request.status
        suppressed = self._rng.choice((0, 0, 0, 1, 2, 6, 14))
        fields: dict[str, Any] = {
            "method": request.route.method,
            "route": request.route.template,
            "path": request.path,
            "status": status,
            "duration_ms": duration_ms,
            "bytes_in": self._rng.randrange(0, 2048),
            "bytes_out": self._rng.randrange(80, 64_000),
            "client_ip": self._client_ip(),
            "user_agent": self._rng.choice(USER_AGENTS),
            "outcome": "error" if status >= 500 else "ok",
            "start_time": self.iso(request.start_us),
            "counts": {
                "lines": len(request.lines),
                "suppressed": suppressed,
                "operations": len(request.ops),
                "errors": len(request.errors),
            },
            "error": bool(request.errors),
            "error_count": len(request.errors),
            "errors": request.errors,
            "performance_violations": self._violations(request),
            "request_timeline": self._timeline(request),
            "operations": operations(request.ops),
            "dedup": self._dedup(request, suppressed),
            "attributes": {"tenant": f"t{self._rng.randrange(1, 30)}"},
        }
        level = (
            "warning"
            if status >= 500 or fields["performance_violations"]
            else "info"
        )
        return self._line(
            request, request.end_us, level, "api", "request.completed", fields
        )

    def _violations(self, request: Request) -> list[dict[str, Any]]:
        found = []
        for op in request.ops:
            threshold_ms = THRESHOLDS_S[op.layer] * 1000.0
            if op.failure is None and op.duration_ms > threshold_ms:
                found.append(
                    {
                        "layer": op.layer,
                        "operation": op.name,
                        "duration_ms": op.duration_ms,
                        "threshold_ms": threshold_ms,
                    }
                )
        return found

    def _timeline(self, request: Request) -> dict[str, Any]:
        timeline: dict[str, Any] = {"start": self.iso(request.start_us)}
        for layer in LAYERS:
            spans = [op for op in request.ops if op.layer == layer]
            if not spans:
                continue
            start = min(op.start_us for op in spans)
            end = max(op.end_us for op in spans)
            duration = round((end - start) / 1e6, 6)
            timeline[f"{layer}_layer"] = {
                "start": self.iso(start),
                "end": self.iso(end),
                "duration": duration,
                "threshold": THRESHOLDS_S[layer],
                "violation": duration > THRESHOLDS_S[layer],
            }
        timeline["end"] = self.iso(request.end_us)
        timeline["total_duration"] = round(
            (request.end_us - request.start_us) / 1e6, 6
        )
        return timeline

    def _dedup(self, request: Request, suppressed: int) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        if suppressed:
            first = self.iso(request.start_us + 500)
            keys["infrastructure.cache.get"] = {
                "count": suppressed + 1,
                "suppressed": suppressed,
                "first": first,
                "last": self.iso(request.end_us - 200),
            }
        return {"suppressed": suppressed, "keys": keys}

    def _add(
        self,
        request: Request,
        at_us: int,
        level: str,
        layer: str,
        event: str,
        fields: dict[str, Any],
    ) -> None:
        line = self._line(request, at_us, level, layer, event, fields)
        request.lines.append((at_us, line))

    def _line(
        self,
        request: Request,
        at_us: int,
        level: str,
        layer: str,
        event: str,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "timestamp": self.iso(at_us),
            "level": level,
            "logger": f"app.{layer}",
            "layer": layer,
            "event": event,
        }
        line.update(request.ids)
        line.update(fields)
        return line

    def _client_ip(self) -> str:
        return f"10.0.{self._rng.randrange(256)}.{self._rng.randrange(256)}"

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"
