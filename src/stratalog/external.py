"""Clients for external services: LLM providers, third-party APIs.

:class:`BaseExternalClient` wraps each call in the infrastructure layer's
full treatment: a circuit breaker, retries with backoff for transient
failures, a timeout per attempt and an overall deadline, response
validation, metrics, health, and lines that tell one story per call.
:class:`HTTPExternalClient` is the ready subclass for HTTP APIs.

Internal infrastructure that is called often and fails rarely (a session
store, a cache) is better served by its own client and the occasional
``operation()``: this machinery is meant for the slow, flaky calls.

Errors reach the caller as themselves: a read timeout stays
``httpx.ReadTimeout``, also when it is the failure that opens the
breaker. Only a call the breaker refuses raises
:class:`~stratalog.CircuitOpenError`, and only a rejected response raises
:class:`~stratalog.ResponseValidationError`.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _diagnostics
from ._external_call import Call
from ._external_outcome import OutcomeRecorder
from ._retry import RetryPolicy
from .breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    RedisBreakerState,
)
from .context import request_context
from .exceptions import CircuitOpenError, ResponseValidationError
from .logger import UnifiedLogger, get_unified_logger

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BaseExternalClient",
    "HTTPExternalClient",
    "add_header_provider",
    "remove_header_provider",
]

HeaderProvider = Callable[[], Mapping[str, str]]

_providers: tuple[HeaderProvider, ...] = ()
_providers_lock = threading.Lock()

_NO_RETRY = RetryPolicy(max_attempts=1)
_DEFAULT_BREAKER = CircuitBreakerConfig()


def add_header_provider(provider: HeaderProvider) -> None:
    """Register *provider*, whose headers go on every outgoing request.

    It is called once per attempt, inside the call's operation, so a
    provider that reads the current span (``traceparent``) sees the
    call's own. Adding the same provider twice adds it once.
    """
    global _providers
    with _providers_lock:
        if provider not in _providers:
            _providers = (*_providers, provider)


def remove_header_provider(provider: HeaderProvider) -> None:
    """Unregister *provider*; unknown providers are ignored."""
    global _providers
    with _providers_lock:
        _providers = tuple(p for p in _providers if p != provider)


class BaseExternalClient:
    """Base class of clients for one external service.

    *circuit_breaker* configures the breaker (``None`` turns it off);
    with *breaker_state*, a :class:`~stratalog.RedisBreakerState`, every
    process shares one breaker for this client's name. *retry* is the
    policy calls use unless they pass ``retries``; by default a call is
    attempted once. *default_timeout* bounds each attempt in seconds.

    A response rejected by a validator counts as a failure in the metrics
    but not for the breaker: the service answered, so the attempt settles
    as a success there. Health (see :meth:`health_check`) is ``unhealthy``
    while the breaker is open or when at least half of the last 100 calls
    failed, ``degraded`` while it is half-open or from a fifth of them, in
    both cases once 10 calls were seen.

    Lines come from the logger ``external.<client_name>`` in the
    ``infrastructure`` layer.
    """

    degraded_failure_rate = 0.2
    unhealthy_failure_rate = 0.5
    health_min_calls = 10

    def __init__(
        self,
        client_name: str,
        service_name: str | None = None,
        *,
        circuit_breaker: CircuitBreakerConfig | None = _DEFAULT_BREAKER,
        retry: RetryPolicy | None = None,
        default_timeout: float | None = None,
        breaker_state: RedisBreakerState | None = None,
    ) -> None:
        self.client_name = client_name
        self.service_name = service_name or client_name
        self.retry_policy = retry or _NO_RETRY
        self.default_timeout = default_timeout
        self.logger: UnifiedLogger = get_unified_logger(
            f"external.{client_name}", "infrastructure"
        )
        self.outcomes = OutcomeRecorder(client_name, self.logger)
        self.metrics = self.outcomes.metrics
        self.breaker: CircuitBreaker | None = None
        if circuit_breaker is not None:
            self.breaker = self.outcomes.breaker = CircuitBreaker(
                client_name,
                circuit_breaker,
                on_transition=self.outcomes.circuit_moved,
                state_store=breaker_state,
            )
        self.shares_breaker_state = (
            self.breaker is not None and breaker_state is not None
        )
        self._policies: dict[int, RetryPolicy] = {}

    async def call_external(
        self,
        operation_name: str,
        call_func: Callable[..., Any],
        *args: Any,
        # A per-attempt timeout, not the caller's: part of the call shape.
        timeout: float | None = None,  # noqa: ASYNC109
        retries: int | None = None,
        validate_response: Callable[[Any], Any] | None = None,
        transform_response: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call the service through ``call_func(*args, **kwargs)``.

        *timeout* bounds each attempt (default: the client's
        *default_timeout*). *retries* is the number of retries after the
        first attempt; ``None`` keeps the client's policy. Only transient
        failures are retried (timeouts, connection errors, 5xx, 408, 429),
        never cancellation, other 4xx or a rejected response.
        *validate_response* rejects a result by returning a falsy value
        or raising, which raises :class:`~stratalog.ResponseValidationError`;
        *transform_response* maps an accepted result to what the caller
        gets. Either may be a coroutine function.

        A coroutine function is awaited on the event loop; a plain
        function runs in a worker thread (an awaitable it returns is then
        awaited), and a timeout stops the wait, not the thread. The error
        that ends the call is raised as itself; a refused call raises
        :class:`~stratalog.CircuitOpenError` without calling out.
        """
        call = Call(
            self,
            operation_name,
            call_func,
            args,
            kwargs,
            self.default_timeout if timeout is None else timeout,
            self._policy(retries),
        )
        try:
            admission = await call.admit()
        except CircuitOpenError as refused:
            self.outcomes.short_circuited(call, refused)
            raise
        log = self.logger
        log.log_boundary(operation_name, "inbound", client=self.client_name)
        async with log.operation(
            operation_name, client=self.client_name
        ) as fields:
            try:
                result = await call.run(admission)
                if validate_response is not None:
                    await self._validate(call, validate_response, result)
                if transform_response is not None:
                    result = await _resolved(transform_response(result))
            except Exception as error:
                self.outcomes.failed(call, error, fields)
                raise
            except BaseException:
                self.outcomes.cancelled(call, fields)
                raise
            self.outcomes.succeeded(call, fields)
        log.log_boundary(
            operation_name, "outbound", result, client=self.client_name
        )
        return result

    def outgoing_headers(self) -> dict[str, str]:
        """Return the headers the registered providers add to a request.

        A provider that raises is skipped and reported once a minute
        through stratalog's diagnostics.
        """
        headers: dict[str, str] = {}
        for provider in _providers:
            try:
                headers.update(provider())
            except Exception as error:
                _diagnostics.report(
                    "external.header_provider",
                    f"header provider {provider!r} raised; skipped",
                    error,
                )
        return headers

    def get_metrics(self) -> dict[str, Any]:
        """Return this client's counters, latencies and breaker state."""
        metrics = self.metrics.snapshot()
        metrics["client"] = self.client_name
        metrics["service"] = self.service_name
        breaker = self.breaker
        if breaker is not None:
            metrics["breaker"] = breaker.snapshot()
        return metrics

    async def health_check(self) -> dict[str, Any]:
        """Return ``healthy``, ``degraded`` or ``unhealthy`` with reasons.

        Reads the shared breaker state when there is one; see the class
        docstring for the thresholds.
        """
        breaker_view: dict[str, object] | None = None
        if self.breaker is not None:
            breaker_view = await self.breaker.snapshot_async()
        rate, sample = self.metrics.failure_rate()
        state = None if breaker_view is None else breaker_view["state"]
        return {
            "status": self._status(state, rate, sample),
            "client": self.client_name,
            "service": self.service_name,
            "breaker_state": state,
            "recent_failure_rate": round(rate, 4),
            "recent_calls": sample,
            "breaker": breaker_view,
        }

    def _status(self, state: object, rate: float, sample: int) -> str:
        enough = sample >= self.health_min_calls
        if state == CircuitState.OPEN or (
            enough and rate >= self.unhealthy_failure_rate
        ):
            return "unhealthy"
        if state == CircuitState.HALF_OPEN or (
            enough and rate >= self.degraded_failure_rate
        ):
            return "degraded"
        return "healthy"

    # -- steps of a call ------------------------------------------------

    def _policy(self, retries: int | None) -> RetryPolicy:
        if retries is None:
            return self.retry_policy
        policy = self._policies.get(retries)
        if policy is None:
            policy = dataclasses.replace(
                self.retry_policy, max_attempts=retries + 1
            )
            self._policies[retries] = policy
        return policy

    async def _validate(
        self, call: Call, validator: Callable[[Any], Any], result: Any
    ) -> None:
        try:
            verdict = await _resolved(validator(result))
        except Exception as error:
            raise ResponseValidationError(
                f"{self.client_name}.{call.operation}: the response "
                f"validator raised {type(error).__name__}: {error}",
                client=self.client_name,
                operation=call.operation,
            ) from error
        if not verdict:
            raise ResponseValidationError(
                f"{self.client_name}.{call.operation}: the response "
                f"validator returned {verdict!r}, so the "
                f"{type(result).__name__} response was rejected",
                client=self.client_name,
                operation=call.operation,
            )


