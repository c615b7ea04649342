"""Redaction: secrets never reach a line, and nothing else is touched."""

from __future__ import annotations

import time
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratalog
from stratalog._render import Limits, json_renderer
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.processors import Redactor
from stratalog.testing import MemorySink

MARKER = "[REDACTED]"
SECRET = "s3cr3t-Value-9f8e7d6c5b4a"

coordinator = LoggingCoordinator()
log = stratalog.get_unified_logger("tests.processors", "infrastructure")


def _one_line(sink: MemorySink) -> dict[str, Any]:
    (line,) = sink.records()
    return line


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("authorization", id="authorization"),
        pytest.param("Authorization", id="capitalised"),
        pytest.param("proxy-authorization", id="dashed"),
        pytest.param("cookie", id="cookie"),
        pytest.param("set_cookie", id="set-cookie"),
        pytest.param("password", id="password"),
        pytest.param("db_password", id="suffixed-password"),
        pytest.param("secret", id="secret"),
        pytest.param("client_secret", id="client-secret"),
        pytest.param("token", id="token"),
        pytest.param("refresh_token", id="refresh-token"),
        pytest.param("X-Auth-Token", id="header-token"),
        pytest.param("api_key", id="api-key"),
        pytest.param("x-api-key", id="x-api-key"),
        pytest.param("stripe_api_key", id="suffixed-api-key"),
        pytest.param("private_key", id="private-key"),
    ],
)
def test_sensitive_keys_are_redacted_by_default(
    key: str, sink: MemorySink
) -> None:
    """Values under sensitive keys are replaced, and never echoed."""
    log.info("call", **{key: SECRET})

    line = _one_line(sink)
    assert line[key] == MARKER
    assert SECRET not in sink.text()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("max_tokens", id="max-tokens"),
        pytest.param("prompt_tokens", id="prompt-tokens"),
        pytest.param("completion_tokens", id="completion-tokens"),
        pytest.param("token_count", id="token-count"),
        pytest.param("keyboard", id="keyboard"),
        pytest.param("secretary", id="secretary"),
    ],
)
def test_look_alike_keys_are_kept(key: str, sink: MemorySink) -> None:
    """Counts and names that merely contain a word are left alone."""
    log.info("llm.call", **{key: 512})

    assert _one_line(sink)[key] == 512


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("Bearer abcdefghijklmnop123456", id="bearer"),
        pytest.param("bearer   abc.def-ghi_jkl~mno", id="bearer-lower"),
        pytest.param("Basic dXNlcjpwYXNzd29yZA==", id="basic-auth"),
        pytest.param(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.abcdefghijklm",
            id="jwt",
        ),
        pytest.param("sk-" + "a1B2" * 8, id="openai-key"),
        pytest.param("AKIAIOSFODNN7EXAMPLE", id="aws-key"),
        pytest.param("ghp_" + "x" * 36, id="github-token"),
        pytest.param("xoxb-1234567890-abcdef", id="slack-token"),
        pytest.param("api_key=abcdef123456", id="query-api-key"),
        pytest.param("password=hunter2hunter2", id="query-password"),
    ],
)
def test_secrets_inside_values_are_replaced(
    secret: str, sink: MemorySink
) -> None:
    """Secret-looking substrings are cut out of free text."""
    log.info("request.sent", note=f"calling upstream with {secret} now")

    line = _one_line(sink)
    assert line["note"].startswith("calling upstream with ")
    assert MARKER in line["note"]
    assert secret not in sink.text()


