"""Rendering: any value becomes one safe line, the same way every time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import time
from collections import OrderedDict
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratalog import get_unified_logger
from stratalog._render import (
    Limits,
    console_renderer,
    json_renderer,
    now_iso,
    safe_repr,
    to_jsonable,
)
from stratalog.testing import MemorySink

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ESC = "\x1b"

render = json_renderer(Limits())

# Renders the line on the slow path: orjson refuses integers this wide.
FORCE_SLOW = {"force_slow_path": 10**30}


class Color(enum.Enum):
    """An enum whose members render as their value."""

    RED = "red"
    PAIR = (1, 2)


@dataclasses.dataclass
class Point:
    """A dataclass, rendered as a mapping of its fields."""

    x: int
    y: str


class Tag(str):
    """A str subclass, rendered as the plain string."""


class Count(int):
    """An int subclass, rendered as the plain number."""


class Ratio(float):
    """A float subclass, rendered as the plain number."""


class Moment(dt.datetime):
    """A datetime subclass, as test clocks (freezegun) create."""


class Evil:
    """An object whose ``repr`` and ``str`` both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("repr boom")

    def __str__(self) -> str:
        raise RuntimeError("str boom")


def _no_constants(name: str) -> Any:
    raise ValueError(f"bare {name} is not JSON")


def _parse(line: bytes) -> dict[str, Any]:
    """Parse one rendered line strictly (no NaN or Infinity tokens)."""
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert not any(byte < 0x20 for byte in line[:-1])
    parsed = json.loads(line, parse_constant=_no_constants)
    assert isinstance(parsed, dict)
    return parsed


def test_now_iso_is_rfc3339_utc_with_microseconds() -> None:
    """Timestamps read as UTC with six fraction digits and a ``Z``."""
    before = dt.datetime.now(dt.UTC)
    stamp = now_iso()
    after = dt.datetime.now(dt.UTC)

    assert RFC3339_UTC.match(stamp)
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    slack = dt.timedelta(milliseconds=1)
    assert before - slack <= moment <= after + slack


