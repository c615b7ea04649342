"""The request context: ids, bounded collections, and carrying the request."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratalog
from stratalog import context as context_module
from stratalog.context import (
    ID_FIELDS,
    ContextManager,
    RequestContext,
    bind,
    bind_context,
    get_context,
    new_correlation_id,
    request_context,
    run_in_executor,
    submit,
    to_thread,
)
from stratalog.coordinator import LoggingCoordinator
from stratalog.testing import MemorySink

coordinator = LoggingCoordinator()
log = stratalog.get_unified_logger("tests.context", "service")


def _size(key: str, value: Any) -> int:
    return context_module._attribute_size(key, value)


# -- fields -------------------------------------------------------------------


def test_new_context_has_a_uuid4_and_no_other_ids() -> None:
    """A bare context gets a UUID4 correlation id; other ids stay unset."""
    ctx = RequestContext()

    parsed = uuid.UUID(ctx.correlation_id)
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == ctx.correlation_id
    for name in ID_FIELDS[1:]:
        assert getattr(ctx, name) is None
    assert ctx.attributes == {}


def test_start_time_is_timezone_aware_utc() -> None:
    """``start_time`` is an aware UTC datetime taken at creation."""
    before = dt.datetime.now(dt.UTC)
    ctx = RequestContext()
    after = dt.datetime.now(dt.UTC)

    assert ctx.start_time.tzinfo is not None
    assert ctx.start_time.utcoffset() == dt.timedelta(0)
    assert before <= ctx.start_time <= after


def test_new_correlation_id_is_always_a_valid_uuid4() -> None:
    """Every generated id has version 4 and the RFC 4122 variant bits."""
    ids = {new_correlation_id() for _ in range(2_000)}

    assert len(ids) == 2_000
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


def test_ids_lists_only_the_ids_that_are_set() -> None:
    """``ids()`` never holds a ``None``: absent ids are absent."""
    ctx = RequestContext(correlation_id="c-1", user_id="u-1")

    assert ctx.ids() == {"correlation_id": "c-1", "user_id": "u-1"}


def test_bind_sets_ids_as_fields_and_the_rest_as_attributes() -> None:
    """Known ids become fields (as strings); other keys become attributes."""
    ctx = RequestContext(correlation_id="c-1")

    ctx.bind(user_id=42, agent_phase="triage", tenant="acme")

    assert ctx.user_id == "42"
    assert ctx.agent_phase == "triage"
    assert ctx.attributes == {"tenant": "acme"}


def test_bind_never_changes_the_correlation_id() -> None:
    """The correlation id is fixed for the request's life."""
    ctx = RequestContext(correlation_id="c-1")

    ctx.bind(correlation_id="other")

    assert ctx.correlation_id == "c-1"
    assert "correlation_id" not in ctx.attributes


def test_bind_none_clears_an_id() -> None:
    """Binding ``None`` to an id unsets it, so lines drop it."""
    ctx = RequestContext(user_id="u-1")

    ctx.bind(user_id=None)

    assert ctx.user_id is None
    assert "user_id" not in ctx.ids()


def test_module_bind_is_a_no_op_outside_a_request() -> None:
    """``stratalog.bind`` outside a request neither raises nor creates one."""
    bind(user_id="u-1", tenant="acme")

    assert get_context() is None


def test_wall_time_is_start_time_plus_monotonic_offset() -> None:
    """A perf reading maps onto the wall clock through the start time."""
    ctx = RequestContext()

    moment = ctx.wall_time(ctx.start_perf + 1.5)

    assert moment - ctx.start_time == dt.timedelta(seconds=1.5)


# -- logged operations --------------------------------------------------------


def test_mark_logged_records_presence_count_and_time() -> None:
    """A marked key is logged, counted, and stamped on perf_counter."""
    ctx = RequestContext()
    before = time.perf_counter()

    ctx.mark_logged("api.operation.x")
    ctx.mark_logged("api.operation.x")
    after = time.perf_counter()

    assert ctx.has_logged("api.operation.x")
    assert ctx.get_operation_count("api.operation.x") == 2
    last = ctx.get_last_logged_time("api.operation.x")
    assert last is not None
    assert before <= last <= after


def test_unknown_key_is_not_logged() -> None:
    """An unmarked key has no count and no time."""
    ctx = RequestContext()

    assert not ctx.has_logged("nope")
    assert ctx.get_operation_count("nope") == 0
    assert ctx.get_last_logged_time("nope") is None


