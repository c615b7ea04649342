"""Tests for stratalog.breaker: states, probes, concurrency, shared state."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from stratalog import _diagnostics
from stratalog.breaker import (
    Admission,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    RedisBreakerState,
)
from stratalog.exceptions import CircuitOpenError, ConfigurationError

CLOSED, OPEN, HALF_OPEN = (
    CircuitState.CLOSED,
    CircuitState.OPEN,
    CircuitState.HALF_OPEN,
)

Transition = tuple[CircuitState, CircuitState, dict[str, object]]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    """A failure that counts against the service."""


class Excluded(Exception):
    """A failure the breaker is configured to ignore."""


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock, so that recovery timeouts pass instantly."""
    return FakeClock()


@pytest.fixture
def transitions() -> list[Transition]:
    """Where the breakers under test report their transitions."""
    return []


def make_breaker(
    clock: FakeClock,
    transitions: list[Transition],
    **config: object,
) -> CircuitBreaker:
    settings_ = {"failure_threshold": 3, "recovery_timeout": 30.0, **config}
    return CircuitBreaker(
        "llm",
        CircuitBreakerConfig(**settings_),  # type: ignore[arg-type]
        on_transition=lambda old, new, info: transitions.append(
            (old, new, info)
        ),
        clock=clock,
    )


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom), breaker.attempt():
            raise Boom


def trip(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.config.failure_threshold)
    assert breaker.state is OPEN


def states(transitions: list[Transition]) -> list[tuple[str, str]]:
    return [(old.value, new.value) for old, new, _ in transitions]


# C20: a breaker trip must not hide the real error.


async def test_trip_surfaces_the_real_error_then_short_circuits(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """Calls 1-3 raise ReadTimeout; call 4 is refused without a request."""
    breaker = make_breaker(clock, transitions)
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        raise httpx.ReadTimeout("read timed out", request=request)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout):
                async with breaker.attempt("chat"):
                    await client.get("http://llm.test/v1/chat")
        with pytest.raises(CircuitOpenError) as refused:
            async with breaker.attempt("chat"):
                await client.get("http://llm.test/v1/chat")

    assert requests == 3
    assert breaker.failure_count == 3
    error = refused.value
    assert error.attempted is False
    assert (error.client, error.operation) == ("llm", "chat")
    assert (error.state, error.next_probe_in) == ("open", 30.0)
    assert states(transitions) == [("closed", "open")]
    assert transitions[0][2] == {
        "client": "llm",
        "failures": 3,
        "reason": "failure_threshold_reached",
        "shared": False,
    }


