"""Processors: steps every line passes through after the request is merged.

They have structlog's processor signature, ``(logger, method_name,
event_dict) -> event_dict``, so structlog processors can be added to the
pipeline and these can be used in a structlog setup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["DEFAULT_REDACT_KEYS", "DEFAULT_REDACT_PATTERNS", "Redactor"]

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "x_api_key",
    "private_key",
    "credentials",
)
"""Key names whose values are replaced, also as a suffix (``db_password``)."""

DEFAULT_REDACT_PATTERNS: tuple[str, ...] = (
    r"(?i:\bbearer\s+[A-Za-z0-9._~+/=-]{8,})",
    r"(?i:\bbasic\s+[A-Za-z0-9+/=]{8,})",
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    r"(?i:\b(?:api[_-]?key|token|secret|password)=[^&\s]+)",
)
"""Patterns of secrets inside values: bearer tokens, JWTs, API keys."""

_NEVER_REDACTED = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "layer",
        "event",
        "correlation_id",
        "session_id",
        "user_id",
        "investigation_id",
        "agent_phase",
        "trace_id",
        "span_id",
    }
)

# Secret-looking substrings are at least this long; shorter values are
# not searched, which keeps the common short field free.
_MIN_SECRET_LENGTH = 16
_KEY_CACHE_SIZE = 4_096


class Redactor:
    """Replace secrets in a line by a marker that never echoes them.

    A value is replaced whole when its key, lower-cased with ``-`` read as
    ``_``, is one of *keys* or ends with ``_`` plus one of them
    (``db_password``; ``max_tokens`` is left alone). Inside string values,
    each match of *patterns* is replaced. Nested mappings and sequences
    are searched too. The request ids are never redacted.
    """

    __slots__ = ("_cache", "_keys", "_pattern", "_suffixes", "marker")

    def __init__(
        self,
        keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
        marker: str = "[REDACTED]",
    ) -> None:
        self._keys = frozenset(_normalise(k) for k in keys)
        self._suffixes = tuple(f"_{k}" for k in self._keys)
        joined = "|".join(f"(?:{p})" for p in patterns)
        self._pattern = re.compile(joined) if joined else None
        self.marker = marker
        self._cache: dict[str, bool] = dict.fromkeys(_NEVER_REDACTED, False)

    def __call__(
        self, logger: Any, method_name: str, event_dict: dict[str, Any]
    ) -> dict[str, Any]:
        """Redact *event_dict* in place and return it."""
        self.scrub_fields(event_dict)
        return event_dict

    def scrub_fields(self, fields: dict[str, Any]) -> None:
        """Redact the values of *fields* in place."""
        cache = self._cache
        for key, value in fields.items():
            sensitive = cache.get(key)
            if sensitive is None:
                sensitive = self._remember(key)
            if sensitive:
                if value is not None and value != "":
                    fields[key] = self.marker
                continue
            kind = type(value)
            if kind is str:
                if len(value) >= _MIN_SECRET_LENGTH:
                    fields[key] = self._scrub(value)
            elif kind is dict or kind is list or kind is tuple:
                fields[key] = self._clean(None, value, 0)

    def _remember(self, key: str) -> bool:
        sensitive = self._sensitive(key)
        if len(self._cache) < _KEY_CACHE_SIZE:
            self._cache[key] = sensitive
        return sensitive

    def _sensitive(self, key: object) -> bool:
        if not isinstance(key, str) or key in _NEVER_REDACTED:
            return False
        name = _normalise(key)
        return name in self._keys or name.endswith(self._suffixes)

    def _clean(self, key: object, value: Any, depth: int) -> Any:
        if self._sensitive(key):
            return self.marker if value not in (None, "") else value
        kind = type(value)
        if kind is str:
            return self._scrub(value)
        if depth >= 8:
            return value
        if isinstance(value, MutableMapping | dict):
            return self._clean_mapping(value, depth)
        if kind is list or kind is tuple:
            return self._clean_sequence(value, depth)
        return value

    def _scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or len(text) < _MIN_SECRET_LENGTH:
            return text
        if pattern.search(text) is None:
            return text
        return pattern.sub(self.marker, text)

    def _clean_mapping(self, value: Any, depth: int) -> Any:
        changed = None
        for key, item in value.items():
            cleaned = self._clean(key, item, depth + 1)
            if cleaned is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = cleaned
        return value if changed is None else changed

    def _clean_sequence(self, value: Any, depth: int) -> Any:
        cleaned = [self._clean(None, item, depth + 1) for item in value]
        if all(a is b for a, b in zip(cleaned, value, strict=True)):
            return value
        return cleaned


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")