def test_logged_operations_default_bound_is_ten_thousand() -> None:
    """By default at most 10,000 keys are kept; the oldest goes first."""
    ctx = RequestContext()

    for index in range(10_001):
        ctx.mark_logged(f"k{index}")

    assert len(ctx.logged_operations) == 10_000
    assert not ctx.has_logged("k0")
    assert ctx.has_logged("k1")
    assert ctx.has_logged("k10000")


def test_logged_operations_evict_least_recently_logged() -> None:
    """Re-logging a key renews it, so the least recently logged is evicted."""
    ctx = RequestContext(max_logged_operations=3)

    for key in ("a", "b", "c", "a", "d"):
        ctx.mark_logged(key)

    assert list(ctx.logged_operations) == ["c", "a", "d"]
    assert ctx.get_operation_count("a") == 2
    assert not ctx.has_logged("b")


def test_logged_operations_bound_comes_from_configuration(
    sink: MemorySink,
) -> None:
    """``max_logged_operations`` configures the bound of each new request."""
    stratalog.configure(sink=sink, format="json", max_logged_operations=5)

    ctx = coordinator.start_request()
    for index in range(8):
        ctx.mark_logged(f"k{index}")
    coordinator.end_request()

    assert list(ctx.logged_operations) == [f"k{i}" for i in range(3, 8)]


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from("abcdefgh"), max_size=60),
    bound=st.integers(min_value=1, max_value=5),
)
def test_property_logged_operations_match_an_lru_model(
    keys: list[str], bound: int
) -> None:
    """Marking keys behaves exactly like a simple LRU counter model."""
    ctx = RequestContext(max_logged_operations=bound)
    model: OrderedDict[str, int] = OrderedDict()

    for key in keys:
        ctx.mark_logged(key)
        model[key] = model.get(key, 0) + 1
        model.move_to_end(key)
        if len(model) > bound:
            model.popitem(last=False)

    assert list(ctx.logged_operations) == list(model)
    for key in "abcdefgh":
        assert ctx.has_logged(key) == (key in model)
        assert ctx.get_operation_count(key) == model.get(key, 0)


def test_note_suppressed_counts_with_first_and_last_times() -> None:
    """Suppressed lines are counted per key with first and last readings."""
    ctx = RequestContext()
    ctx.mark_logged("k")
    first_seen = ctx.get_last_logged_time("k")

    ctx.note_suppressed("k")
    ctx.note_suppressed("k")

    entry = ctx.suppressed["k"]
    assert entry.count == 2
    assert entry.first == first_seen
    assert first_seen is not None
    assert entry.last >= first_seen


def test_suppressed_total_stays_exact_past_the_key_bound() -> None:
    """Lines held back under more keys than are tracked are still counted."""
    ctx = RequestContext(max_logged_operations=2)

    for key in ("a", "b", "c", "c"):
        ctx.note_suppressed(key)

    assert ctx.suppressed_total == 4
    assert set(ctx.suppressed) == {"a", "b"}


# -- attributes ---------------------------------------------------------------


def test_attribute_size_is_counted_exactly() -> None:
    """The accounted size is the sum of each key's rendered size."""
    ctx = RequestContext()

    ctx.set_attribute("a", "x" * 10)
    ctx.set_attribute("b", {"n": [1, 2, 3]})

    expected = _size("a", "x" * 10) + _size("b", {"n": [1, 2, 3]})
    assert ctx.attributes_size == expected


def test_replacing_an_attribute_subtracts_its_old_size() -> None:
    """Setting a key again replaces its size rather than adding to it."""
    ctx = RequestContext()

    ctx.set_attribute("a", "x" * 500)
    ctx.set_attribute("a", "y")

    assert ctx.attributes == {"a": "y"}
    assert ctx.attributes_size == _size("a", "y")


def test_attributes_evict_oldest_first_to_fit_the_limit() -> None:
    """When a value does not fit, the oldest attributes make room."""
    unit = _size("k0", "x" * 90)
    ctx = RequestContext(max_attributes_size=unit * 3)

    for index in range(5):
        ctx.set_attribute(f"k{index}", "x" * 90)

    assert list(ctx.attributes) == ["k2", "k3", "k4"]
    assert ctx.attributes_size == unit * 3