def test_now_iso_follows_a_wall_clock_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clock step shows in the next timestamp (the cache is per second)."""
    real = time.time()
    monkeypatch.setattr(time, "time", lambda: real - 3600.25)

    stamp = now_iso()

    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert moment.timestamp() == pytest.approx(real - 3600.25, abs=1e-5)


def test_safe_repr_names_the_type_when_repr_raises() -> None:
    """An object whose ``repr`` raises becomes a placeholder naming it."""
    assert safe_repr(Evil()) == "<unrepresentable Evil>"


def test_safe_repr_cuts_long_text() -> None:
    """A long ``repr`` is cut to the limit and marked with an ellipsis."""
    assert safe_repr("x" * 50, limit=10) == repr("x" * 50)[:10] + "..."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            dt.datetime(
                2024,
                2,
                29,
                23,
                59,
                59,
                tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)),
            ),
            "2024-02-29T23:59:59+05:30",
            id="aware-datetime-keeps-offset",
        ),
        pytest.param(
            dt.datetime(2024, 1, 1, 12, 0, 0, 250, tzinfo=dt.UTC),
            "2024-01-01T12:00:00.000250+00:00",
            id="utc-datetime-with-micros",
        ),
        pytest.param(dt.date(2024, 2, 29), "2024-02-29", id="date"),
        pytest.param(dt.time(8, 30), "08:30:00", id="time"),
        pytest.param(
            Moment(2024, 1, 1, tzinfo=dt.UTC),
            "2024-01-01T00:00:00+00:00",
            id="datetime-subclass",
        ),
        pytest.param(
            dt.time(8, 30, tzinfo=dt.UTC), "08:30:00+00:00", id="aware-time"
        ),
        pytest.param(Decimal("19.990"), "19.990", id="decimal-as-string"),
        pytest.param(
            UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
            id="uuid-canonical",
        ),
        pytest.param(b"\xff\x00ok", "\\xff\\x00ok", id="bytes-escaped"),
        pytest.param(bytearray(b"ab"), "ab", id="bytearray"),
        pytest.param({"b", "a", "c"}, ["a", "b", "c"], id="set-sorted"),
        pytest.param(frozenset({3, 1}), [1, 3], id="frozenset-sorted"),
        pytest.param({1, "a"}, ["a", 1], id="mixed-set-sorted-by-repr"),
        pytest.param(10**60, 10**60, id="huge-int-exact"),
        pytest.param(-(10**40), -(10**40), id="huge-negative-int"),
        pytest.param(2**64 - 1, 2**64 - 1, id="u64-max"),
        pytest.param(float("nan"), None, id="nan-null"),
        pytest.param(float("inf"), None, id="inf-null"),
        pytest.param(float("-inf"), None, id="minus-inf-null"),
        pytest.param(
            PurePosixPath("/srv/app/x"), "/srv/app/x", id="path-as-string"
        ),
        pytest.param(Color.RED, "red", id="enum-value"),
        pytest.param(Color.PAIR, [1, 2], id="enum-tuple-value"),
        pytest.param(
            ValueError("bad"),
            {"type": "ValueError", "message": "bad"},
            id="exception-type-and-message",
        ),
        pytest.param(Point(1, "a"), {"x": 1, "y": "a"}, id="dataclass"),
        pytest.param(Tag("plain"), "plain", id="str-subclass"),
        pytest.param(Count(7), 7, id="int-subclass"),
        pytest.param(Ratio(1.5), 1.5, id="float-subclass"),
        pytest.param(
            OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}, id="ordered"
        ),
        pytest.param((1, "two"), [1, "two"], id="tuple-as-list"),
        pytest.param(
            {UUID(int=1): "x"},
            {"00000000-0000-0000-0000-000000000001": "x"},
            id="uuid-key",
        ),
        pytest.param({(1, 2): "y"}, {"(1, 2)": "y"}, id="tuple-key"),
        pytest.param(
            {2: "a", None: "b", True: "c"},
            {"2": "a", "null": "b", "true": "c"},
            id="scalar-keys",
        ),
        pytest.param(
            {1.5: "a", float("inf"): "b", 1e20: "c"},
            {"1.5": "a", "null": "b", "1e+20": "c"},
            id="float-keys",
        ),
        pytest.param({Color.RED: 1}, {"red": 1}, id="enum-key"),
        pytest.param(
            dt.time(0, 0, 0, 10_000), "00:00:00.010000", id="time-micros"
        ),
        pytest.param(Evil(), "<unrepresentable Evil>", id="repr-raises"),
        pytest.param("\x1b[2J\r\n\x00", "\x1b[2J\r\n\x00", id="controls"),
        pytest.param("a\ud800b", "a\\ud800b", id="lone-surrogate"),
    ],
)
@pytest.mark.parametrize(
    "extra",
    [pytest.param({}, id="fast-path"), pytest.param(FORCE_SLOW, id="slow")],
)
def test_value_renders_the_same_on_both_paths(
    value: Any, expected: Any, extra: dict[str, Any]
) -> None:
    """Each odd value has one documented form, whichever path renders it."""
    line = render({"event": "odd", "value": value, **extra})

    assert _parse(line)["value"] == expected


def test_huge_integer_beyond_the_digit_limit_keeps_the_line() -> None:
    """An integer too long for ``str()`` becomes a marker; the line stays."""
    parsed = _parse(render({"event": "big", "n": 10**5000, "kept": 1}))

    assert parsed["kept"] == 1
    assert parsed["event"] == "big"
    assert isinstance(parsed["n"], str)
    assert parsed["truncated"] is True


def test_surrogates_in_keys_and_event_keep_the_line() -> None:
    """Text that is not valid UTF-8 is escaped, never loses the line."""
    parsed = _parse(render({"event": "ev\udcff", "k\ud800": "v", "kept": 1}))

    assert parsed["kept"] == 1
    assert parsed["event"] == "ev\\udcff"
    assert parsed["k\\ud800"] == "v"


def test_c14_non_json_native_values(sink: MemorySink) -> None:
    """C14: one call with odd values writes one valid line with each field."""
    log = get_unified_logger("tests.render", "api")

    log.info(
        "odd.types",
        when=dt.datetime(
            2024,
            2,
            29,
            23,
            59,
            59,
            tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)),
        ),
        day=dt.date(2024, 2, 29),
        price=Decimal("19.990"),
        nan=float("nan"),
        inf=float("inf"),
        uid=UUID("12345678-1234-5678-1234-567812345678"),
        raw=b"\xff\x00ok",
        tags={"b", "a"},
        frozen=frozenset({1}),
        by_uuid={UUID(int=1): "x"},
        by_tuple={(1, 2): "y"},
        big=10**60,
        path=PurePosixPath("/srv/app/x"),
        color=Color.RED,
        err=ValueError("bad"),
        nested={"deep": [[[{"k": b"v"}]]]},
    )
    log.info("after")

    first, second = [_parse(line) for line in sink.lines]
    assert first["when"] == "2024-02-29T23:59:59+05:30"
    assert first["day"] == "2024-02-29"
    assert first["price"] == "19.990"
    assert first["nan"] is None
    assert first["inf"] is None
    assert first["uid"] == "12345678-1234-5678-1234-567812345678"
    assert first["raw"] == "\\xff\\x00ok"
    assert first["tags"] == ["a", "b"]
    assert first["frozen"] == [1]
    assert first["by_uuid"] == {"00000000-0000-0000-0000-000000000001": "x"}
    assert first["by_tuple"] == {"(1, 2)": "y"}
    assert first["big"] == 10**60
    assert first["path"] == "/srv/app/x"
    assert first["color"] == "red"
    assert first["err"] == {"type": "ValueError", "message": "bad"}
    assert first["nested"] == {"deep": [[[{"k": "v"}]]]}
    assert second["event"] == "after"


def _hostile() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    items: list[Any] = [1]
    items.append(items)
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(10_000):
        cur["n"] = {}
        cur = cur["n"]
    return {"d": loop, "lst": items, "evil": Evil(), "deep": deep}


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, dict) and "n" in value:
        value = value["n"]
        depth += 1
    return depth


def test_c15_hostile_values_json(sink: MemorySink) -> None:
    """C15: cycles, raising reprs and deep or huge values give safe lines."""
    log = get_unified_logger("tests.render", "api")

    log.warning("hostile", **_hostile())
    started = time.perf_counter()
    log.info("big", body="x" * 10_000_000)
    elapsed = time.perf_counter() - started

    hostile, big = [_parse(line) for line in sink.lines]
    assert hostile["d"] == {"name": "loop", "self": "<circular>"}
    assert hostile["lst"] == [1, "<circular>"]
    assert hostile["evil"] == "<unrepresentable Evil>"
    assert 0 < _depth(hostile["deep"]) <= Limits().max_depth
    assert "<max depth>" in json.dumps(hostile["deep"])
    assert big["truncated"] is True
    assert len(big["body"]) < 20_000
    assert big["body"].startswith("x" * 1000)
    assert len(sink.lines[1]) <= Limits().max_line_bytes
    assert elapsed < 3.0


def test_c15_hostile_values_console() -> None:
    """C15: the console renderer survives the same values, one entry each."""
    console = console_renderer(Limits(), colors=False)
    event = {"timestamp": now_iso(), "level": "warning", "event": "hostile"}

    text = console({**event, **_hostile()}).decode()
    big = console({**event, "event": "big", "body": "x" * 10_000_000})

    assert text.endswith("\n")
    assert "<circular>" in text
    assert "<unrepresentable Evil>" in text
    assert "<max depth>" in text
    assert len(big) < 100_000


def test_c15_console_escapes_control_characters() -> None:
    """C15/C05: no raw ESC, NUL or CR from user data reaches a terminal."""
    console = console_renderer(Limits(), colors=False)
    hostile = "\x1b[2J\x1b[31mFAKE\x1b[0m\r\x00\x9b"

    text = console(
        {
            "timestamp": now_iso(),
            "level": "info",
            "event": hostile,
            "value": hostile,
            "nested": {"k": [hostile]},
            hostile: "key",
        }
    ).decode()

    body = text[:-1]
    assert ESC not in body
    assert "\r" not in body
    assert "\x00" not in body
    assert "\x9b" not in body
    assert "\n" not in body


def test_slow_path_cuts_many_items_and_wide_lines() -> None:
    """Very large values are cut with markers to fit the line limit."""
    limits = Limits(max_line_bytes=10_000)
    wide = json_renderer(limits)

    many = _parse(wide({"event": "many", "items": list(range(100_000))}))
    fat = _parse(wide({"event": "fat", "rows": ["y" * 5_000] * 200}))

    assert many["truncated"] is True
    assert many["items"][-1] == "<99000 more items>"
    assert fat["truncated"] is True
    assert len(wide({"event": "fat", "rows": ["y" * 5_000] * 200})) < 20_000


def test_to_jsonable_marks_cycles_without_recursing() -> None:
    """``to_jsonable`` returns a structure orjson accepts for any value."""
    loop: dict[str, Any] = {}
    loop["me"] = loop

    assert to_jsonable(loop) == {"me": "<circular>"}


def test_shared_but_acyclic_values_are_not_cycles() -> None:
    """The same object twice, side by side, is rendered twice."""
    shared = {"k": 1}

    parsed = _parse(
        render({"event": "x", "a": [shared, shared], **FORCE_SLOW})
    )

    assert parsed["a"] == [{"k": 1}, {"k": 1}]


# -- property: every value renders to one valid line --------------------------

_timezones = st.one_of(
    st.none(),
    st.just(dt.UTC),
    st.builds(
        dt.timezone,
        st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timedelta(minutes=m)),
    ),
)

_text = st.one_of(
    st.text(max_size=30),
    st.text(
        st.characters(min_codepoint=0, max_codepoint=0x20)
        | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        max_size=10,
    ),
)

_hashable = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=10**40),
    st.floats(),
    _text,
    st.uuids(),
    st.dates(),
    st.tuples(st.integers(), st.text(max_size=5)),
    st.sampled_from(Color),
    st.builds(Tag, st.text(max_size=5)),
    st.builds(Count, st.integers(-1000, 1000)),
)

_odd = st.one_of(
    _hashable,
    st.binary(max_size=20),
    st.decimals(),
    st.datetimes(timezones=_timezones),
    st.times(),
    st.builds(PurePosixPath, st.text(max_size=10)),
    st.builds(ValueError, st.text(max_size=10)),
    st.builds(Point, st.integers(), st.text(max_size=5)),
    st.builds(Ratio, st.floats()),
    st.builds(Evil),
    st.frozensets(st.integers(), max_size=4),
    st.sets(st.text(max_size=4), max_size=4),
)

_values = st.recursive(
    _odd,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_hashable, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(st.text(max_size=10), _values, max_size=5))
def test_property_any_value_renders_one_valid_line(
    fields: dict[str, Any],
) -> None:
    """Any nested value gives one valid JSON line, identical when repeated."""
    event = {"event": "prop", **fields}

    line = render(event)

    parsed = _parse(line)
    assert "render_error" not in parsed
    assert len(parsed) == len(event)
    assert render(event) == line


@settings(max_examples=300, deadline=None)
@given(value=_values)
def test_property_fast_and_slow_paths_agree(value: Any) -> None:
    """A value renders alike whether or not the line takes the slow path."""
    fast = _parse(render({"event": "p", "v": value}))
    slow = _parse(render({"event": "p", "v": value, **FORCE_SLOW}))

    assert fast["v"] == slow["v"]
