"""``webfetch`` against a real web site on loopback, with the address guard on.

The guard is configured, not bypassed: the policy exempts exactly the site's ``(ip, port)``,
and ``RecordingNetwork`` records every connection, so refused fetches are shown to have
opened none. Names resolve through an injected resolver; nothing here uses real DNS.
"""

import json
import time

import pytest

from opencode.core.settings import Settings
from opencode.tools.base import ToolContext, ToolError
from opencode.tools.netguard import AddressPolicy
from opencode.tools.webfetch import MAX_REDIRECTS, WebFetch, WebFetchParams
from tests.e2e.server import free_port
from tests.fakes.website import (
    JSON_BODY,
    LONG_TEXT,
    PLAIN_TEXT,
    FakeWebsite,
    RecordingNetwork,
    TableResolver,
)

CONTEXT = ToolContext("ses_1", "msg_1", "call_1")


@pytest.fixture
def network() -> RecordingNetwork:
    return RecordingNetwork()


def guarded(site: FakeWebsite, network: RecordingNetwork, **options) -> WebFetch:
    """The tool with the guard on, exempting only the site's own address and port."""
    policy = AddressPolicy(
        allowed_endpoints=frozenset({("127.0.0.1", site.port)}),
        resolver=options.pop("resolver", TableResolver({})),
    )
    return WebFetch(policy=policy, network=network, **options)


async def fetch(tool: WebFetch, url: str, **params) -> str:
    return await tool.run(WebFetchParams(url=url, **params), CONTEXT)


# ---- content ----


async def test_html_becomes_clean_markdown(site, network):
    result = await fetch(guarded(site, network), site.url("/page"))

    header, body = result.split("\n\n", 1)
    assert header == f"URL: {site.url('/page')}\nTitle: Fake Docs - Getting started"
    assert body.startswith("# Getting started")
    for expected in (
        "Install the **tool** with `pip install thing`.",
        f"[the next page]({site.url('/docs/next')})",  # relative links made absolute
        "## Steps",
        "- First step\n- Second step",
        '```\ndef hello():\n    print("hello")\n```',
        "| alpha | 1 |",
    ):
        assert expected in body
    assert "NOISE" not in result and "color: red" not in result and "tracking" not in result
    assert network.connections == [("127.0.0.1", site.port)]
    request = site.requests[0]
    assert request.headers["accept"].startswith("text/markdown")
    assert "webfetch" in request.headers["user-agent"]


async def test_text_format_is_plain_readable_text(site, network):
    result = await fetch(guarded(site, network), site.url("/page"), format="text")

    header, body = result.split("\n\n", 1)
    assert header == f"URL: {site.url('/page')}\nTitle: Fake Docs - Getting started"
    assert body.split("\n\n") == [
        "Getting started",
        # the converter keeps a line break of the HTML source inside a paragraph
        "Install the tool with pip install thing.\n Then read the next page.",
        "Steps",
        "- First step\n- Second step",
        'def hello():\n    print("hello")',  # preformatted text keeps its indentation
        "Name\tValue\nalpha\t1",
    ]
    assert "#" not in result and "**" not in result and "NOISE" not in result


async def test_html_format_is_the_raw_page(site, network):
    result = await fetch(guarded(site, network), site.url("/page"), format="html")
    assert result.startswith(f"URL: {site.url('/page')}\n\n<!doctype html>")
    assert '<script>var tracking = "SCRIPT-NOISE";</script>' in result


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/latin1", "Crème brûlée"),  # the charset of the Content-Type header
        ("/meta-charset", "Crème brûlée “chaud”"),  # <meta charset>, none in the header
        ("/bom", "Crème brûlée “chaud”"),  # a UTF-8 BOM beats the header's iso-8859-1
        ("/bom-utf16", "Crème brûlée “chaud”"),
    ],
)
@pytest.mark.parametrize("fmt", ["markdown", "text"])
async def test_the_page_is_decoded_with_its_charset(site, network, path, text, fmt):
    result = await fetch(guarded(site, network), site.url(path), format=fmt)
    assert result == f"URL: {site.url(path)}\nTitle: Café\n\n{text}"


async def test_text_passes_through_unchanged(site, network):
    result = await fetch(guarded(site, network), site.url("/plain"))
    assert result == f"URL: {site.url('/plain')}\n\n{PLAIN_TEXT}"


