"""The address guard: an SSRF table of address forms, every one refused before any connection.

Each form is checked twice: by ``AddressPolicy.vet`` directly, and through the real
``webfetch`` tool with a recording network backend, which must open no connection at all.
Names resolve through a table; nothing here uses real DNS or leaves loopback.
"""

from ipaddress import ip_address

import httpx
import pytest

from opencode.tools.base import ToolContext, ToolError
from opencode.tools.netguard import (
    AddressPolicy,
    AddressRefused,
    HostNotFound,
    parse_ip,
    refusal_reason,
    system_resolver,
)
from opencode.tools.webfetch import WebFetch, WebFetchParams
from tests.fakes.website import RecordingNetwork, TableResolver

NAMES = {
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "v6-loopback.test": ["::1"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],  # one bad answer spoils the name
    "cgnat.test": ["100.100.100.200"],  # Alibaba Cloud's metadata address
    "public.test": ["93.184.216.34"],
}

# (URL host, what it is, the guard's refusal with {host} for the host as given);
# every one must be refused
SSRF_TABLE = [
    ("127.0.0.1", "loopback", "{host} is a loopback address"),
    ("127.1", "loopback, short form", "{host} (127.0.0.1) is a loopback address"),
    ("127.0.1", "loopback, three parts", "{host} (127.0.0.1) is a loopback address"),
    ("2130706433", "loopback, decimal", "{host} (127.0.0.1) is a loopback address"),
    ("0x7f000001", "loopback, hex", "{host} (127.0.0.1) is a loopback address"),
    ("0x7f.1", "loopback, hex short form", "{host} (127.0.0.1) is a loopback address"),
    ("0x7F.0.0.1", "loopback, upper-case hex part", "{host} (127.0.0.1) is a loopback address"),
    ("0177.0.0.1", "loopback, octal", "{host} (127.0.0.1) is a loopback address"),
    ("017700000001", "loopback, octal whole", "{host} (127.0.0.1) is a loopback address"),
    ("127.0.0.1.", "loopback, trailing dot", "{host} (127.0.0.1) is a loopback address"),
    ("127.255.255.254", "loopback, end of 127/8", "{host} is a loopback address"),
    ("0.0.0.0", "unspecified", "{host} is an unspecified address"),
    ("0", "unspecified, short form", "{host} (0.0.0.0) is an unspecified address"),
    ("10.0.0.1", "private 10/8", "{host} is a private address"),
    ("172.16.5.4", "private 172.16/12", "{host} is a private address"),
    ("192.168.1.1", "private 192.168/16", "{host} is a private address"),
    (
        "169.254.169.254",
        "cloud metadata",
        "{host} is a link-local address (where cloud metadata services live)",
    ),
    (
        "2852039166",
        "cloud metadata, decimal",
        "{host} (169.254.169.254) is a link-local address (where cloud metadata services live)",
    ),
    (
        "0xa9.0xfe.0xa9.0xfe",
        "cloud metadata, hex parts",
        "{host} (169.254.169.254) is a link-local address (where cloud metadata services live)",
    ),
    (
        "0251.0376.0251.0376",
        "cloud metadata, octal parts",
        "{host} (169.254.169.254) is a link-local address (where cloud metadata services live)",
    ),
    (
        "169.254.43518",
        "cloud metadata, short form",
        "{host} (169.254.169.254) is a link-local address (where cloud metadata services live)",
    ),
    ("100.64.0.1", "carrier-grade NAT", "{host} is a carrier-grade NAT address"),
    ("100.100.100.200", "carrier-grade NAT metadata", "{host} is a carrier-grade NAT address"),
    ("224.0.0.1", "multicast", "{host} is a multicast address"),
    ("239.255.255.250", "multicast (SSDP)", "{host} is a multicast address"),
    ("240.0.0.1", "reserved", "{host} is a reserved address"),
    ("255.255.255.255", "broadcast", "{host} is a reserved address"),
    ("198.18.0.1", "benchmarking", "{host} is a private address"),
    ("192.0.0.1", "IETF protocol assignments", "{host} is a private address"),
    ("[::1]", "IPv6 loopback", "{host} is a loopback address"),
    ("[0:0:0:0:0:0:0:1]", "IPv6 loopback, long form", "{host} (::1) is a loopback address"),
    ("[::]", "IPv6 unspecified", "{host} is an unspecified address"),
    (
        "[::ffff:127.0.0.1]",
        "IPv4-mapped loopback",
        "{host} (::ffff:7f00:1) is an IPv6 form of 127.0.0.1, a loopback address",
    ),
    (
        "[::ffff:7f00:1]",
        "IPv4-mapped loopback, hex",
        "{host} is an IPv6 form of 127.0.0.1, a loopback address",
    ),
    (
        "[0:0:0:0:0:ffff:a9fe:a9fe]",
        "IPv4-mapped cloud metadata",
        "{host} (::ffff:a9fe:a9fe) is an IPv6 form of 169.254.169.254, a link-local address (where cloud metadata services live)",
    ),
    (
        "[::ffff:10.0.0.1]",
        "IPv4-mapped private",
        "{host} (::ffff:a00:1) is an IPv6 form of 10.0.0.1, a private address",
    ),
    (
        "[::127.0.0.1]",
        "IPv4-compatible loopback",
        "{host} (::7f00:1) is an IPv6 form of 127.0.0.1, a loopback address",
    ),
    (
        "[::ffff:0:127.0.0.1]",
        "IPv4-translated loopback",
        "{host} (::ffff:0:7f00:1) is an IPv6 form of 127.0.0.1, a loopback address",
    ),
    (
        "[64:ff9b::10.0.0.1]",
        "NAT64 of a private address",
        "{host} (64:ff9b::a00:1) is an IPv6 form of 10.0.0.1, a private address",
    ),
    (
        "[64:ff9b::a9fe:a9fe]",
        "NAT64 of cloud metadata",
        "{host} is an IPv6 form of 169.254.169.254, a link-local address (where cloud metadata services live)",
    ),
    (
        "[2002:7f00:1::1]",
        "6to4 of loopback",
        "{host} is an IPv6 form of 127.0.0.1, a loopback address",
    ),
    (
        "[2002:a9fe:a9fe::1]",
        "6to4 of cloud metadata",
        "{host} is an IPv6 form of 169.254.169.254, a link-local address (where cloud metadata services live)",
    ),
    (
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "Teredo of loopback",
        "{host} is an IPv6 form of 127.0.0.1, a loopback address",
    ),
    (
        "[fe80::1]",
        "IPv6 link-local",
        "{host} is a link-local address (where cloud metadata services live)",
    ),
    (
        "[fe80::1%25eth0]",
        "IPv6 link-local with zone",
        "{host} (fe80::1%eth0) is a link-local address (where cloud metadata services live)",
    ),
    ("[fc00::1]", "IPv6 unique local", "{host} is a private address"),
    ("[fd00:ec2::254]", "IPv6 unique local (AWS metadata)", "{host} is a private address"),
    ("[fec0::1]", "IPv6 site-local", "{host} is a site-local address"),
    ("[ff02::1]", "IPv6 multicast", "{host} is a multicast address"),
    ("[2001:db8::1]", "IPv6 documentation", "{host} is a private address"),
    ("localhost", "localhost", "{host} is a loopback name"),
    ("LOCALHOST", "localhost, upper case", "{host} is a loopback name"),
    ("localhost.", "localhost, trailing dot", "{host} is a loopback name"),
    ("foo.localhost", "a localhost subdomain", "{host} is a loopback name"),
    ("a.b.localhost.", "a localhost subdomain, trailing dot", "{host} is a loopback name"),
    ("localhost.localdomain", "localhost.localdomain", "{host} is a loopback name"),
    ("internal.test", "a name for a private address", "{host} (10.1.2.3) is a private address"),
    (
        "metadata.test",
        "a name for cloud metadata",
        "{host} (169.254.169.254) is a link-local address (where cloud metadata services live)",
    ),
    ("v6-loopback.test", "a name for IPv6 loopback", "{host} (::1) is a loopback address"),
    (
        "mixed.test",
        "a name with one public and one loopback address",
        "{host} (127.0.0.1) is a loopback address",
    ),
    (
        "cgnat.test",
        "a name for a carrier-grade NAT address",
        "{host} (100.100.100.200) is a carrier-grade NAT address",
    ),
    ("1.2.3.4.5", "too many parts", "{host!r} is not a valid IPv4 address"),
    ("127.0.0.256", "a part out of range", "{host!r} is not a valid IPv4 address"),
    ("0x100000000", "a number out of range", "{host!r} is not a valid IPv4 address"),
    ("%31%32%37.0.0.1", "percent-encoded", "{host!r} is not a valid IPv4 address"),
    ("08.0.0.1", "an invalid octal part", "{host!r} is not a valid IPv4 address"),
]
assert len(SSRF_TABLE) >= 25 and len({host for host, *_ in SSRF_TABLE}) == len(SSRF_TABLE)

