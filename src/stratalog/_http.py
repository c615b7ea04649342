"""Read what the logging middleware needs from an ASGI scope.

This runs once per request. The header list is scanned once for the few
names wanted, without building a dict of every header, and ids are
checked with byte methods rather than a regular expression.

Client-supplied values never reach a log line unchecked: an id must be 1
to 128 characters from ``[A-Za-z0-9._:-]`` to be used, and a rejected one
is only ever mentioned as a short escaped prefix.
"""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from .context import RequestContext
from .exceptions import ConfigurationError

__all__ = [
    "ASGIApp",
    "Incoming",
    "Message",
    "Receive",
    "RequestObserver",
    "RequestReader",
    "Scope",
    "Send",
    "escape_prefix",
    "is_valid_id",
    "printable",
    "route_template",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_ID_LENGTH = 128
MAX_USER_AGENT = 256
MAX_PATH = 2_048
_ESCAPED_LIMIT = 64
_MAX_HOPS = 16

_ID_CHARS = (string.ascii_letters + string.digits + "._:-").encode()
_TOKEN_CHARS = (
    string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
).encode()


class RequestObserver(Protocol):
    """Told when the middleware starts and finishes a request or socket.

    ``started`` runs in the request's context just before the application
    is called; whatever it returns is handed back to ``finished``, which
    runs in the same context after the summary line is written. *status*
    is the response status sent, or ``None`` when no response went out.
    """

    def started(self, scope: Scope, ctx: RequestContext) -> Any: ...

    def finished(
        self, state: Any, status: int | None, exc: BaseException | None
    ) -> None: ...


def is_valid_id(raw: bytes) -> bool:
    """Whether *raw* is 1 to 128 characters from ``[A-Za-z0-9._:-]``."""
    return 0 < len(raw) <= MAX_ID_LENGTH and not raw.translate(None, _ID_CHARS)


def escape_prefix(raw: bytes) -> str:
    """Return the start of *raw* with every unsafe byte escaped.

    At most 64 characters. Control bytes, backslashes and non-ASCII bytes
    come out as ``\\xNN``-style escapes, so the result is inert in a
    terminal and cannot break a line-oriented log.
    """
    escaped = repr(raw[:_ESCAPED_LIMIT])[2:-1]
    return escaped[:_ESCAPED_LIMIT]


def printable(text: str, limit: int) -> str:
    """Return *text* cut to *limit* characters with control characters escaped.

    The check is one C-level scan, so the common clean value costs almost
    nothing.
    """
    if len(text) > limit:
        text = text[:limit]
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")[:limit]


def route_template(scope: Scope) -> str | None:
    """Return the matched route's path template, or ``None``.

    Routers record the matched route in the scope (``scope["route"]``) once
    routing is done. FastAPI keeps the full template of a route from an
    included router in its own scope entry; it is read when present. Inside
    a mounted application the template is prefixed with the mount's path
    as it was matched.
    """
    route = scope.get("route")
    if route is None:
        return None
    template = _fastapi_template(scope, route)
    if template is not None:
        return template
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    root: str = scope.get("root_path", "")
    mount = root[len(scope.get("app_root_path", "")) :]
    if mount and not path.startswith(mount):
        return mount + path
    return path


def _fastapi_template(scope: Scope, route: Any) -> str | None:
    state = scope.get("fastapi")
    if not isinstance(state, dict):
        return None
    effective = state.get("effective_route_context")
    if getattr(effective, "original_route", None) is not route:
        return None
    template = getattr(effective, "path_format", None)
    return template if isinstance(template, str) else None


@dataclass(slots=True)
class Incoming:
    """What one request brings: ids, client facts, rejected values."""

    correlation_id: str | None = None
    response_header: bytes = b"x-request-id"
    session_id: str | None = None
    investigation_id: str | None = None
    user_agent: str | None = None
    client_ip: str | None = None
    invalid: dict[str, str] | None = None

    def reject(self, source: str, raw: bytes) -> None:
        """Remember that *source* carried the unusable value *raw*."""
        if self.invalid is None:
            self.invalid = {}
        self.invalid[source] = escape_prefix(raw)


def _header_name(setting: str, name: str) -> bytes:
    raw = name.encode("ascii", "replace").lower()
    if not raw or raw.translate(None, _TOKEN_CHARS):
        raise ConfigurationError(setting, name, "an HTTP header name")
    return raw


def _parameter_name(setting: str, name: str) -> bytes:
    raw = name.encode("ascii", "replace")
    if not raw or raw.translate(None, _TOKEN_CHARS):
        raise ConfigurationError(
            setting, name, "a name of letters, digits and '-._'"
        )
    return raw


class _Proxies:
    """The addresses whose ``X-Forwarded-For`` header is believed."""

    __slots__ = ("everyone", "hosts", "networks")

    def __init__(self, trusted: Iterable[str]) -> None:
        self.everyone = False
        self.hosts: set[str] = set()
        networks = []
        for entry in trusted:
            if entry == "*":
                self.everyone = True
                continue
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigurationError(
                    "trusted_proxies", entry, "an IP address, a CIDR or '*'"
                ) from None
            if network.num_addresses == 1:
                self.hosts.add(str(network.network_address))
            else:
                networks.append(network)
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return self.everyone or bool(self.hosts or self.networks)

    def trust(self, address: str) -> bool:
        if self.everyone or address in self.hosts:
            return True
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class RequestReader:
    """Extract ids and client facts from a scope, as configured."""

    __slots__ = (
        "_correlation",
        "_investigation_query",
        "_proxies",
        "_response_header",
        "_session_cookie",
        "_session_query",
        "_slots",
        "_wanted",
    )

    def __init__(
        self,
        *,
        correlation_headers: Iterable[str],
        response_header: str,
        session_header: str | None,
        session_cookie: str | None,
        session_query: str | None,
        investigation_header: str | None,
        investigation_query: str | None,
        trusted_proxies: Iterable[str],
    ) -> None:
        names = [
            _header_name("correlation_headers", name)
            for name in correlation_headers
        ]
        self._correlation = tuple(names)
        self._response_header = _header_name(
            "response_header", response_header
        )
        # Slots after the correlation headers, in this order.
        extra = {
            "session": session_header,
            "investigation": investigation_header,
            "cookie": "cookie" if session_cookie else None,
            "user_agent": "user-agent",
            "forwarded": "x-forwarded-for" if trusted_proxies else None,
        }
        self._slots = len(names) + len(extra)
        wanted: dict[bytes, int] = {}
        for index, name in enumerate(names):
            wanted.setdefault(name, index)
        for index, (setting, header) in enumerate(extra.items(), len(names)):
            if header is not None:
                wanted.setdefault(_header_name(setting, header), index)
        self._wanted = wanted
        self._session_cookie = (
            _parameter_name("session_cookie", session_cookie)
            if session_cookie
            else None
        )
        self._session_query = (
            _parameter_name("session_query", session_query)
            if session_query
            else None
        )
        self._investigation_query = (
            _parameter_name("investigation_query", investigation_query)
            if investigation_query
            else None
        )
        self._proxies = _Proxies(trusted_proxies)

    def read(self, scope: Scope) -> Incoming:
        """Return the ids and client facts of the request in *scope*."""
        found = self._scan(scope.get("headers") or ())
        incoming = Incoming(response_header=self._response_header)
        self._read_correlation(found, incoming)
        base = len(self._correlation)
        session, investigation, cookie, agent, forwarded = found[base:]
        query = scope.get("query_string") or b""
        if session is not None or cookie is not None or query:
            incoming.session_id = self._session(
                session, cookie, query, incoming
            )
        if investigation is not None or query:
            incoming.investigation_id = self._investigation(
                investigation, query, incoming
            )
        if agent is not None:
            incoming.user_agent = printable(
                agent.decode("latin-1"), MAX_USER_AGENT
            )
        incoming.client_ip = self._client_ip(scope, forwarded)
        return incoming

    def _scan(self, headers: Iterable[Any]) -> list[bytes | None]:
        found: list[bytes | None] = [None] * self._slots
        wanted = self._wanted
        for name, value in headers:
            slot = wanted.get(name)
            if slot is None:
                continue
            seen = found[slot]
            if seen is None:
                found[slot] = value
            elif name == b"cookie":
                # HTTP/2 may split cookies over several header lines.
                found[slot] = seen + b"; " + value
        return found

    def _read_correlation(
        self, found: list[bytes | None], incoming: Incoming
    ) -> None:
        first_rejected = None
        for index, name in enumerate(self._correlation):
            raw = found[index]
            if raw is None:
                continue
            if is_valid_id(raw):
                incoming.correlation_id = raw.decode("ascii")
                incoming.response_header = name
                return
            incoming.reject(name.decode("ascii"), raw)
            first_rejected = first_rejected or name
        if first_rejected is not None:
            incoming.response_header = first_rejected

    def _session(
        self,
        header: bytes | None,
        cookie: bytes | None,
        query: bytes,
        incoming: Incoming,
    ) -> str | None:
        sources = (
            ("header", header),
            ("cookie", _cookie(cookie, self._session_cookie)),
            ("query", _parameter(query, self._session_query)),
        )
        return _first_valid("session_id", sources, incoming)

    def _investigation(
        self, header: bytes | None, query: bytes, incoming: Incoming
    ) -> str | None:
        sources = (
            ("header", header),
            ("query", _parameter(query, self._investigation_query)),
        )
        return _first_valid("investigation_id", sources, incoming)

    def _client_ip(self, scope: Scope, forwarded: bytes | None) -> str | None:
        client = scope.get("client")
        host: str | None = client[0] if client else None
        if forwarded is None or host is None:
            return host
        if not self._proxies.trust(host):
            return host
        hops = forwarded.decode("latin-1").split(",")[-_MAX_HOPS:]
        for hop in reversed(hops):
            address = hop.strip()
            if not _is_address(address):
                return host
            if not self._proxies.trust(address):
                return address
            host = address
        return host


def _first_valid(
    name: str,
    sources: tuple[tuple[str, bytes | None], ...],
    incoming: Incoming,
) -> str | None:
    for where, raw in sources:
        if raw is None:
            continue
        if is_valid_id(raw):
            return raw.decode("ascii")
        incoming.reject(f"{name}:{where}", raw)
    return None


def _cookie(cookie: bytes | None, name: bytes | None) -> bytes | None:
    if cookie is None or name is None or name not in cookie:
        return None
    for pair in cookie.split(b";"):
        key, sep, value = pair.partition(b"=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == 0x22:
                value = value[1:-1]
            return value
    return None


def _parameter(query: bytes, name: bytes | None) -> bytes | None:
    if not query or name is None or name not in query:
        return None
    for pair in query.split(b"&"):
        key, sep, value = pair.partition(b"=")
        if sep and key == name:
            if b"%" in value or b"+" in value:
                value = unquote_to_bytes(value.replace(b"+", b" "))
            return value
    return None
