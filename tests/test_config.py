"""Settings: defaults, every LOG_* variable, checks, and configure()."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

import stratalog
from stratalog import config as config_module
from stratalog.config import DEFAULT_THRESHOLDS, LoggingConfig
from stratalog.exceptions import ConfigurationError
from stratalog.testing import MemorySink

log = stratalog.get_unified_logger("tests.config", "api")


class FakeStream(io.StringIO):
    """A stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_defaults() -> None:
    """A bare config holds the documented defaults."""
    config = LoggingConfig()

    assert config.level == "info"
    assert config.format == "auto"
    assert config.outputs == ("stdout",)
    assert config.file is None
    assert config.buffer_size == 1000
    assert config.flush_interval == 1.0
    assert config.overflow == "drop_low"
    assert config.dedupe is True
    assert dict(config.thresholds) == dict(DEFAULT_THRESHOLDS)
    assert config.max_logged_operations == 10_000
    assert config.max_attributes_size == 10_000
    assert config.max_error_history == 50
    assert config.redact is True
    assert config.level_no == 20


# Every variable with one good value and the setting it must produce.
GOOD_VALUES: list[Any] = [
    ("LOG_LEVEL", "DEBUG", "level", "debug"),
    ("LOG_FORMAT", "Console", "format", "console"),
    ("LOG_OUTPUT", "stdout, stderr", "outputs", ("stdout", "stderr")),
    ("LOG_FILE", "/var/log/app.ndjson", "file", "/var/log/app.ndjson"),
    ("LOG_FILE_MAX_BYTES", "10_000_000", "file_max_bytes", 10_000_000),
    ("LOG_FILE_BACKUPS", "3", "file_backups", 3),
    ("LOG_BUFFER_SIZE", "500", "buffer_size", 500),
    ("LOG_FLUSH_INTERVAL", "0.25", "flush_interval", 0.25),
    ("LOG_OVERFLOW", "BLOCK", "overflow", "block"),
    ("LOG_SHUTDOWN_TIMEOUT", "2.5", "shutdown_timeout", 2.5),
    ("LOG_DEDUPE", "off", "dedupe", False),
    (
        "LOG_DEDUPE_VOLATILE_FIELDS",
        "attempt, page",
        "dedupe_volatile_fields",
        ("attempt", "page"),
    ),
    ("LOG_MAX_LOGGED_OPERATIONS", "100", "max_logged_operations", 100),
    ("LOG_MAX_ATTRIBUTES_SIZE", "2048", "max_attributes_size", 2048),
    ("LOG_MAX_ERROR_HISTORY", "5", "max_error_history", 5),
    ("LOG_MAX_STRING_LENGTH", "1024", "max_string_length", 1024),
    ("LOG_MAX_DEPTH", "8", "max_depth", 8),
    ("LOG_MAX_LINE_BYTES", "65536", "max_line_bytes", 65536),
    ("LOG_REDACT", "false", "redact", False),
    ("LOG_REDACT_KEYS", "ssn,iban", "redact_keys", ("ssn", "iban")),
    ("LOG_REDACT_PATTERNS", r"acct-\d+", "redact_patterns", (r"acct-\d+",)),
    ("LOG_CAPTURE_STDLIB", "no", "capture_stdlib", False),
    ("LOG_HANDLE_SIGNALS", "no", "handle_signals", False),
    ("LOG_SERVICE_NAME", "orders", "service_name", "orders"),
    (
        "LOG_OTLP_ENDPOINT",
        "http://127.0.0.1:4318",
        "otlp_endpoint",
        "http://127.0.0.1:4318",
    ),
    ("LOG_OTLP_TIMEOUT", "1.5", "otlp_timeout", 1.5),
    ("LOG_TRACING", "Off", "tracing", "off"),
    ("LOG_OPERATION_SPANS", "on", "operation_spans", "on"),
]


@pytest.mark.parametrize(
    ("variable", "raw", "attr", "expected"),
    [pytest.param(*case, id=case[0]) for case in GOOD_VALUES],
)
def test_every_variable_is_read(
    variable: str, raw: str, attr: str, expected: Any
) -> None:
    """Each LOG_* variable sets its setting, parsed and normalised."""
    config = LoggingConfig.from_env({variable: raw})

    assert getattr(config, attr) == expected


def test_the_variable_table_is_covered() -> None:
    """Every variable the module reads has a case above."""
    assert {case[0] for case in GOOD_VALUES} == set(config_module._VARIABLES)


def test_blank_variables_are_ignored() -> None:
    """An empty or blank value leaves the default."""
    config = LoggingConfig.from_env({"LOG_LEVEL": "  ", "LOG_FILE": ""})

    assert config.level == "info"
    assert config.file is None


def test_log_output_none_means_no_stream() -> None:
    """``LOG_OUTPUT=none`` writes to no stream (a file only, or nothing)."""
    assert LoggingConfig.from_env({"LOG_OUTPUT": "none"}).outputs == ()