def test_nested_values_are_searched(sink: MemorySink) -> None:
    """Mappings and sequences inside fields are redacted too."""
    log.info(
        "call",
        request={
            "headers": {"Authorization": SECRET, "Accept": "json"},
            "params": [{"token": SECRET}, ("api_key", 1)],
            "notes": ("Bearer abcdefghijklmnop1234",),
        },
    )

    request = _one_line(sink)["request"]
    assert request["headers"] == {"Authorization": MARKER, "Accept": "json"}
    assert request["params"] == [{"token": MARKER}, ["api_key", 1]]
    assert request["notes"] == [MARKER]
    assert SECRET not in sink.text()


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(OrderedDict, id="ordered-dict"),
        pytest.param(MappingProxyType, id="mapping-proxy"),
        pytest.param(lambda d: [d], id="list"),
        pytest.param(lambda d: (d,), id="tuple"),
        pytest.param(lambda d: {"k": OrderedDict(d)}, id="nested-ordered"),
    ],
)
def test_any_container_is_searched(wrap: Any, sink: MemorySink) -> None:
    """Whatever mapping or sequence holds a secret, it is redacted."""
    log.info("call", payload=wrap({"password": SECRET}))

    assert SECRET not in sink.text()


def test_secret_in_a_set_is_replaced(sink: MemorySink) -> None:
    """Sets are rendered as lists, so their strings are searched too."""
    log.info("call", tags={"Bearer abcdefghijklmnop1234", "plain"})

    assert "abcdefghijklmnop1234" not in sink.text()


def test_secrets_deeper_than_any_limit_never_leak(sink: MemorySink) -> None:
    """However deep a secret sits, it never reaches the line as itself."""
    deep: dict[str, Any] = {"password": SECRET}
    for _ in range(40):
        deep = {"n": deep}

    log.info("call", deep=deep)

    assert SECRET not in sink.text()


def test_cyclic_values_are_redacted_without_recursing(
    sink: MemorySink,
) -> None:
    """A self-referencing structure with a secret is safe and redacted."""
    loop: dict[str, Any] = {"password": SECRET}
    loop["self"] = loop

    log.info("call", loop=loop)

    assert SECRET not in sink.text()
    assert "<circular>" in sink.text()


def test_redaction_never_mutates_the_callers_values(sink: MemorySink) -> None:
    """The caller's own dict keeps its values; only the line is cleaned."""
    headers = {"Authorization": SECRET}

    log.info("call", headers=headers)

    assert headers == {"Authorization": SECRET}


def test_empty_values_under_sensitive_keys_are_kept(sink: MemorySink) -> None:
    """``None`` and empty strings tell that no secret was sent."""
    log.info("call", password=None, token="")

    line = _one_line(sink)
    assert line["password"] is None
    assert line["token"] == ""


def test_request_ids_are_never_redacted(sink: MemorySink) -> None:
    """Ids pass untouched, even when they look like a secret."""
    lookalike = "token=abcdef1234567890abcdef"
    coordinator.start_request(correlation_id=lookalike, session_id=lookalike)
    log.info("call", nested={"session_id": lookalike})
    coordinator.end_request()

    line = _one_line(sink)
    assert line["correlation_id"] == lookalike
    assert line["session_id"] == lookalike
    assert line["nested"] == {"session_id": lookalike}


def test_operation_fields_and_tracebacks_are_redacted(
    sink: MemorySink,
) -> None:
    """Completion lines and exception text pass the same redaction."""
    with log.operation("login") as op:
        op["password"] = SECRET
    try:
        raise PermissionError(f"rejected Bearer {SECRET}")
    except PermissionError:
        log.exception("auth.failed")

    assert SECRET not in sink.text()


def test_summary_attributes_are_redacted(sink: MemorySink) -> None:
    """A bound secret never reaches the request's summary line."""
    ctx = coordinator.start_request()
    stratalog.bind(api_key=SECRET, plan="pro")
    summary = coordinator.end_request()

    emit_summary(summary, ctx)

    (line,) = sink.records()
    assert line["attributes"] == {"api_key": MARKER, "plan": "pro"}
    assert SECRET not in sink.text()


def test_extra_keys_and_patterns_are_configurable(sink: MemorySink) -> None:
    """``redact_keys`` and ``redact_patterns`` add to the defaults."""
    stratalog.configure(
        sink=sink,
        format="json",
        redact_keys=("ssn",),
        redact_patterns=(r"\bacct-\d{8,}\b",),
    )

    log.info(
        "customer",
        ssn="123-45-6789",
        customer_ssn="987-65-4321",
        note="paid from acct-1234567890 today",
        password=SECRET,
    )

    line = _one_line(sink)
    assert line["ssn"] == MARKER
    assert line["customer_ssn"] == MARKER
    assert line["note"] == f"paid from {MARKER} today"
    assert line["password"] == MARKER