class HTTPExternalClient(BaseExternalClient):
    """A client for one HTTP API, on ``httpx.AsyncClient``.

    Responses with status 4xx or 5xx raise ``httpx.HTTPStatusError``, so
    that 5xx, 408 and 429 are retried (after ``Retry-After`` when the
    response names one) and other 4xx are not. Each request carries the
    registered providers' headers and, inside a request context, the
    correlation id as *request_id_header* (``X-Request-ID``; ``None``
    leaves it out).

    Pass *httpx_client* to share a configured client; this class then
    leaves closing it to you. Otherwise it makes one with *http_timeout*
    and closes it in :meth:`aclose` or on leaving ``async with``. Other
    keywords (``circuit_breaker``, ``retry``, ``default_timeout``,
    ``breaker_state``) are those of :class:`BaseExternalClient`.
    """

    def __init__(
        self,
        client_name: str,
        base_url: str,
        *,
        service_name: str | None = None,
        httpx_client: httpx.AsyncClient | None = None,
        http_timeout: float | httpx.Timeout = 60.0,
        request_id_header: str | None = "X-Request-ID",
        **options: Any,
    ) -> None:
        import httpx

        super().__init__(client_name, service_name, **options)
        self.base_url = base_url.rstrip("/")
        self.request_id_header = request_id_header
        self._owns_client = httpx_client is None
        self.http: httpx.AsyncClient = httpx_client or httpx.AsyncClient(
            timeout=http_timeout
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        # A per-attempt timeout, not the caller's: part of the call shape.
        timeout: float | None = None,  # noqa: ASYNC109
        retries: int | None = None,
        validate_response: Callable[[Any], Any] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """Send one request; return its response if the status is below 400.

        *operation* names the call in lines, metrics and the request
        summary; it defaults to ``http.<method>``, since paths often hold
        ids. *timeout* and *retries* are those of
        :meth:`~BaseExternalClient.call_external`; the httpx client's own
        timeouts apply as well. Other keywords go to
        ``httpx.AsyncClient.request``.
        """
        response: httpx.Response = await self.call_external(
            operation or f"http.{method.lower()}",
            self._send,
            method.upper(),
            self._url(path),
            json,
            headers,
            kw,
            timeout=timeout,
            retries=retries,
            validate_response=validate_response,
        )
        return response

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        """Send a GET request; see :meth:`request`."""
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        """Send a POST request; see :meth:`request`."""
        return await self.request("POST", path, **kw)

    def outgoing_headers(self) -> dict[str, str]:
        """Return the providers' headers plus the request id header."""
        headers = super().outgoing_headers()
        name = self.request_id_header
        ctx = request_context.get()
        if name is not None and ctx is not None:
            headers[name] = ctx.correlation_id
        return headers

    async def aclose(self) -> None:
        """Close the httpx client if this object made it."""
        if self._owns_client:
            await self.http.aclose()

    async def __aenter__(self) -> HTTPExternalClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _url(self, path: str) -> str:
        if "://" in path:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def _send(
        self,
        method: str,
        url: str,
        json: Any,
        headers: Mapping[str, str] | None,
        kw: dict[str, Any],
    ) -> httpx.Response:
        outgoing = self.outgoing_headers()
        if headers:
            outgoing.update(headers)
        response = await self.http.request(
            method, url, json=json, headers=outgoing, **kw
        )
        if response.status_code >= 400:
            response.raise_for_status()
        return response


async def _resolved(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value

    return value