# hosts httpx itself rejects as a URL, before the guard sees them (leading zeros, parts > 255)
REJECTED_BY_THE_URL_PARSER = {"0177.0.0.1", "0251.0376.0251.0376", "127.0.0.256", "08.0.0.1"}

every_form = pytest.mark.parametrize(
    ("host", "what", "refusal"), SSRF_TABLE, ids=[row[0] for row in SSRF_TABLE]
)


@every_form
async def test_every_form_is_refused_by_the_policy(host, what, refusal):
    resolver = TableResolver(NAMES)
    bare = host.strip("[]")
    with pytest.raises(AddressRefused) as info:
        await AddressPolicy(resolver=resolver).vet(bare, 80)
    assert str(info.value) == refusal.format(host=bare)
    assert all(name in NAMES for name in resolver.lookups)  # only table names were looked up


def expected_webfetch_error(url: str, host: str, refusal: str) -> str:
    if host in REJECTED_BY_THE_URL_PARSER:
        return f"Invalid URL {url!r}: Invalid IPv4 address: {host!r}."
    parsed = httpx.URL(url)  # the guard sees the host as the URL parser normalised it
    return (
        f"Refused to fetch {parsed}: {refusal.format(host=parsed.host)}. webfetch only connects "
        "to public internet addresses (the server allows private ones only when "
        "OPENCODE_WEBFETCH_ALLOW_PRIVATE=true)."
    )