def test_oversize_attribute_is_replaced_by_a_marker() -> None:
    """One value larger than the whole limit is stored as a size marker."""
    ctx = RequestContext(max_attributes_size=1_000)
    ctx.set_attribute("small", 1)

    ctx.set_attribute("huge", "z" * 5_000)

    marker = ctx.attributes["huge"]
    assert isinstance(marker, str)
    assert "z" not in marker
    assert str(_size("huge", "z" * 5_000)) in marker
    assert ctx.attributes["small"] == 1
    assert ctx.attributes_size <= 1_000


def test_attribute_never_fitting_even_as_a_marker_is_dropped() -> None:
    """Below the marker's own size, the limit still holds: the key is gone."""
    ctx = RequestContext(max_attributes_size=20)
    ctx.set_attribute("a", 1)

    ctx.set_attribute("a", "q" * 100)

    assert "a" not in ctx.attributes
    assert ctx.attributes_size == 0


def test_attribute_size_survives_unserialisable_values() -> None:
    """Values orjson refuses still get a size and are kept."""

    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    ctx = RequestContext()
    value = Opaque()

    ctx.set_attribute("o", value)

    assert ctx.attributes["o"] is value
    assert ctx.attributes_size > 0


_attribute_ops = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.integers(min_value=0, max_value=400),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops=_attribute_ops, limit=st.integers(min_value=1, max_value=1_500))
def test_property_attributes_match_the_documented_rule(
    ops: list[tuple[str, int]], limit: int
) -> None:
    """Attributes follow the documented trimming rule and stay in budget."""
    ctx = RequestContext(max_attributes_size=limit)
    model: OrderedDict[str, Any] = OrderedDict()

    for key, length in ops:
        value: Any = "v" * length
        model.pop(key, None)
        size = _size(key, value)
        if size > limit:
            value = f"<dropped: {size} bytes, attribute limit is {limit}>"
            size = _size(key, value)
        if size > limit:
            ctx.set_attribute(key, "v" * length)
            continue
        while model and sum(_size(k, v) for k, v in model.items()) + size > (
            limit
        ):
            model.popitem(last=False)
        model[key] = value
        ctx.set_attribute(key, "v" * length)

    assert list(ctx.attributes.items()) == list(model.items())
    total = sum(_size(k, v) for k, v in model.items())
    assert ctx.attributes_size == total
    assert total <= limit


# -- the context variable and ContextManager ----------------------------------


def test_context_manager_set_get_and_reset() -> None:
    """``set_context`` makes a context current; its token undoes it."""
    ctx = RequestContext()

    token = ContextManager.set_context(ctx)
    assert ContextManager.get_context() is ctx
    assert get_context() is ctx
    ContextManager.reset_context(token)

    assert ContextManager.get_context() is None


def test_context_manager_clear_then_reset_restores() -> None:
    """``clear_context`` leaves the request; resetting brings it back."""
    ctx = RequestContext()
    outer = ContextManager.set_context(ctx)

    cleared = ContextManager.clear_context()
    assert ContextManager.get_context() is None
    ContextManager.reset_context(cleared)

    assert ContextManager.get_context() is ctx
    ContextManager.reset_context(outer)


def test_context_manager_copy_and_restore_elsewhere() -> None:
    """A copied request can be restored in another thread."""
    ctx = RequestContext()
    token = ContextManager.set_context(ctx)
    copied = ContextManager.copy_context()
    ContextManager.reset_context(token)
    seen: list[RequestContext | None] = []

    def worker() -> None:
        restore = ContextManager.restore_context(copied)
        seen.append(ContextManager.get_context())
        assert restore is not None
        ContextManager.reset_context(restore)
        seen.append(ContextManager.get_context())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()

    assert seen == [ctx, None]


def test_restore_of_an_empty_copy_changes_nothing() -> None:
    """Restoring a copy without the request key leaves the variable alone."""
    ctx = RequestContext()
    token = ContextManager.set_context(ctx)

    assert ContextManager.restore_context({}) is None

    assert get_context() is ctx
    ContextManager.reset_context(token)


# -- carrying the request ----------------------------------------------------


def _current_id() -> str | None:
    ctx = request_context.get()
    return None if ctx is None else ctx.correlation_id


async def test_asyncio_task_sees_the_request() -> None:
    """Tasks copy the context, so they see the request that made them."""
    coordinator.start_request(correlation_id="task-1")

    seen = await asyncio.create_task(asyncio.sleep(0, _current_id()))
    inner = await asyncio.create_task(_async_current_id())

    coordinator.end_request()
    assert seen == "task-1"
    assert inner == "task-1"