def test_os_environ_is_the_default_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a mapping, the process environment is read."""
    monkeypatch.setenv("LOG_LEVEL", "warning")

    assert LoggingConfig.from_env().level == "warning"


@pytest.mark.parametrize(
    ("variable", "layer"),
    [
        pytest.param("LOG_PERF_THRESHOLD_API", "api", id="api"),
        pytest.param("LOG_PERF_THRESHOLD_SERVICE", "service", id="service"),
        pytest.param("LOG_PERF_THRESHOLD_CORE", "core", id="core"),
        pytest.param(
            "LOG_PERF_THRESHOLD_INFRASTRUCTURE",
            "infrastructure",
            id="infrastructure",
        ),
        pytest.param(
            "LOG_PERF_THRESHOLD_REPOSITORY", "repository", id="new-layer"
        ),
    ],
)
def test_threshold_variables(variable: str, layer: str) -> None:
    """``LOG_PERF_THRESHOLD_<LAYER>`` sets one layer; others keep defaults."""
    config = LoggingConfig.from_env({variable: "0.75"})

    assert config.thresholds[layer] == 0.75
    for other, seconds in DEFAULT_THRESHOLDS.items():
        if other != layer:
            assert config.thresholds[other] == seconds


def test_otel_variables_fill_in() -> None:
    """OTEL_* variables are used when the LOG_* ones are not set."""
    config = LoggingConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_SERVICE_NAME": "orders",
        }
    )
    preferred = LoggingConfig.from_env(
        {
            "OTEL_SERVICE_NAME": "orders",
            "LOG_SERVICE_NAME": "billing",
        }
    )

    assert config.otlp_endpoint == "http://collector:4318"
    assert config.service_name == "orders"
    assert preferred.service_name == "billing"


@pytest.mark.parametrize(
    ("variable", "raw", "allowed"),
    [
        pytest.param("LOG_LEVEL", "verbose", "debug", id="level"),
        pytest.param("LOG_FORMAT", "xml", "console", id="format"),
        pytest.param("LOG_OUTPUT", "syslog", "stderr", id="output"),
        pytest.param("LOG_OVERFLOW", "wait", "drop_low", id="overflow"),
        pytest.param("LOG_TRACING", "sometimes", "auto", id="tracing"),
        pytest.param(
            "LOG_OPERATION_SPANS", "maybe", "auto", id="operation-spans"
        ),
        pytest.param("LOG_DEDUPE", "maybe", "true/false", id="bool"),
        pytest.param(
            "LOG_BUFFER_SIZE", "lots", "whole number", id="not-a-number"
        ),
        pytest.param("LOG_BUFFER_SIZE", "1.5", "whole number", id="fraction"),
        pytest.param("LOG_BUFFER_SIZE", "0", "positive", id="zero"),
        pytest.param(
            "LOG_FLUSH_INTERVAL", "-1", "positive", id="negative-interval"
        ),
        pytest.param("LOG_FLUSH_INTERVAL", "nan", "positive", id="nan"),
        pytest.param("LOG_FLUSH_INTERVAL", "soon", "number", id="interval"),
        pytest.param("LOG_MAX_DEPTH", "0", "positive", id="depth"),
        pytest.param(
            "LOG_MAX_LOGGED_OPERATIONS", "-3", "positive", id="bound"
        ),
        pytest.param(
            "LOG_FILE_MAX_BYTES", "-1", "zero or more", id="file-max-bytes"
        ),
        pytest.param(
            "LOG_FILE_BACKUPS", "-2", "zero or more", id="file-backups"
        ),
        pytest.param(
            "LOG_SHUTDOWN_TIMEOUT", "-5", "zero or more", id="shutdown"
        ),
        pytest.param("LOG_OTLP_TIMEOUT", "0", "positive", id="otlp-timeout"),
        pytest.param(
            "LOG_PERF_THRESHOLD_API", "fast", "number", id="threshold-text"
        ),
        pytest.param(
            "LOG_PERF_THRESHOLD_API", "0", "positive", id="threshold-zero"
        ),
        pytest.param(
            "LOG_PERF_THRESHOLD_CORE", "-0.1", "positive", id="threshold-neg"
        ),
    ],
)
def test_bad_value_names_variable_value_and_what_is_allowed(
    variable: str, raw: str, allowed: str
) -> None:
    """A bad value raises ConfigurationError with all three facts."""
    with pytest.raises(ConfigurationError) as info:
        LoggingConfig.from_env({variable: raw})

    message = str(info.value)
    assert variable in message
    assert raw in message
    assert allowed in message
    assert info.value.variable == variable
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        pytest.param({"buffer_size": True}, "LOG_BUFFER_SIZE", id="bool-int"),
        pytest.param(
            {"flush_interval": None}, "LOG_FLUSH_INTERVAL", id="none-float"
        ),
        pytest.param({"redact": 0}, "LOG_REDACT", id="int-bool"),
        pytest.param(
            {"thresholds": {"api": "fast"}},
            "LOG_PERF_THRESHOLD_API",
            id="str-threshold",
        ),
        pytest.param({"level": 10}, "LOG_LEVEL", id="int-level"),
    ],
)
def test_values_of_the_wrong_type_are_configuration_errors(
    overrides: dict[str, Any], variable: str
) -> None:
    """Keywords of the wrong type are refused like bad variables."""
    with pytest.raises(ConfigurationError) as info:
        LoggingConfig().replace(**overrides)

    assert info.value.variable == variable


def test_replace_refuses_unknown_settings() -> None:
    """An unknown keyword names itself and lists the known settings."""
    with pytest.raises(ConfigurationError, match="levle") as info:
        LoggingConfig().replace(levle="debug")

    assert "level" in info.value.allowed


def test_replace_merges_thresholds() -> None:
    """New thresholds are added to the existing ones."""
    config = LoggingConfig().replace(thresholds={"repository": 0.1})

    assert config.thresholds["repository"] == 0.1
    assert config.thresholds["api"] == 0.1
    assert config.thresholds["infrastructure"] == 1.0


@pytest.mark.parametrize(
    ("fmt", "outputs", "tty", "console"),
    [
        pytest.param("auto", ("stdout",), True, True, id="auto-terminal"),
        pytest.param("auto", ("stdout",), False, False, id="auto-pipe"),
        pytest.param("json", ("stdout",), True, False, id="json-terminal"),
        pytest.param("console", ("stdout",), False, True, id="console-pipe"),
        pytest.param("auto", ("stderr",), True, True, id="auto-stderr-tty"),
        pytest.param("auto", ("stderr",), False, False, id="auto-stderr"),
        pytest.param("auto", (), True, False, id="auto-no-stream"),
    ],
)
def test_auto_format_is_console_on_a_terminal(
    fmt: str,
    outputs: tuple[str, ...],
    tty: bool,
    console: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` renders for people on a terminal and JSON otherwise."""
    monkeypatch.setattr("sys.stdout", FakeStream(tty))
    monkeypatch.setattr("sys.stderr", FakeStream(tty))

    config = LoggingConfig(format=fmt, outputs=outputs)

    assert config.renders_console is console


