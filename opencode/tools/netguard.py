"""Outbound HTTP that only reaches public internet addresses (no server-side request forgery).

The check sits where the socket is opened: ``GuardedBackend`` is an httpcore network backend
whose ``connect_tcp`` parses or resolves the host itself, vets every address and connects to
the vetted address. There is no second DNS lookup that a rebinding name could answer
differently, no proxy that would connect on our behalf, and every redirect hop opens its
connections through the same backend. TLS still verifies the original host name: httpcore
hands ``server_hostname`` to ``start_tls`` separately from the address it connected to.
"""

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import httpcore
import httpx

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]


class AddressRefused(Exception):
    """The host is, or resolves to, an address outside the public internet."""


class HostNotFound(Exception):
    """The host name did not resolve."""


_CGNAT = IPv4Network("100.64.0.0/10")
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_LOCALHOST_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
)
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_HTTPCORE_ERRORS = (httpcore.ProtocolError, httpcore.NetworkError, httpcore.TimeoutException)


def refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address ("a loopback address"), or ``None``.

    IPv6 addresses that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4,
    Teredo) are judged by the IPv4 address too, so ``::ffff:127.0.0.1`` is loopback."""
    if isinstance(ip, IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        if reason := refusal_reason(embedded):
            return f"an IPv6 form of {embedded}, {reason}"
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return None  # the connection goes to the public IPv4 address
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (where cloud metadata services live)"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, IPv4Address) and ip in _CGNAT, "a carrier-grade NAT address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (isinstance(ip, IPv6Address) and ip.is_site_local, "a site-local address"),
        (not ip.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def parse_ip(host: str) -> IPAddress | None:
    """The address a URL host denotes literally, or ``None`` for a name.

    Accepts the forms ``inet_aton`` and browsers accept (``127.1``, ``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``) and bracketed IPv6. A host that ends in a number but is no
    valid address (``1.2.3.4.5``, ``999.1``) raises ``AddressRefused`` rather than being
    looked up as a name."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return IPv6Address(host.replace("%25", "%", 1))
        except ValueError:
            raise AddressRefused(f"{host!r} is not a valid IPv6 address") from None
    labels = host.removesuffix(".").split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    numbers = [_label_value(label) for label in labels]
    if len(numbers) > 4 or None in numbers:
        raise AddressRefused(f"{host!r} is not a valid IPv4 address")
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise AddressRefused(f"{host!r} is not a valid IPv4 address")
    value = sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last
    return IPv4Address(value)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host``, in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostNotFound(f"could not resolve {host!r}: {exc.strerror}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound connections may reach.

    ``allow_private`` lifts the check (local development). ``allowed_endpoints`` exempts exact
    ``(ip, port)`` pairs, e.g. a loopback test site. ``resolver`` turns names into addresses;
    it is called once per connection and its answer is what gets connected to."""

    allow_private: bool = False
    allowed_endpoints: frozenset[tuple[str, int]] = frozenset()
    resolver: Resolver = system_resolver

    async def vet(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host``; raises ``AddressRefused`` or
        ``HostNotFound``. A name is refused if any of its addresses is refused."""
        ip = parse_ip(host)
        if ip is not None:
            addresses: Sequence[IPAddress] = [ip]
        else:
            name = _checked_name(host)
            if not self.allow_private and _is_localhost(name):
                raise AddressRefused(f"{host} is a loopback name")
            addresses = await self.resolver(name, port)
            if not addresses:
                raise HostNotFound(f"{host!r} has no addresses")
        for address in addresses:
            self._check(host, address, port)
        return list(addresses)

    def _check(self, host: str, ip: IPAddress, port: int) -> None:
        if self.allow_private or (str(ip), port) in self.allowed_endpoints:
            return
        if reason := refusal_reason(ip):
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise AddressRefused(f"{shown} is {reason}")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses ``policy`` allows."""

    def __init__(
        self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.vet(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every connection goes through ``GuardedBackend``.

    httpx 0.28 offers no public way to give ``AsyncHTTPTransport`` a network backend
    (encode/httpx#3749 is open), so this drives httpcore's public pool directly. It never
    uses a proxy."""

    def __init__(
        self,
        policy: AddressPolicy,
        inner: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            network_backend=GuardedBackend(policy, inner),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


def _httpx_error(exc: Exception) -> httpx.TransportError:
    """The httpx exception of the same name (httpx mirrors httpcore's hierarchy)."""
    mapped = getattr(httpx, type(exc).__name__, None)
    if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
        return mapped(str(exc))
    return httpx.TransportError(str(exc))


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    compatible = ip in _IPV4_COMPATIBLE and int(ip) > 1  # not :: or ::1
    if compatible or ip in _NAT64 or ip in _IPV4_TRANSLATED:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _checked_name(host: str) -> str:
    name = host.strip().lower().removesuffix(".")
    if not _HOSTNAME.fullmatch(name):
        raise AddressRefused(f"{host!r} is not a valid host name")
    return name


def _is_localhost(name: str) -> bool:
    return name in _LOCALHOST_NAMES or name.endswith(".localhost")


def _label_value(label: str) -> int | None:
    """One dotted part of an inet_aton-style IPv4 address: decimal, 0x hex or 0-octal."""
    if not _NUMERIC_LABEL.fullmatch(label):
        return None
    try:
        if label[:2] in ("0x", "0X"):
            return int(label[2:] or "0", 16)
        if len(label) > 1 and label.startswith("0"):
            return int(label, 8)
        return int(label, 10)
    except ValueError:
        return None