async def test_json_is_pretty_printed(site, network):
    result = await fetch(guarded(site, network), site.url("/data.json"))
    pretty = json.dumps(json.loads(JSON_BODY), indent=2)
    assert result == f"URL: {site.url('/data.json')}\n\n{pretty}"


@pytest.mark.parametrize(
    ("path", "shown"),
    [("/doc.pdf", "application/pdf"), ("/blob", "application/octet-stream"), ("/untyped", "none given")],
)  # fmt: skip
async def test_other_content_types_are_unsupported(site, network, path, shown):
    with pytest.raises(ToolError) as info:
        await fetch(guarded(site, network), site.url(path))
    assert str(info.value) == (
        f"Unsupported content type ({shown}) at {site.url(path)}: "
        "webfetch reads HTML, text and JSON."
    )


async def test_long_output_is_truncated_with_a_note(site, network):
    result = await fetch(guarded(site, network), site.url("/long"))
    total = len(f"URL: {site.url('/long')}\n\n") + len(LONG_TEXT)
    kept, note = result.rsplit("\n\n", 1)
    assert len(kept) == 50_000
    assert note == f"[Output truncated: first 50,000 of {total:,} characters shown.]"


async def test_settings_configure_the_tool(site):
    settings = Settings(webfetch_max_chars=100, webfetch_allow_private=True)
    result = await fetch(WebFetch.from_settings(settings), site.url("/long"))
    kept, note = result.rsplit("\n\n", 1)
    assert len(kept) == 100 and note.startswith("[Output truncated: first 100 of ")


# ---- errors the model can read ----


async def test_http_errors_report_status_and_an_excerpt(site, network):
    tool = guarded(site, network)
    with pytest.raises(ToolError) as info:
        await fetch(tool, site.url("/missing"))
    assert str(info.value) == (
        f"HTTP 404 Not Found from {site.url('/missing')}. "
        "The response begins: Not Found No page lives here."
    )
    with pytest.raises(ToolError, match=r"^HTTP 500 Internal Server Error from .*/broken\. "):
        await fetch(tool, site.url("/broken"))


async def test_a_huge_body_is_refused_while_streaming(site, network):
    for path in ("/huge", "/huge-declared"):
        with pytest.raises(ToolError) as info:
            await fetch(guarded(site, network), site.url(path))
        assert str(info.value).startswith(
            f"The response from {site.url(path)} is larger than 5 MiB; webfetch stopped reading"
        )


async def test_a_slow_page_times_out_on_the_whole_fetch(site, network):
    started = time.monotonic()
    with pytest.raises(ToolError) as info:
        await fetch(guarded(site, network), site.url("/slow"), timeout=0.5)
    assert str(info.value).startswith(f"Timed out after 0.5 s fetching {site.url('/slow')}.")
    assert time.monotonic() - started < 3


async def test_connection_failures_are_tool_errors(network):
    port = free_port()  # nothing listens there
    policy = AddressPolicy(allowed_endpoints=frozenset({("127.0.0.1", port)}))
    with pytest.raises(
        ToolError, match=rf"^Could not fetch http://127.0.0.1:{port}/: ConnectError"
    ):
        await fetch(WebFetch(policy=policy, network=network), f"http://127.0.0.1:{port}/")


async def test_an_unknown_host_is_a_tool_error(site, network):
    with pytest.raises(ToolError) as info:
        await fetch(guarded(site, network), "https://nxdomain.test/")
    assert str(info.value) == (
        "Could not fetch https://nxdomain.test/: could not resolve 'nxdomain.test': "
        "Name or service not known. Check the host name."
    )
    assert network.connections == []


NOT_A_FULL_URL = (
    "Cannot fetch {!r}: give a full http:// or https:// URL, e.g. https://example.com/page."
)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (url, NOT_A_FULL_URL.format(url))
        for url in ["example.com/page", "ftp://example.com/file", "file:///etc/passwd", "http://"]
        + ["https:///path"]
    ]
    + [("http://[::1/", "Invalid URL 'http://[::1/': Invalid port: ':1'.")],
)
async def test_only_full_http_urls_are_fetched(network, url, error):
    with pytest.raises(ToolError) as info:
        await fetch(WebFetch(network=network), url)
    assert str(info.value) == error
    assert network.connections == []


# ---- redirects ----


async def test_redirects_are_followed_up_to_the_limit(site, network):
    result = await fetch(guarded(site, network), site.url(f"/chain/{MAX_REDIRECTS}"))
    assert result.startswith(f"URL: {site.url('/chain/0')}\n") and "End of the chain" in result
    assert site.paths == [f"/chain/{n}" for n in range(MAX_REDIRECTS, -1, -1)]