def test_auto_format_with_a_file_is_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file output needs JSON lines, even beside a terminal."""
    monkeypatch.setattr("sys.stdout", FakeStream(True))

    config = LoggingConfig(outputs=("stdout",), file="/tmp/app.ndjson")

    assert config.renders_console is False


# -- configure() --------------------------------------------------------------


def test_configure_returns_the_settings_in_force() -> None:
    """``configure`` applies overrides and returns the settings."""
    memory = MemorySink()

    settings = stratalog.configure(sink=memory, level="debug", format="json")

    assert settings.level == "debug"
    assert stratalog._state.config() is settings


def test_configure_twice_never_doubles_lines_or_handlers() -> None:
    """A second configure replaces the first: one line, same handlers."""
    root = logging.getLogger()
    first = MemorySink()
    stratalog.configure(sink=first, format="json")
    handlers = len(root.handlers)
    second = MemorySink()
    stratalog.configure(sink=second, format="json")
    stratalog.configure(sink=second, format="json")

    log.info("hello")
    logging.getLogger("tests.config.stdlib").warning("from stdlib")

    assert len(root.handlers) == handlers
    assert first.lines == []
    assert first.closed
    assert [r["event"] for r in second.records()] == ["hello", "from stdlib"]


def test_configure_rejects_a_bad_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An explicit configure raises for a bad variable, naming it."""
    monkeypatch.setenv("LOG_LEVEL", "loud")

    with pytest.raises(ConfigurationError, match="LOG_LEVEL"):
        stratalog.configure(sink=MemorySink())


def test_configure_overrides_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keyword overrides replace what the environment says."""
    monkeypatch.setenv("LOG_LEVEL", "error")
    memory = MemorySink()

    stratalog.configure(sink=memory, format="json", level="info")
    log.info("kept")

    assert [r["event"] for r in memory.records()] == ["kept"]


@pytest.mark.parametrize(
    ("setting", "given", "expected"),
    [
        pytest.param("outputs", "stdout", ("stdout",), id="outputs-text"),
        pytest.param("outputs", ("none",), (), id="outputs-none"),
        pytest.param("level", "DEBUG", "debug", id="level-upper"),
        pytest.param(
            "redact_keys", "password,x", ("password", "x"), id="keys"
        ),
        pytest.param(
            "dedupe_volatile_fields", "a, b", ("a", "b"), id="volatile"
        ),
    ],
)
def test_keywords_given_as_text_read_like_the_environment(
    setting: str, given: Any, expected: Any
) -> None:
    """A keyword override written as text means what the variable means."""
    assert getattr(LoggingConfig().replace(**{setting: given}), setting) == (
        expected
    )