@every_form
async def test_every_form_is_refused_by_webfetch_before_connecting(host, what, refusal):
    network = RecordingNetwork()
    tool = WebFetch(policy=AddressPolicy(resolver=TableResolver(NAMES)), network=network)
    for url in (f"http://{host}/latest/meta-data/", f"https://{host}:8443/"):
        with pytest.raises(ToolError) as info:
            await tool.run(WebFetchParams(url=url), ToolContext("ses_1", "msg_1", "call_1"))
        assert str(info.value) == expected_webfetch_error(url, host, refusal)
    assert network.connections == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("8.8.8.8", "8.8.8.8"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
        ("example.com", None),
        ("0x7f.example", None),
        ("1.2.3.example", None),
    ],
)
def test_literal_addresses_are_parsed_like_inet_aton(host, expected):
    parsed = parse_ip(host)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
    + ["2002:808:808::1"],
)
def test_public_addresses_have_no_refusal_reason(address):
    assert refusal_reason(ip_address(address)) is None


async def test_public_addresses_and_names_pass_without_any_connection():
    policy = AddressPolicy(resolver=TableResolver(NAMES))
    assert await policy.vet("8.8.8.8", 443) == [ip_address("8.8.8.8")]
    assert await policy.vet("2606:4700:4700::1111", 443) == [ip_address("2606:4700:4700::1111")]
    assert await policy.vet("public.test.", 443) == [ip_address("93.184.216.34")]


async def test_refusals_say_what_the_address_is():
    policy = AddressPolicy(resolver=TableResolver(NAMES))
    cases = {
        "169.254.169.254": "169.254.169.254 is a link-local address (where cloud metadata "
        "services live)",
        "0x7f.1": "0x7f.1 (127.0.0.1) is a loopback address",
        "internal.test": "internal.test (10.1.2.3) is a private address",
        "100.64.0.1": "100.64.0.1 is a carrier-grade NAT address",
        "::ffff:10.0.0.1": "::ffff:10.0.0.1 (::ffff:a00:1) is an IPv6 form of 10.0.0.1, "
        "a private address",
        "240.0.0.1": "240.0.0.1 is a reserved address",
        "foo.localhost": "foo.localhost is a loopback name",
        "1.2.3.4.5": "'1.2.3.4.5' is not a valid IPv4 address",
    }
    for host, message in cases.items():
        with pytest.raises(AddressRefused) as info:
            await policy.vet(host, 80)
        assert str(info.value) == message


async def test_an_exempt_endpoint_is_exactly_one_address_and_port():
    policy = AddressPolicy(
        allowed_endpoints=frozenset({("127.0.0.1", 8080)}), resolver=TableResolver(NAMES)
    )
    assert await policy.vet("127.0.0.1", 8080) == [ip_address("127.0.0.1")]
    assert await policy.vet("2130706433", 8080) == [ip_address("127.0.0.1")]
    for host, port in [("127.0.0.1", 8081), ("127.0.0.2", 8080), ("::1", 8080)]:
        with pytest.raises(AddressRefused):
            await policy.vet(host, port)
    with pytest.raises(AddressRefused, match="loopback name"):
        await policy.vet("localhost", 8080)


async def test_allow_private_lifts_every_address_check():
    resolver = TableResolver(NAMES)
    policy = AddressPolicy(allow_private=True, resolver=resolver)
    assert await policy.vet("10.0.0.1", 80) == [ip_address("10.0.0.1")]
    assert await policy.vet("metadata.test", 80) == [ip_address("169.254.169.254")]
    with pytest.raises(HostNotFound):
        await policy.vet("localhost", 80)  # a name again: it goes to the resolver
    assert resolver.lookups == ["metadata.test", "localhost"]


async def test_invalid_names_are_refused_without_a_lookup():
    resolver = TableResolver(NAMES)
    for host in ("exa mple.com", "a..b", "evil.com\x00.test", "bad/host"):
        with pytest.raises(AddressRefused, match="not a valid host name"):
            await AddressPolicy(resolver=resolver).vet(host, 80)
    assert resolver.lookups == []


async def test_the_system_resolver_reads_loopback_names_locally():
    addresses = await system_resolver("localhost", 80)  # /etc/hosts, no DNS query
    assert addresses and all(address.is_loopback for address in addresses)
