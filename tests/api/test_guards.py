"""Host allow-list, cross-site Origin refusal and security headers, through the real app."""

import base64
import hashlib
import re
import socket
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from opencode.api.guards import API_POLICY, HostAllowList
from tests.api.test_security import basic

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_secured(response, policy: str = API_POLICY) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    assert response.headers["content-security-policy"] == policy


async def session_count(client) -> int:
    return int((await client.get("/session")).headers["x-total-count"])


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:7860", "127.0.0.1:7860", "[::1]:7860", "app.localhost", "LOCALHOST."],
)
async def test_local_hosts_are_allowed_by_default(client, host):
    response = await client.get("/session", headers={"Host": host})
    assert response.status_code == 200, response.text


async def test_this_machines_names_and_spaces_are_allowed_by_default(client):
    for host in (socket.gethostname(), f"{socket.getfqdn()}:8080", "someone-opencode.hf.space"):
        response = await client.get("/session", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:7860", "127.0.0.1.nip.io", "hf.space", "localhost.evil"]
)
async def test_other_hosts_get_400_and_change_nothing(client, host):
    before = await session_count(client)
    response = await client.post("/session", json={"title": "rebound"}, headers={"Host": host})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_host"
    assert repr(host) in body["detail"] and "OPENCODE_ALLOWED_HOSTS" in body["detail"]
    assert_secured(response)
    assert await session_count(client) == before


async def test_health_answers_any_host(client):
    response = await client.get("/health", headers={"Host": "10.1.2.3:7860"})
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_configured_hosts_replace_the_defaults(make_client):
    async with make_client(OPENCODE_ALLOWED_HOSTS="api.example.com, *.corp.example") as client:
        for host, status in [
            ("api.example.com:443", 200),
            ("eu.corp.example", 200),
            ("a.b.corp.example", 200),
            ("corp.example", 400),
            ("localhost", 400),
        ]:
            response = await client.get("/session", headers={"Host": host})
            assert response.status_code == status, host
    async with make_client(OPENCODE_ALLOWED_HOSTS="*") as client:
        assert (await client.get("/session", headers={"Host": "any.thing"})).status_code == 200


async def test_bind_address_is_allowed(make_client):
    async with make_client(OPENCODE_HOST="192.0.2.7") as client:
        assert (await client.get("/session", headers={"Host": "192.0.2.7:7860"})).status_code == 200
        assert (await client.get("/session", headers={"Host": "192.0.2.8"})).status_code == 400


def test_host_entries_ignore_ports_and_spellings():
    hosts = HostAllowList.of(["Example.com:8080", "[::1]", "*.Dev.Example"])
    assert hosts.allows("example.com") and hosts.allows("EXAMPLE.COM:1")
    assert hosts.allows("[0:0:0:0:0:0:0:1]:7860")
    assert hosts.allows("x.dev.example") and not hosts.allows("dev.example")
    assert not hosts.allows("example.com.evil")


async def test_bad_host_is_refused_before_auth(make_client):
    async with make_client(OPENCODE_SERVER_PASSWORD="pw") as client:
        response = await client.get("/session", headers={"Host": "evil.example"})
        assert response.status_code == 400 and response.json()["error"] == "bad_host"


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://localhost:9999", "https://localhost.evil"]
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/session", {"title": "x"}),
        ("PATCH", "/session/{id}", {"title": "hijacked"}),
        ("DELETE", "/session/{id}", None),
    ],
)
async def test_cross_site_changes_are_403_and_change_nothing(client, origin, method, path, body):
    session = (await client.post("/session", json={"title": "mine"})).json()
    url = path.format(id=session["id"])
    response = await client.request(
        method, url, json=body, headers={"Origin": origin, "Host": "localhost:7860"}
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden" and repr(origin) in response.json()["detail"]
    assert_secured(response)
    assert await session_count(client) == 1
    assert (await client.get(f"/session/{session['id']}")).json()["title"] == "mine"


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://localhost:7860", "localhost:7860"),
        ("http://LOCALHOST:7860", "localhost:7860"),
        ("https://me.hf.space", "me.hf.space"),  # TLS ends at the proxy: no port either side
        ("http://localhost", "localhost:80"),
        ("http://[::1]:7860", "[::1]:7860"),
    ],
)
async def test_same_origin_changes_pass(client, origin, host):
    response = await client.post("/session", headers={"Origin": origin, "Host": host})
    assert response.status_code == 201, response.text