async def test_one_redirect_too_many_is_refused(site, network):
    with pytest.raises(ToolError) as info:
        await fetch(guarded(site, network), site.url("/chain/6"))
    assert str(info.value) == (
        f"Too many redirects: stopped after 5 starting at {site.url('/chain/6')} "
        f"(next: {site.url('/chain/0')})."
    )
    assert site.paths == [f"/chain/{n}" for n in range(6, 0, -1)]


async def test_a_redirect_loop_is_refused(site, network):
    with pytest.raises(ToolError, match="^Too many redirects"):
        await fetch(guarded(site, network), site.url("/loop"))
    assert site.paths == ["/loop"] * (MAX_REDIRECTS + 1)


async def test_a_relative_redirect_is_resolved(site, network):
    result = await fetch(guarded(site, network), site.url("/relative"))
    assert result.startswith(f"URL: {site.url('/page')}\nTitle: Fake Docs")


@pytest.mark.parametrize(
    ("path", "target", "reason"),
    [
        ("/to-private", "http://10.0.0.1/", "10.0.0.1 is a private address"),
        (
            "/to-metadata",
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local address (where cloud metadata services live)",
        ),
        (
            "/to-metadata-decimal",
            "http://2852039166/latest/meta-data/",
            "2852039166 (169.254.169.254) is a link-local address",
        ),
        ("/to-localhost", "http://localhost:{port}/page", "localhost is a loopback name"),
        ("/to-other-port", "http://127.0.0.1:1/", "127.0.0.1 is a loopback address"),
        (
            "/to-mapped-loopback",
            "http://[::ffff:127.0.0.1]:{port}/page",
            "::ffff:127.0.0.1 (::ffff:7f00:1) is an IPv6 form of 127.0.0.1, a loopback address",
        ),
    ],
)
async def test_every_redirect_hop_is_vetted(site, network, path, target, reason):
    with pytest.raises(ToolError) as info:
        await fetch(guarded(site, network), site.url(path))
    message = str(info.value)
    assert message.startswith(f"Refused to fetch {target.format(port=site.port)}: {reason}")
    assert "only connects to public internet addresses" in message
    assert site.paths == [path]
    assert network.connections == [("127.0.0.1", site.port)]  # only the site itself


async def test_a_redirect_to_another_scheme_is_refused(site, network):
    with pytest.raises(ToolError) as info:
        await fetch(guarded(site, network), site.url("/to-file"))
    assert str(info.value) == (
        f"Refused a redirect from {site.url('/to-file')} to 'file:///etc/passwd': "
        "only http and https URLs can be fetched."
    )


# ---- the address that is vetted is the address that is connected to ----


async def test_each_connection_resolves_once_and_uses_the_vetted_address(site, network):
    resolver = TableResolver({"docs.test": ["127.0.0.1"]})
    tool = guarded(site, network, resolver=resolver)

    result = await fetch(tool, f"http://docs.test:{site.port}/chain/2")

    assert "End of the chain" in result
    # three requests; each connection: one lookup (ours), then a connection to its answer
    assert site.paths == ["/chain/2", "/chain/1", "/chain/0"]
    assert resolver.lookups == ["docs.test"] * len(network.connections)
    assert set(network.connections) == {("127.0.0.1", site.port)}
    assert {request.headers["host"] for request in site.requests} == {f"docs.test:{site.port}"}


async def test_a_name_with_any_refused_address_is_refused(site, network):
    resolver = TableResolver({"rebind.test": ["127.0.0.1", "10.0.0.7"]})
    with pytest.raises(ToolError, match=r"rebind\.test \(10\.0\.0\.7\) is a private address"):
        await fetch(guarded(site, network, resolver=resolver), f"http://rebind.test:{site.port}/")
    assert network.connections == [] and site.requests == []


async def test_allow_private_lifts_the_check(site, network):
    tool = WebFetch(policy=AddressPolicy(allow_private=True), network=network)
    result = await fetch(tool, site.url("/page"))
    assert "# Getting started" in result


async def test_the_default_tool_refuses_loopback(site):
    tool = WebFetch.from_settings(Settings())
    with pytest.raises(ToolError, match=r"^Refused to fetch .*127\.0\.0\.1 is a loopback address"):
        await fetch(tool, site.url("/page"))
    assert site.requests == []