def test_full_cycle_closes_after_a_successful_probe(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """Open, half-open after the recovery timeout, closed on success."""
    breaker = make_breaker(clock, transitions)
    trip(breaker)
    clock.advance(29.9)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.acquire()
    assert refused.value.next_probe_in == pytest.approx(0.1)

    clock.advance(0.1)
    with breaker.attempt() as admission:
        assert admission.probe
        assert breaker.state is HALF_OPEN

    assert breaker.state is CLOSED
    assert breaker.failure_count == 0
    assert states(transitions) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert [info["reason"] for _, _, info in transitions] == [
        "failure_threshold_reached",
        "recovery_timeout_elapsed",
        "probe_succeeded",
    ]


def test_half_open_admits_exactly_max_probes(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """Only half_open_max_calls probes run; the rest fail fast."""
    breaker = make_breaker(clock, transitions, half_open_max_calls=2)
    trip(breaker)
    clock.advance(30)

    probes = [breaker.acquire(), breaker.acquire()]
    with pytest.raises(CircuitOpenError) as refused:
        breaker.acquire()

    assert all(probe.probe for probe in probes)
    assert refused.value.state == "half_open"
    assert breaker.snapshot()["probes_in_flight"] == 2


def test_failed_probe_reopens_for_a_full_recovery_timeout(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """A probe that fails opens the breaker again, counting from then."""
    breaker = make_breaker(clock, transitions)
    trip(breaker)
    clock.advance(30)
    fail(breaker)

    assert breaker.state is OPEN
    assert transitions[-1][2]["reason"] == "probe_failed"
    with pytest.raises(CircuitOpenError) as refused:
        breaker.acquire()
    assert refused.value.next_probe_in == 30.0


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(asyncio.CancelledError(), id="cancelled"),
        pytest.param(Excluded(), id="excluded"),
        pytest.param(KeyboardInterrupt(), id="keyboard-interrupt"),
    ],
)
def test_probe_without_verdict_reopens_and_frees_its_slot(
    clock: FakeClock,
    transitions: list[Transition],
    error: BaseException,
) -> None:
    """A cancelled or excluded probe reopens; the next probe still runs."""
    breaker = make_breaker(clock, transitions, excluded_exceptions=(Excluded,))
    trip(breaker)
    clock.advance(30)

    with pytest.raises(type(error)), breaker.attempt():
        raise error

    assert breaker.state is OPEN
    assert transitions[-1][2]["reason"] == "probe_abandoned"
    assert breaker.snapshot()["probes_in_flight"] == 0
    clock.advance(30)
    assert breaker.acquire().probe


async def test_cancelled_async_probe_reopens(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """A probe cancelled by asyncio.wait_for never wedges half-open."""
    breaker = make_breaker(clock, transitions)
    trip(breaker)
    clock.advance(30)

    async def probe() -> None:
        async with breaker.attempt():
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(probe(), 0.05)

    assert breaker.state is OPEN
    assert breaker.snapshot()["probes_in_flight"] == 0


def test_neutral_errors_neither_count_nor_reset(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """Excluded errors and 4xx leave a closed breaker's count alone."""
    breaker = make_breaker(clock, transitions, excluded_exceptions=(Excluded,))
    fail(breaker, 2)
    request = httpx.Request("GET", "http://llm.test/")
    not_found = httpx.HTTPStatusError(
        "404", request=request, response=httpx.Response(404)
    )

    for error in (Excluded(), not_found, asyncio.CancelledError()):
        admission = breaker.acquire()
        breaker.record_failure(admission, error)

    assert breaker.failure_count == 2
    assert breaker.state is CLOSED


@pytest.mark.parametrize(
    "status", [pytest.param(s, id=str(s)) for s in (408, 429, 500, 503)]
)
def test_server_and_throttling_statuses_count(
    clock: FakeClock, transitions: list[Transition], status: int
) -> None:
    """5xx, 408 and 429 count as failures."""
    breaker = make_breaker(clock, transitions)
    request = httpx.Request("GET", "http://llm.test/")
    error = httpx.HTTPStatusError(
        str(status), request=request, response=httpx.Response(status)
    )

    breaker.record_failure(breaker.acquire(), error)

    assert breaker.failure_count == 1


def test_success_resets_consecutive_failures(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """Only consecutive failures trip the breaker."""
    breaker = make_breaker(clock, transitions)
    fail(breaker, 2)
    breaker.record_success(breaker.acquire())
    fail(breaker, 2)

    assert breaker.state is CLOSED
    assert breaker.failure_count == 2


def test_late_outcome_of_an_earlier_period_moves_nothing(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """A call admitted before the trip cannot close or reopen it later."""
    breaker = make_breaker(clock, transitions)
    slow_success = breaker.acquire()
    slow_failure = breaker.acquire()
    trip(breaker)

    breaker.record_success(slow_success)
    breaker.record_failure(slow_failure, Boom())

    assert breaker.state is OPEN
    assert breaker.failure_count == 3
    assert len(transitions) == 1


def test_lost_probe_lease_expires(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """A probe never settled frees its slot when its lease runs out."""
    breaker = make_breaker(clock, transitions, probe_lease=10.0)
    trip(breaker)
    clock.advance(30)
    lost = breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()

    clock.advance(10)
    replacement = breaker.acquire()
    breaker.record_success(lost)

    assert replacement.probe
    assert breaker.state is HALF_OPEN
    breaker.record_success(replacement)
    assert breaker.state is CLOSED


def test_settling_twice_counts_once(
    clock: FakeClock, transitions: list[Transition]
) -> None:
    """A second verdict on one admission is ignored."""
    breaker = make_breaker(clock, transitions)
    admission = breaker.acquire()

    breaker.record_failure(admission, Boom())
    breaker.record_failure(admission, Boom())
    breaker.record_success(admission)

    assert breaker.failure_count == 1


def test_raising_callback_is_reported_and_harmless(
    clock: FakeClock,
) -> None:
    """A failing on_transition is reported; the breaker still trips."""

    def callback(
        old: CircuitState, new: CircuitState, info: dict[str, object]
    ) -> None:
        raise RuntimeError("logging is down")

    breaker = CircuitBreaker(
        "llm",
        CircuitBreakerConfig(failure_threshold=1),
        on_transition=callback,
        clock=clock,
    )

    with pytest.raises(Boom), breaker.attempt():
        raise Boom

    assert breaker.state is OPEN
    assert _diagnostics.counts() == {"breaker.on_transition_failed": 1}


def test_callback_may_read_the_breaker(clock: FakeClock) -> None:
    """on_transition runs outside the lock, so it can take a snapshot."""
    seen: list[dict[str, object]] = []
    breaker = CircuitBreaker(
        "llm",
        CircuitBreakerConfig(failure_threshold=1),
        on_transition=lambda *_: seen.append(breaker.snapshot()),
        clock=clock,
    )

    fail(breaker)

    assert seen[0]["state"] == "open"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("failure_threshold", 0, id="threshold-zero"),
        pytest.param("failure_threshold", True, id="threshold-bool"),
        pytest.param("recovery_timeout", -1.0, id="recovery-negative"),
        pytest.param("recovery_timeout", float("nan"), id="recovery-nan"),
        pytest.param("half_open_max_calls", 0, id="probes-zero"),
        pytest.param("excluded_exceptions", (int,), id="excluded-not-error"),
        pytest.param("excluded_exceptions", [Boom], id="excluded-list"),
        pytest.param("probe_lease", 0, id="lease-zero"),
    ],
)
def test_config_rejects_nonsense(field: str, value: object) -> None:
    """A bad setting raises ConfigurationError naming field and value."""
    with pytest.raises(ConfigurationError) as raised:
        CircuitBreakerConfig(**{field: value})  # type: ignore[arg-type]

    assert isinstance(raised.value, ValueError)
    assert f"CircuitBreakerConfig.{field}={value!r}" in str(raised.value)


# Properties under arbitrary interleavings.

# Weighted towards admissions and failures, so that short sequences already
# trip the breaker and cycle through half-open with several calls in flight.
STEPS = st.tuples(
    st.sampled_from(["acquire", "acquire", "settle", "settle", "advance"]),
    st.integers(0, 7),
    st.sampled_from([0.0, 5.0, 10.0, 20.0, 30.0]),
    st.sampled_from(["success", "failure", "failure", "cancel", "excluded"]),
)


@settings(max_examples=1000, deadline=None)
@given(steps=st.lists(STEPS, max_size=60))
def test_probes_are_bounded_and_never_leak(
    steps: list[tuple[str, int, float, str]],
) -> None:
    """Probes never exceed the limit, and a free slot is always usable.

    Holds under any sequence of admissions, verdicts (success, failure,
    cancellation, excluded error) and clock advances, with several calls
    in flight at once.
    """
    clock = FakeClock()
    lease, limit = 25.0, 2
    breaker = CircuitBreaker(
        "llm",
        CircuitBreakerConfig(
            failure_threshold=1,
            recovery_timeout=10.0,
            half_open_max_calls=limit,
            excluded_exceptions=(Excluded,),
            probe_lease=lease,
        ),
        clock=clock,
    )
    in_flight: list[tuple[Admission, float]] = []

    def live_probes() -> int:
        return sum(
            1 for a, t in in_flight if a.probe and clock.now < t + lease
        )

    for action, index, seconds, outcome in steps:
        if action == "acquire":
            _acquire_step(breaker, clock, in_flight, live_probes(), limit)
        elif action == "settle" and in_flight:
            admission, _ = in_flight.pop(index % len(in_flight))
            _settle(breaker, admission, outcome)
        elif action == "advance":
            clock.advance(seconds)
        assert breaker.snapshot()["probes_in_flight"] == live_probes()
        assert live_probes() <= limit


def _acquire_step(
    breaker: CircuitBreaker,
    clock: FakeClock,
    in_flight: list[tuple[Admission, float]],
    live: int,
    limit: int,
) -> None:
    snapshot = breaker.snapshot()
    probe_due = snapshot["state"] == "half_open" or (
        snapshot["state"] == "open" and snapshot["next_probe_in"] == 0
    )
    try:
        admission = breaker.acquire()
    except CircuitOpenError:
        assert snapshot["state"] != "closed"
        assert not (probe_due and live < limit), "a free slot was refused"
        return
    in_flight.append((admission, clock.now))


def _settle(breaker: CircuitBreaker, admission: Admission, how: str) -> None:
    if how == "success":
        breaker.record_success(admission)
    elif how == "failure":
        breaker.record_failure(admission, Boom())
    elif how == "excluded":
        breaker.record_failure(admission, Excluded())
    else:
        breaker.release(admission)


# Concurrency.


def test_threads_keep_counts_consistent() -> None:
    """Eight threads failing at once lose no failure and trip it once."""
    transitions: list[Transition] = []
    breaker = CircuitBreaker(
        "llm",
        CircuitBreakerConfig(failure_threshold=8 * 500),
        on_transition=lambda *t: transitions.append(t),
    )
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for _ in range(500):
            breaker.record_failure(breaker.acquire(), Boom())

    run_threads(hammer, 8)

    assert breaker.failure_count == 8 * 500
    assert states(transitions) == [("closed", "open")]


def test_threads_never_exceed_the_probe_limit() -> None:
    """Concurrent probes stay within half_open_max_calls across threads."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "llm",
        CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=0.0, half_open_max_calls=2
        ),
        clock=clock,
    )
    lock = threading.Lock()
    running = peak = 0

    def probe() -> None:
        nonlocal running, peak
        for _ in range(300):
            try:
                admission = breaker.acquire()
            except CircuitOpenError:
                continue
            if admission.probe:
                with lock:
                    running += 1
                    peak = max(peak, running)
                time.sleep(0)
                with lock:
                    running -= 1
            breaker.record_failure(admission, Boom())

    breaker.record_failure(breaker.acquire(), Boom())
    run_threads(probe, 8)

    assert 1 <= peak <= 2
    assert breaker.snapshot()["probes_in_flight"] == 0


def run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)


async def test_concurrent_tasks_share_one_probe(clock: FakeClock) -> None:
    """Of twenty tasks arriving half-open, one probes; the rest fail fast."""
    breaker = CircuitBreaker(
        "llm", CircuitBreakerConfig(failure_threshold=1), clock=clock
    )
    fail(breaker)
    clock.advance(60)
    reached = 0

    async def call() -> None:
        nonlocal reached
        async with breaker.attempt():
            reached += 1
            await asyncio.sleep(0.01)

    results = await asyncio.gather(
        *(call() for _ in range(20)), return_exceptions=True
    )

    assert reached == 1
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(refused) == 19
    assert breaker.state is CLOSED


# Shared state in a real Redis.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_redis(port: int) -> Iterator[None]:
    """Run a throwaway redis-server on *port* until the block ends."""
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_ping(port)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    """The port of a redis-server shared by this module's tests."""
    port = free_port()
    with running_redis(port):
        yield port


def wait_for_ping(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} never answered")


@pytest.fixture
async def redis_clients(
    redis_port: int,
) -> AsyncIterator[list[redis.asyncio.Redis]]:
    """Two connections to an emptied server, as two processes would hold."""
    clients = [
        redis.asyncio.Redis(host="127.0.0.1", port=redis_port)
        for _ in range(2)
    ]
    await clients[0].flushall()
    yield clients
    for client in clients:
        await client.aclose()


def shared_breakers(
    clients: list[redis.asyncio.Redis],
    transitions: list[Transition],
    **config: object,
) -> list[CircuitBreaker]:
    settings_ = {
        "failure_threshold": 3,
        "recovery_timeout": 0.3,
        **config,
    }
    return [
        CircuitBreaker(
            "llm",
            CircuitBreakerConfig(**settings_),  # type: ignore[arg-type]
            on_transition=lambda *t: transitions.append(t),
            state_store=RedisBreakerState(client, "test:breaker"),
        )
        for client in clients
    ]


async def fail_async(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        async with breaker.attempt():
            raise Boom


async def test_processes_share_failures_and_the_open_state(
    redis_clients: list[redis.asyncio.Redis],
    transitions: list[Transition],
) -> None:
    """Failures in two processes add up; both then refuse; one announces."""
    first, second = shared_breakers(redis_clients, transitions)

    await fail_async(first)
    await fail_async(second)
    await fail_async(first)

    for breaker in (first, second):
        with pytest.raises(CircuitOpenError) as refused:
            await breaker.acquire_async()
        assert refused.value.next_probe_in > 0
    assert states(transitions) == [("closed", "open")]
    assert transitions[0][2]["shared"] is True
    assert transitions[0][2]["failures"] == 3
    snapshot = await second.snapshot_async()
    assert (snapshot["state"], snapshot["failures"]) == ("open", 3)
    assert second.failure_count == 0


async def test_processes_share_one_probe_then_close(
    redis_clients: list[redis.asyncio.Redis],
    transitions: list[Transition],
) -> None:
    """After recovery exactly one process probes; its success closes both."""
    first, second = shared_breakers(
        redis_clients, transitions, failure_threshold=1
    )
    await fail_async(first)
    await asyncio.sleep(0.35)

    probe = await first.acquire_async()
    with pytest.raises(CircuitOpenError) as refused:
        await second.acquire_async()
    await first.record_success_async(probe)

    assert probe.probe
    assert probe.shared
    assert refused.value.state == "half_open"
    assert not (await second.acquire_async()).probe
    assert states(transitions) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_concurrent_processes_get_one_probe(
    redis_clients: list[redis.asyncio.Redis],
    transitions: list[Transition],
) -> None:
    """Twenty admissions racing from two processes yield one probe."""
    first, second = shared_breakers(
        redis_clients, transitions, failure_threshold=1
    )
    await fail_async(first)
    await asyncio.sleep(0.35)

    results = await asyncio.gather(
        *(b.acquire_async() for b in (first, second) * 10),
        return_exceptions=True,
    )

    admitted = [r for r in results if isinstance(r, Admission)]
    assert len(admitted) == 1
    assert admitted[0].probe
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(refused) == 19
    assert states(transitions).count(("open", "half_open")) == 1


async def test_crashed_probe_cannot_wedge_other_processes(
    redis_clients: list[redis.asyncio.Redis],
    transitions: list[Transition],
) -> None:
    """A probe whose process died frees its slot when its lease ends."""
    first, second = shared_breakers(
        redis_clients, transitions, failure_threshold=1, probe_lease=0.3
    )
    await fail_async(first)
    await asyncio.sleep(0.35)
    await first.acquire_async()  # this process "crashes" here

    with pytest.raises(CircuitOpenError):
        await second.acquire_async()
    await asyncio.sleep(0.35)
    probe = await second.acquire_async()
    await second.release_async(probe)

    assert probe.probe
    snapshot = await second.snapshot_async()
    assert (snapshot["state"], snapshot["probes_in_flight"]) == ("open", 0)


async def test_cancelled_shared_probe_reopens(
    redis_clients: list[redis.asyncio.Redis],
    transitions: list[Transition],
) -> None:
    """Cancelling a shared probe reopens the shared breaker at once."""
    first, _ = shared_breakers(redis_clients, transitions, failure_threshold=1)
    await fail_async(first)
    await asyncio.sleep(0.35)

    async def probe() -> None:
        async with first.attempt():
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(probe(), 0.1)

    snapshot = await first.snapshot_async()
    assert (snapshot["state"], snapshot["probes_in_flight"]) == ("open", 0)
    assert transitions[-1][2]["reason"] == "probe_abandoned"


async def test_refused_port_falls_back_to_local_state(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With Redis refusing connections, calls go on and it is said once."""
    client = redis.asyncio.Redis(host="127.0.0.1", port=free_port())
    store = RedisBreakerState(client, timeout=0.5)
    breaker = CircuitBreaker(
        "llm", CircuitBreakerConfig(failure_threshold=2), state_store=store
    )

    for _ in range(2):
        with pytest.raises(Boom):
            async with breaker.attempt():
                raise Boom
    with pytest.raises(CircuitOpenError):
        await breaker.acquire_async()
    await client.aclose()

    assert breaker.state is OPEN
    assert not store.available
    assert _diagnostics.counts() == {"breaker.state_store_unavailable": 1}
    assert capfd.readouterr().err.count("breaker.state_store_unavailable") == 1


async def test_shared_state_resumes_when_redis_returns() -> None:
    """After retry_interval the store is asked again, and used once up."""
    port = free_port()
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    store = RedisBreakerState(client, timeout=0.5, retry_interval=0.2)
    breaker = CircuitBreaker("llm", state_store=store)

    before = await breaker.acquire_async()
    with running_redis(port):
        await asyncio.sleep(0.25)
        after = await breaker.acquire_async()
        await breaker.record_success_async(after)
        await client.aclose()

    assert not before.shared
    assert after.shared
    assert store.available


async def test_silent_redis_costs_at_most_the_timeout() -> None:
    """A Redis that accepts but never answers delays a call by <= timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = redis.asyncio.Redis(host="127.0.0.1", port=port)
        store = RedisBreakerState(client, timeout=0.1)
        breaker = CircuitBreaker("llm", state_store=store)

        started = time.monotonic()
        admission = await breaker.acquire_async()
        elapsed = time.monotonic() - started
        await breaker.record_success_async(admission)
        await client.aclose()

    assert not admission.shared
    assert elapsed < 1.0