async def test_requests_without_origin_and_reads_pass(client):
    assert (await client.post("/session")).status_code == 201  # curl, SDKs
    read = await client.get("/session", headers={"Origin": "http://evil.example"})
    assert read.status_code == 200  # what a page may read is up to CORS, not changed here


async def test_cors_origins_may_change_things(make_client):
    async with make_client(OPENCODE_CORS_ORIGINS="http://app.example") as client:
        allowed = await client.post("/session", headers={"Origin": "http://app.example"})
        assert allowed.status_code == 201
        assert allowed.headers["access-control-allow-origin"] == "http://app.example"
        other = await client.post("/session", headers={"Origin": "http://evil.example"})
        assert other.status_code == 403
    async with make_client(OPENCODE_CORS_ORIGINS="*") as client:
        anyone = await client.post("/session", headers={"Origin": "http://evil.example"})
        assert anyone.status_code == 201


async def test_cors_preflight_works_before_auth_and_refusals_are_json(make_client):
    async with make_client(
        OPENCODE_CORS_ORIGINS="http://app.example", OPENCODE_SERVER_PASSWORD="pw"
    ) as client:
        preflight = {"Access-Control-Request-Method": "PATCH"}
        ok = await client.options(
            "/session/x", headers={"Origin": "http://app.example", **preflight}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://app.example"
        assert_secured(ok)
        refused = await client.options(
            "/session/x", headers={"Origin": "http://evil.example", **preflight}
        )
        assert refused.status_code == 400 and refused.json()["error"] == "cors_rejected"
        assert "OPENCODE_CORS_ORIGINS" in refused.json()["detail"]
        assert "access-control-allow-origin" not in refused.headers


async def test_security_headers_on_every_kind_of_answer(make_client):
    async with make_client(OPENCODE_SERVER_PASSWORD="pw", OPENCODE_MAX_BODY_BYTES=100) as client:
        auth = basic("opencode", "pw")
        responses = [
            await client.get("/health"),
            await client.get("/session"),  # 401
            await client.get("/session", headers=auth),
            await client.get("/no/such/route", headers=auth),
            await client.put("/session", headers=auth),  # 405
            await client.post("/session", headers=auth, json={"title": "x" * 200}),  # 413
            await client.post("/session", headers=auth, json={"title": 5}),  # 422
            await client.options("/session", headers=auth),  # 204
            await client.head("/event", headers=auth),  # SSE
        ]
        assert [r.status_code for r in responses] == [200, 401, 200, 404, 405, 413, 422, 204, 200]
        for response in responses:
            assert_secured(response)


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.icons: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        elif tag == "link" and attrs.get("rel") == "stylesheet":
            self.styles.append(attrs["href"])
        elif tag == "link" and "icon" in (attrs.get("rel") or ""):
            self.icons.append(attrs["href"])


def directive(policy: str, name: str) -> list[str]:
    for part in policy.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"{name} missing from {policy}")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_pages_get_a_policy_that_lets_exactly_them_work(client, path):
    response = await client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert_secured(response, policy)
    assert "'unsafe-inline'" not in directive(policy, "script-src")
    assert "'unsafe-eval'" not in policy
    assert directive(policy, "default-src") == ["'none'"]
    assert directive(policy, "frame-ancestors") == ["'none'"]
    assert directive(policy, "connect-src") == ["'self'"]  # the spec, and "Try it out"
    page = _Resources()
    page.feed(response.text)
    for url in page.scripts:
        assert origin_of(url) in directive(policy, "script-src"), url
    for url in page.styles:
        assert origin_of(url) in directive(policy, "style-src"), url
    for url in page.icons:
        assert origin_of(url) in directive(policy, "img-src"), url
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.S)
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in inline
    ]
    assert sorted(h for h in directive(policy, "script-src") if h.startswith("'sha256-")) == sorted(
        hashes
    )
    if path == "/redoc":
        assert "https://fonts.gstatic.com" in directive(policy, "font-src")
        assert "blob:" in directive(policy, "worker-src")  # ReDoc's search worker


async def test_an_unexpected_error_is_a_json_500_with_the_headers(client, caplog):
    async def boom() -> None:
        raise RuntimeError("secret internals")

    client.app.add_api_route("/boom", boom)
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "The server hit an unexpected error.",
    }
    assert "secret internals" not in response.text
    assert_secured(response)
    assert "unhandled error on GET /boom" in caplog.text