async def _async_current_id() -> str | None:
    await asyncio.sleep(0)
    return _current_id()


async def test_run_in_executor_carries_the_request() -> None:
    """``run_in_executor`` runs the function in the request's context."""
    coordinator.start_request(correlation_id="exec-1")
    loop = asyncio.get_running_loop()

    plain = await loop.run_in_executor(None, _current_id)
    carried = await run_in_executor(None, _current_id)

    coordinator.end_request()
    assert plain is None
    assert carried == "exec-1"


def test_submit_carries_the_request() -> None:
    """``submit`` runs the function in the request's context."""
    coordinator.start_request(correlation_id="submit-1")

    with ThreadPoolExecutor(max_workers=1) as pool:
        plain = pool.submit(_current_id).result()
        carried = submit(pool, _current_id).result()

    coordinator.end_request()
    assert plain is None
    assert carried == "submit-1"


async def test_to_thread_carries_the_request() -> None:
    """``to_thread`` runs the function in the request's context."""
    coordinator.start_request(correlation_id="thread-1")

    carried = await to_thread(_current_id)

    coordinator.end_request()
    assert carried == "thread-1"


def test_bind_context_carries_the_request_into_a_thread() -> None:
    """A ``bind_context`` thread target sees the request that wrapped it."""
    coordinator.start_request(correlation_id="bound-1")
    seen: list[str | None] = []

    thread = threading.Thread(
        target=bind_context(lambda: seen.append(_current_id()))
    )
    thread.start()
    thread.join()

    coordinator.end_request()
    assert seen == ["bound-1"]


def test_bound_work_outliving_the_request_keeps_its_ids(
    sink: MemorySink,
) -> None:
    """Background work run after ``end_request`` still logs the ids."""
    coordinator.start_request(correlation_id="late-1", user_id="u-1")
    job = bind_context(lambda: log.info("job.ran"))
    coordinator.end_request()

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()

    (line,) = [r for r in sink.records() if r["event"] == "job.ran"]
    assert line["correlation_id"] == "late-1"
    assert line["user_id"] == "u-1"


async def test_task_outliving_the_request_keeps_its_ids(
    sink: MemorySink,
) -> None:
    """A task created in the request logs its ids after the request ends."""
    gate = asyncio.Event()

    async def background() -> None:
        await gate.wait()
        log.info("background.done")

    coordinator.start_request(correlation_id="bg-1")
    task = asyncio.create_task(background())
    coordinator.end_request()
    gate.set()
    await task

    (line,) = [r for r in sink.records() if r["event"] == "background.done"]
    assert line["correlation_id"] == "bg-1"
    assert get_context() is None


async def test_bind_in_a_thread_copy_reaches_the_summary(
    sink: MemorySink,
) -> None:
    """C01: ids bound in a sync thread on a context copy reach the summary."""
    coordinator.start_request(correlation_id="req-0001")

    await asyncio.to_thread(bind, user_id="u-sync", tenant="t-1")
    contextvars.copy_context().run(bind, session_id="s-async")
    log.info("item.read")
    summary = coordinator.end_request()

    (line,) = [r for r in sink.records() if r["event"] == "item.read"]
    assert line["user_id"] == "u-sync"
    assert line["session_id"] == "s-async"
    assert summary["user_id"] == "u-sync"
    assert summary["session_id"] == "s-async"
    assert summary["attributes"] == {"tenant": "t-1"}


def test_bind_in_a_plain_thread_with_bound_context_reaches_the_request() -> (
    None
):
    """A thread started with ``bind_context`` mutates the shared request."""
    ctx = coordinator.start_request()

    thread = threading.Thread(target=bind_context(bind), kwargs={"x": 1})
    thread.start()
    thread.join()

    coordinator.end_request()
    assert ctx.attributes == {"x": 1}


@pytest.mark.parametrize(
    "helper",
    [
        pytest.param("run_in_executor", id="run_in_executor"),
        pytest.param("to_thread", id="to_thread"),
    ],
)
async def test_helpers_outside_a_request_see_no_request(helper: str) -> None:
    """Carrying an empty context works and shows no request."""
    if helper == "run_in_executor":
        seen = await run_in_executor(None, _current_id)
    else:
        seen = await to_thread(_current_id)

    assert seen is None