def test_redaction_can_be_turned_off(sink: MemorySink) -> None:
    """``redact=False`` writes values as given."""
    stratalog.configure(sink=sink, format="json", redact=False)

    log.info("call", password="visible")

    assert _one_line(sink)["password"] == "visible"


def test_redactor_works_as_a_structlog_processor() -> None:
    """The redactor has the processor signature and returns the dict."""
    redactor = Redactor(keys=("pin",), patterns=())
    event = {"event": "x", "pin": "1234", "card_pin": "9", "pins": 3}

    result = redactor(None, "info", event)

    assert result is event
    assert result == {
        "event": "x",
        "pin": MARKER,
        "card_pin": MARKER,
        "pins": 3,
    }


def test_custom_marker() -> None:
    """The marker is configurable on the redactor."""
    redactor = Redactor(marker="***")
    fields: dict[str, Any] = {"password": "x"}

    redactor.scrub_fields(fields)

    assert fields == {"password": "***"}


def test_short_values_skip_pattern_search() -> None:
    """Free text shorter than any secret is returned as is."""
    redactor = Redactor()
    fields: dict[str, Any] = {"note": "token=abc"}

    redactor.scrub_fields(fields)

    assert fields == {"note": "token=abc"}


# -- long strings -------------------------------------------------------------

KEPT = 1_000
render_kept = json_renderer(Limits(max_string=KEPT))


def _rendered_through(redactor: Redactor, text: str) -> str:
    fields: dict[str, Any] = {"body": text}
    redactor.scrub_fields(fields)
    return render_kept({"event": "x", **fields}).decode()


@settings(max_examples=200, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=3 * KEPT),
    length=st.integers(min_value=8, max_value=3_000),
)
def test_property_long_strings_never_show_a_secret(
    position: int, length: int
) -> None:
    """Searching only what the renderer keeps never lets a secret through."""
    secret = "Bearer " + "k" * length
    text = "a " * (position // 2) + secret + " b" * 3_000
    redactor = Redactor(max_string=KEPT)

    line = _rendered_through(redactor, text)

    assert "k" * 8 not in line


def test_many_secrets_shrinking_the_text_are_all_replaced() -> None:
    """When replacements shorten the kept part, the whole text is searched."""
    text = " ".join(["Bearer " + "k" * 900] * 20)

    line = _rendered_through(Redactor(max_string=KEPT), text)

    assert "k" * 8 not in line
    assert line.count(MARKER) >= 2


def test_huge_string_costs_only_its_kept_part() -> None:
    """A 50 MB field is searched in milliseconds with a string limit."""
    fields: dict[str, Any] = {"body": "x" * 50_000_000}
    redactor = Redactor(max_string=16_384)

    started = time.perf_counter()
    redactor.scrub_fields(fields)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5
    assert len(fields["body"]) == 50_000_000


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        pytest.param("https://h/cb?access_token=tok123456", "tok123456"),
        pytest.param("x?client_secret=shh987654&a=b", "shh987654"),
        pytest.param("postgres://app:S3cretPass@db/x", "S3cretPass"),
        pytest.param("token=abc123 password=hunter2", "hunter2"),
    ],
)
def test_secrets_inside_urls_and_messages(value: str, secret: str) -> None:
    """Query parameters, DSN passwords and key=value pairs are redacted."""
    fields = {"text": value}
    Redactor().scrub_fields(fields)

    assert secret not in fields["text"]
    assert "[REDACTED]" in fields["text"]


@pytest.mark.parametrize(
    "key", ["sessionToken", "authToken", "apiKey", "X-Api-Key", "dbPassword"]
)
def test_camel_case_and_header_style_keys_are_sensitive(key: str) -> None:
    """Keys compare in snake case: ``sessionToken`` is ``session_token``."""
    fields = {key: "value", "promptTokens": 12}
    Redactor().scrub_fields(fields)

    assert fields == {key: "[REDACTED]", "promptTokens": 12}
