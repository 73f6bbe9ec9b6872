"""What stops a web page from driving this server through the user's browser.

A server on a laptop with no password answers anything that reaches 127.0.0.1. A page on
another site can reach it two ways: by DNS rebinding (its own name resolves to 127.0.0.1, so
the browser sends ``Host: evil.example``) or by a cross-site request that needs no preflight
(a form POST). ``RequestGuardMiddleware`` refuses the first by an allow-list of ``Host`` names
and the second by the ``Origin`` of state-changing requests. ``SecurityHeadersMiddleware``
keeps answers from being sniffed, framed or leaking the URL in a ``Referer``.

Pure ASGI (not ``BaseHTTPMiddleware``) so SSE responses stream through untouched.
"""

import base64
import hashlib
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencode.api.errors import error_response, internal_error_response
from opencode.core.settings import Settings

log = logging.getLogger(__name__)

HOST_EXEMPT_PATHS = frozenset({"/health"})  # orchestrators probe by the pod's IP
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "*.localhost")
HOSTED_HOSTS = ("*.hf.space",)  # Hugging Face Spaces, where the Docker image runs
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class HostAllowList:
    """Host names (``example.com``), wildcards (``*.example.com``: its subdomains) or ``*``."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    any_host: bool = False

    @classmethod
    def of(cls, entries: Iterable[str]) -> "HostAllowList":
        names: set[str] = set()
        suffixes: list[str] = []
        any_host = False
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                any_host = True
            elif entry.startswith("*."):
                suffixes.append("." + _host_name(entry[2:]))
            elif entry:
                names.add(_host_name(entry))
        return cls(frozenset(names), tuple(suffixes), any_host)

    def allows(self, host: str) -> bool:
        if self.any_host:
            return True
        name = _host_name(host)
        return name in self.names or name.endswith(self.suffixes)


def allowed_hosts(settings: Settings) -> HostAllowList:
    """``OPENCODE_ALLOWED_HOSTS``, or the names this machine is reached by. Resolving this
    machine's addresses can block, so this runs once, when the app is built."""
    if settings.allowed_hosts:
        return HostAllowList.of(settings.allowed_hosts)
    entries = [*LOCAL_HOSTS, *HOSTED_HOSTS, *_machine_names()]
    if settings.host.strip() not in _ANY_ADDRESS:
        entries.append(settings.host)
    return HostAllowList.of(entries)


def _machine_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()} - {""}
    addresses: set[str] = set()
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None)
        except OSError:
            continue  # a host name that does not resolve is still a name to accept
        addresses.update(str(info[4][0]).partition("%")[0] for info in infos)
    return names | addresses


class RequestGuardMiddleware:
    """400 ``bad_host`` for a ``Host`` outside the allow-list (``/health`` exempt); 403
    ``forbidden`` for a POST/PUT/PATCH/DELETE whose ``Origin`` is neither this server (same
    host and port as ``Host``) nor allowed by CORS. ``Origin: null`` (sandboxed frames, files)
    is cross-site. Requests without ``Origin`` (curl, SDKs) are not browsers' and pass."""

    def __init__(self, app: ASGIApp, *, hosts: HostAllowList, cors_origins: list[str]) -> None:
        self.app = app
        self._hosts = hosts
        self._any_origin = "*" in cors_origins
        self._origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = _headers(scope)
        host = headers.get("host")
        exempt = scope["path"] in HOST_EXEMPT_PATHS
        if host is not None and not exempt and not self._hosts.allows(host):
            return _bad_host(host)
        origin = headers.get("origin")
        method = scope["method"]
        if origin is None or method not in UNSAFE_METHODS:
            return None
        if self._any_origin or origin in self._origins or _same_origin(origin, host):
            return None
        return _cross_site(method, origin)


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as our JSON error, not text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return error_response(
            400,
            "cors_rejected",
            f"CORS preflight refused (disallowed {refused}): the origins allowed to call this "
            "server from a browser are set by OPENCODE_CORS_ORIGINS.",
            headers=headers,
        )


class SecurityHeadersMiddleware:
    """``nosniff``, ``no-referrer``, no framing, and a Content-Security-Policy on every
    response: ``default-src 'none'`` for the API, and for HTML (``/docs``, ``/redoc``) exactly
    what Swagger UI and ReDoc load, their inline scripts allowed by hash. An exception that
    escapes the app becomes our JSON 500 here, so it carries the headers too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        html_start: Message | None = None
        html_body: list[bytes] = []

        async def secured_send(message: Message) -> None:
            nonlocal started, html_start
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    html_start = message  # its policy depends on the scripts in the body
                    return
                _secure(headers, API_POLICY)
            elif message["type"] == "http.response.body" and html_start is not None:
                html_body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(html_body)
                _secure(MutableHeaders(scope=html_start), html_policy(body))
                await send(html_start)
                message = {"type": "http.response.body", "body": body, "more_body": False}
                html_start = None
            await send(message)

        try:
            await self.app(scope, receive, secured_send)
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await internal_error_response()(scope, receive, secured_send)


API_POLICY = "default-src 'none'; frame-ancestors 'none'"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def html_policy(body: bytes) -> str:
    """What FastAPI's Swagger UI and ReDoc pages need: their bundles and styles from jsDelivr,
    fonts from Google, the favicon from fastapi.tiangolo.com, ``data:`` images, ReDoc's search
    worker (a ``blob:``), the spec from this server, and the page's own inline scripts."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(body)
    ]
    return "; ".join(
        (
            "default-src 'none'",
            " ".join(("script-src https://cdn.jsdelivr.net", *hashes)),
            "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'",
            "font-src https://fonts.gstatic.com",
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly "
            "https://validator.swagger.io",
            "connect-src 'self'",
            "worker-src blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _secure(headers: MutableHeaders, policy: str) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", policy)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _split_host(value: str) -> tuple[str, int | None]:
    """``Host`` or an allow-list entry -> (name, port): ``[::1]:7860``, ``Example.COM.``."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""  # a bare IPv6 address, or no port
    return _canonical(name.rstrip(".")), int(port) if port.isdigit() else None


def _host_name(value: str) -> str:
    return _split_host(value)[0]


def _canonical(name: str) -> str:
    try:
        return ipaddress.ip_address(name).compressed  # one spelling per address
    except ValueError:
        return name


def _same_origin(origin: str, host: str | None) -> bool:
    """``Origin``'s host and port are the request's ``Host`` (ports defaulting by the origin's
    scheme: behind a TLS proxy the request itself arrives as plain http)."""
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if not parts.scheme or not parts.hostname:
        return False  # "null", or not an origin at all
    default = _DEFAULT_PORTS.get(parts.scheme)
    host_name, host_port = _split_host(host)
    return (_canonical(parts.hostname), origin_port or default) == (
        host_name,
        host_port or default,
    )


def _bad_host(host: str) -> Response:
    return error_response(
        400,
        "bad_host",
        f"This server does not answer to the host name {host!r}. If that is how you reach "
        "it, add the name to OPENCODE_ALLOWED_HOSTS (comma-separated; '*.example.com' for "
        "subdomains, '*' for any host).",
    )


def _cross_site(method: str, origin: str) -> Response:
    return error_response(
        403,
        "forbidden",
        f"A {method} from the web page at {origin!r} is refused: only this server's own pages "
        "and the origins in OPENCODE_CORS_ORIGINS may change things from a browser.",
    )
