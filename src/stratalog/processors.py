"""Processors: steps every line passes through after the request is merged.

They have structlog's processor signature, ``(logger, method_name,
event_dict) -> event_dict``, so structlog processors can be added to the
pipeline and these can be used in a structlog setup.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from ._emit import RESERVED
from ._render import CUT_MARKER, CYCLE_MARKER, sorted_members, to_native

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

# Each default pattern with a literal that every match contains, lower-
# cased. Testing for the literal first costs a fraction of the search:
# Python's engine tries every alternative at every position.
_HINTED_PATTERNS: tuple[tuple[str, str], ...] = (
    ("bearer", r"(?i:\bbearer\s+[A-Za-z0-9._~+/=-]{8,})"),
    ("basic", r"(?i:\bbasic\s+[A-Za-z0-9+/=]{8,})"),
    ("eyj", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("k-", r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"),
    ("akia", r"\bAKIA[0-9A-Z]{16}\b"),
    ("gh", r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    ("xox", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    (
        "=",
        r"(?i:\b\w{0,40}?(?:api[_-]?key|token|secret|passw(?:or)?d|pwd)"
        r"=[^&\s]+)",
    ),
    ("://", r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
)

DEFAULT_REDACT_PATTERNS: tuple[str, ...] = tuple(
    pattern for _, pattern in _HINTED_PATTERNS
)
"""Patterns of secrets inside values: bearer tokens, JWTs, API keys."""

# The library's own keys: timestamps, names and the request ids.
_NEVER_REDACTED = RESERVED

# Secret-looking substrings are at least this long; shorter values are
# not searched, which keeps the common short field free.
_MIN_SECRET_LENGTH = 16
_KEY_CACHE_SIZE = 4_096
# Searched beyond the renderer's string limit, so that a secret starting
# just before the cut is matched whole.
_OVERLAP = 1_024

_PLAIN = frozenset({int, float, bool, type(None)})
# Values rendered by type alone, never by content that could hold a secret.
_OPAQUE = (int, float, enum.Enum, UUID, dt.date, dt.time)


class Redactor:
    """Replace secrets in a line by a marker that never echoes them.

    A value is replaced whole when its key, lower-cased with ``-`` read as
    ``_``, is one of *keys* or ends with ``_`` plus one of them
    (``db_password``; ``max_tokens`` is left alone). Inside string values,
    each match of *patterns* is replaced. Everything the renderer expands
    is searched: mappings, sequences, sets, dataclasses, exception
    messages and the text of other objects. Nesting deeper than
    *max_depth* is cut, and a cycle is marked, as the renderer does, so no
    unsearched value reaches a line. With *max_string* (the renderer's
    string limit), a longer string is searched only as far as the
    renderer keeps it, so a huge value costs no more than a short one.
    The request ids are never touched.
    """

    __slots__ = (
        "_by_hint",
        "_cache",
        "_keys",
        "_max_depth",
        "_max_string",
        "_pattern",
        "_suffixes",
        "marker",
    )

    def __init__(
        self,
        keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
        marker: str = "[REDACTED]",
        max_depth: int = 32,
        max_string: int | None = None,
    ) -> None:
        self._keys = frozenset(_normalise(k) for k in keys)
        self._suffixes = tuple(f"_{k}" for k in self._keys)
        patterns = tuple(patterns)
        joined = "|".join(f"(?:{p})" for p in patterns)
        self._pattern = re.compile(joined) if joined else None
        self._by_hint: tuple[tuple[str, re.Pattern[str]], ...] | None = None
        if set(patterns) <= set(DEFAULT_REDACT_PATTERNS):
            self._by_hint = tuple(
                (hint, re.compile(p))
                for hint, p in _HINTED_PATTERNS
                if p in patterns
            )
        self.marker = marker
        self._max_depth = max_depth
        self._max_string = max_string
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
                if not _is_empty(value):
                    fields[key] = self.marker
                continue
            kind = type(value)
            if kind in _PLAIN or key in _NEVER_REDACTED:
                continue
            if kind is str:
                if len(value) >= _MIN_SECRET_LENGTH:
                    fields[key] = self._scrub(value)
                continue
            try:
                fields[key] = self._clean(None, value, 0, set())
            except Exception:
                # A value that cannot be searched cannot be shown either.
                fields[key] = self.marker

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

    def _clean(
        self, key: object, value: Any, depth: int, path: set[int]
    ) -> Any:
        if key is not None:
            if self._key_is_sensitive(key):
                return value if _is_empty(value) else self.marker
            if key in _NEVER_REDACTED:
                return value
        kind = type(value)
        if kind is str:
            return self._scrub(value)
        if kind in _PLAIN:
            return value
        if kind is dict or kind is list or kind is tuple:
            return self._clean_container(value, depth, path)
        return self._clean_other(value, depth, path)

    def _key_is_sensitive(self, key: object) -> bool:
        if type(key) is str:
            sensitive = self._cache.get(key)
            return self._remember(key) if sensitive is None else sensitive
        return self._sensitive(key)

    def _clean_container(self, value: Any, depth: int, path: set[int]) -> Any:
        if depth >= self._max_depth:
            return CUT_MARKER
        if id(value) in path:
            return CYCLE_MARKER
        path.add(id(value))
        try:
            if isinstance(value, Mapping):
                return self._clean_mapping(value, depth, path)
            return self._clean_sequence(value, depth, path)
        finally:
            path.discard(id(value))

    def _clean_other(self, value: Any, depth: int, path: set[int]) -> Any:
        if isinstance(value, _OPAQUE):
            return value
        if isinstance(value, str):
            return self._scrub(str.__str__(value))
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            return self._clean_container(value, depth, path)
        if depth >= self._max_depth:
            return CUT_MARKER
        # Written through a conversion (repr, dataclass fields, exception
        # message): search what the renderer would write.
        converted = to_native(value)
        cleaned = self._clean(None, converted, depth + 1, path)
        return value if cleaned is converted else cleaned

    def _scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or len(text) < _MIN_SECRET_LENGTH:
            return text
        kept = self._max_string
        if kept is not None and len(text) > kept + _OVERLAP:
            return self._scrub_kept_part(pattern, text, kept)
        if self._by_hint is not None:
            return self._scrub_hinted(text, self._by_hint)
        if pattern.search(text) is None:
            return text
        return pattern.sub(self.marker, text)

    def _scrub_hinted(
        self, text: str, by_hint: tuple[tuple[str, re.Pattern[str]], ...]
    ) -> str:
        lowered = text.lower()
        for hint, pattern in by_hint:
            if hint in lowered and pattern.search(text) is not None:
                text = pattern.sub(self.marker, text)
        return text

    def _scrub_kept_part(
        self, pattern: re.Pattern[str], text: str, kept: int
    ) -> str:
        """Search what the renderer keeps; it cuts the unsearched rest."""
        head = text[: kept + _OVERLAP]
        if pattern.search(head) is None:
            return text
        cleaned = pattern.sub(self.marker, head)
        if len(cleaned) < kept:
            # Replacements shortened the text so much that unsearched
            # characters would move into what the renderer keeps.
            return pattern.sub(self.marker, text)
        return cleaned + text[kept + _OVERLAP :]

    def _clean_mapping(
        self, value: Mapping[Any, Any], depth: int, path: set[int]
    ) -> Any:
        changed = None
        for key, item in value.items():
            cleaned = self._clean(key, item, depth + 1, path)
            if cleaned is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = cleaned
        return value if changed is None else changed

    def _clean_sequence(self, value: Any, depth: int, path: set[int]) -> Any:
        items = value
        if isinstance(value, set | frozenset):
            items = sorted_members(value)
        cleaned = [self._clean(None, item, depth + 1, path) for item in items]
        if all(a is b for a, b in zip(cleaned, items, strict=True)):
            return value
        return cleaned


def _is_empty(value: Any) -> bool:
    """Whether a sensitive key holds no secret at all (None or "")."""
    return value is None or (type(value) is str and value == "")


_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _normalise(key: str) -> str:
    """``X-Api-Key``, ``apiKey`` and ``api_key`` all read ``api_key``."""
    return _CAMEL_HUMP.sub("_", key).lower().replace("-", "_")
