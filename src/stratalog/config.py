"""Settings: one frozen :class:`LoggingConfig`, read from the environment.

This module is a leaf: every other module may import it, it imports none of
them. :func:`stratalog.configure` turns a config into a running pipeline.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .exceptions import ConfigurationError

__all__ = ["DEFAULT_THRESHOLDS", "LAYERS", "LEVELS", "LoggingConfig"]

LAYERS: tuple[str, ...] = ("api", "service", "core", "infrastructure")
"""The layers every service has; others are added through ``thresholds``."""

DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "api": 0.1,
    "service": 0.5,
    "core": 0.3,
    "infrastructure": 1.0,
}

LEVELS: Mapping[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Every setting of stratalog, with the defaults a service starts from.

    Build one with :meth:`from_env` (environment variables, see the README's
    configuration table) or directly; :func:`stratalog.configure` accepts the
    same names as keyword overrides.
    """

    level: str = "info"
    format: str = "auto"
    outputs: tuple[str, ...] = ("stdout",)
    file: str | None = None
    file_max_bytes: int = 0
    file_backups: int = 5
    buffer_size: int = 1000
    flush_interval: float = 1.0
    overflow: str = "drop_low"
    shutdown_timeout: float = 5.0
    dedupe: bool = True
    dedupe_volatile_fields: tuple[str, ...] = ("attempt", "index", "offset")
    thresholds: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS)
    )
    max_logged_operations: int = 10_000
    max_attributes_size: int = 10_000
    max_error_history: int = 50
    max_string_length: int = 16_384
    max_depth: int = 32
    max_line_bytes: int = 262_144
    redact: bool = True
    redact_keys: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    capture_stdlib: bool = True
    handle_signals: bool = True
    service_name: str | None = None
    otlp_endpoint: str | None = None
    otlp_timeout: float = 5.0
    tracing: str = "auto"
    operation_spans: str = "auto"

    def __post_init__(self) -> None:
        _check_choice("LOG_LEVEL", self.level, LEVELS)
        _check_choice("LOG_FORMAT", self.format, ("auto", "json", "console"))
        _check_choice("LOG_OVERFLOW", self.overflow, ("drop_low", "block"))
        _check_choice("LOG_TRACING", self.tracing, ("auto", "on", "off"))
        _check_choice(
            "LOG_OPERATION_SPANS", self.operation_spans, ("auto", "on", "off")
        )
        for name in self.outputs:
            _check_choice("LOG_OUTPUT", name, ("stdout", "stderr"))
        for layer, seconds in self.thresholds.items():
            _check_positive(f"LOG_PERF_THRESHOLD_{layer.upper()}", seconds)
        for variable, flag in (
            ("LOG_DEDUPE", self.dedupe),
            ("LOG_REDACT", self.redact),
            ("LOG_CAPTURE_STDLIB", self.capture_stdlib),
            ("LOG_HANDLE_SIGNALS", self.handle_signals),
        ):
            _check_bool(variable, flag)
        for variable, value in (
            ("LOG_BUFFER_SIZE", self.buffer_size),
            ("LOG_MAX_LOGGED_OPERATIONS", self.max_logged_operations),
            ("LOG_MAX_ATTRIBUTES_SIZE", self.max_attributes_size),
            ("LOG_MAX_ERROR_HISTORY", self.max_error_history),
            ("LOG_MAX_STRING_LENGTH", self.max_string_length),
            ("LOG_MAX_DEPTH", self.max_depth),
            ("LOG_MAX_LINE_BYTES", self.max_line_bytes),
        ):
            _check_whole(variable, value, minimum=1)
        _check_whole("LOG_FILE_MAX_BYTES", self.file_max_bytes, minimum=0)
        _check_whole("LOG_FILE_BACKUPS", self.file_backups, minimum=0)
        _check_positive("LOG_FLUSH_INTERVAL", self.flush_interval)
        _check_positive("LOG_OTLP_TIMEOUT", self.otlp_timeout)
        _check_seconds("LOG_SHUTDOWN_TIMEOUT", self.shutdown_timeout)

    @property
    def level_no(self) -> int:
        """The numeric level (stdlib scale) below which calls are dropped."""
        return LEVELS[self.level]

    @property
    def renders_console(self) -> bool:
        """Whether lines are rendered for a person rather than as JSON.

        With ``auto``: only when every output stream is a terminal and no
        file is written, since a file needs JSON lines.
        """
        if self.format != "auto":
            return self.format == "console"
        streams = {"stdout": sys.stdout, "stderr": sys.stderr}
        return (
            self.file is None
            and bool(self.outputs)
            and all(_isatty(streams[name]) for name in self.outputs)
        )

    def replace(self, **overrides: Any) -> LoggingConfig:
        """Return a copy with *overrides* applied and checked."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(
                ", ".join(unknown),
                overrides[unknown[0]],
                f"not a setting; use one of: {', '.join(sorted(known))}",
            )
        overrides = {k: _from_text(k, v) for k, v in overrides.items()}
        if "thresholds" in overrides:
            merged = dict(self.thresholds)
            merged.update(overrides["thresholds"])
            overrides["thresholds"] = merged
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None
    ) -> LoggingConfig:
        """Read every ``LOG_*`` variable, checking each value.

        A bad value raises :class:`~stratalog.ConfigurationError` naming the
        variable, the value and what is allowed.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (attr, parse) in _VARIABLES.items():
            raw = env.get(name)
            if raw is not None and raw.strip() != "":
                values[attr] = _parse(name, raw.strip(), parse)
        thresholds = dict(DEFAULT_THRESHOLDS)
        for name, raw in env.items():
            if name.startswith(_THRESHOLD_PREFIX) and raw.strip():
                layer = name[len(_THRESHOLD_PREFIX) :].lower()
                thresholds[layer] = _parse(name, raw.strip(), _float)
        values["thresholds"] = thresholds
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if "otlp_endpoint" not in values and endpoint:
            values["otlp_endpoint"] = endpoint
        if "service_name" not in values and env.get("OTEL_SERVICE_NAME"):
            values["service_name"] = env["OTEL_SERVICE_NAME"]
        return cls(**values)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _check_choice(name: str, value: object, allowed: Any) -> None:
    if value not in allowed:
        raise ConfigurationError(
            name, value, f"use one of: {', '.join(sorted(allowed))}"
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _check_positive(name: str, value: object) -> None:
    number = _number(value)
    if number is None or not number > 0:
        raise ConfigurationError(name, value, "a positive number")


def _check_seconds(name: str, value: object) -> None:
    number = _number(value)
    if number is None or not number >= 0:
        raise ConfigurationError(name, value, "a number, zero or more")


def _check_whole(name: str, value: object, *, minimum: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigurationError(name, value, "a whole number")
    if value < minimum:
        allowed = "positive" if minimum == 1 else "zero or more"
        raise ConfigurationError(name, value, f"a whole number, {allowed}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(name, value, "true or false")


def _parse(name: str, raw: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigurationError(name, raw, str(exc)) from None


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of true/false, yes/no, on/off, 1/0")


def _int(raw: str) -> int:
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError("expected a whole number") from None


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(
            "expected a number (seconds may have a fraction)"
        ) from None


def _words(raw: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in raw.split(",") if w.strip())


def _outputs(raw: str) -> tuple[str, ...]:
    words = tuple(w.lower() for w in _words(raw))
    return () if words == ("none",) else words


def _from_text(attr: str, value: Any) -> Any:
    """Read a keyword given as text the way its variable is read.

    ``outputs="stdout,stderr"``, ``level="DEBUG"``, ``redact_keys="a,b"``
    mean what they mean in the environment; ``outputs=("none",)`` too.
    """
    if attr == "outputs" and isinstance(value, list | tuple):
        if tuple(str(v).lower() for v in value) == ("none",):
            return ()
        return tuple(value)
    known = _VARIABLE_OF.get(attr)
    if known is None or not isinstance(value, str):
        return value
    name, parse = known
    return _parse(name, value.strip(), parse)


def _lower(raw: str) -> str:
    return raw.lower()


_THRESHOLD_PREFIX = "LOG_PERF_THRESHOLD_"

_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "LOG_LEVEL": ("level", _lower),
    "LOG_FORMAT": ("format", _lower),
    "LOG_OUTPUT": ("outputs", _outputs),
    "LOG_FILE": ("file", str),
    "LOG_FILE_MAX_BYTES": ("file_max_bytes", _int),
    "LOG_FILE_BACKUPS": ("file_backups", _int),
    "LOG_BUFFER_SIZE": ("buffer_size", _int),
    "LOG_FLUSH_INTERVAL": ("flush_interval", _float),
    "LOG_OVERFLOW": ("overflow", _lower),
    "LOG_SHUTDOWN_TIMEOUT": ("shutdown_timeout", _float),
    "LOG_DEDUPE": ("dedupe", _bool),
    "LOG_DEDUPE_VOLATILE_FIELDS": ("dedupe_volatile_fields", _words),
    "LOG_MAX_LOGGED_OPERATIONS": ("max_logged_operations", _int),
    "LOG_MAX_ATTRIBUTES_SIZE": ("max_attributes_size", _int),
    "LOG_MAX_ERROR_HISTORY": ("max_error_history", _int),
    "LOG_MAX_STRING_LENGTH": ("max_string_length", _int),
    "LOG_MAX_DEPTH": ("max_depth", _int),
    "LOG_MAX_LINE_BYTES": ("max_line_bytes", _int),
    "LOG_REDACT": ("redact", _bool),
    "LOG_REDACT_KEYS": ("redact_keys", _words),
    "LOG_REDACT_PATTERNS": ("redact_patterns", _words),
    "LOG_CAPTURE_STDLIB": ("capture_stdlib", _bool),
    "LOG_HANDLE_SIGNALS": ("handle_signals", _bool),
    "LOG_SERVICE_NAME": ("service_name", str),
    "LOG_OTLP_ENDPOINT": ("otlp_endpoint", str),
    "LOG_OTLP_TIMEOUT": ("otlp_timeout", _float),
    "LOG_TRACING": ("tracing", _lower),
    "LOG_OPERATION_SPANS": ("operation_spans", _lower),
}

_VARIABLE_OF: dict[str, tuple[str, Callable[[str], Any]]] = {
    attr: (name, parse) for name, (attr, parse) in _VARIABLES.items()
}
