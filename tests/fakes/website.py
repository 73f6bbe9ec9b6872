"""A small web site on loopback for the webfetch tests, and a network backend that records.

``FakeWebsite`` serves fixed routes (an HTML page full of scripts and navigation, pages in
several charsets, text, JSON, a PDF, errors, redirect chains and loops, redirects to private addresses, a huge body and a
slow one) and records every request it receives, so a test can prove that a refused fetch
never reached it. ``RecordingNetwork`` wraps httpcore's backend and records every address a
connection was opened to, so a test can prove that nothing else was contacted.
``TableResolver`` answers name lookups from a table, so no test needs real DNS.
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

import httpcore

from opencode.tools.netguard import HostNotFound, IPAddress
from tests.fakes.loopback import ThreadedServer

PAGE_HTML = """\
<!doctype html>
<html>
<head>
  <title>Fake Docs - Getting started</title>
  <style>body { color: red; } .STYLE-NOISE {}</style>
  <script>var tracking = "SCRIPT-NOISE";</script>
  <link rel="stylesheet" href="/site.css">
</head>
<body>
  <header class="site"><a href="/">HEADER-NOISE logo</a></header>
  <nav><ul><li><a href="/">NAV-NOISE Home</a></li><li><a href="/blog">NAV-NOISE Blog</a></li></ul></nav>
  <div role="navigation">ROLE-NOISE breadcrumbs</div>
  <div role="banner">BANNER-NOISE</div>
  <main>
    <article>
      <h1>Getting started</h1>
      <p>Install the <strong>tool</strong> with <code>pip install thing</code>.
         Then read <a href="/docs/next">the next page</a>.</p>
      <h2>Steps</h2>
      <ul><li>First step</li><li>Second step</li></ul>
      <pre><code>def hello():
    print("hello")</code></pre>
      <table>
        <tr><th>Name</th><th>Value</th></tr>
        <tr><td>alpha</td><td>1</td></tr>
      </table>
      <noscript>NOSCRIPT-NOISE enable javascript</noscript>
      <div hidden>HIDDEN-NOISE</div>
      <span aria-hidden="true">ARIA-HIDDEN-NOISE</span>
      <button type="button">BUTTON-NOISE Copy</button>
      <iframe src="/ad">IFRAME-NOISE fallback</iframe>
      <img src="data:image/png;base64,AAAA" alt="INLINE-IMAGE-NOISE">
      <!-- COMMENT-NOISE -->
    </article>
  </main>
  <aside>ASIDE-NOISE related links</aside>
  <form action="/search"><input name="q"><button>FORM-NOISE Search</button></form>
  <footer>FOOTER-NOISE copyright</footer>
  <script>document.write("SCRIPT-NOISE-2");</script>
</body>
</html>
"""

NOT_FOUND_HTML = (
    "<html><head><script>window.NOT_FOUND_SCRIPT = 1;</script></head>"
    "<body><h1>Not Found</h1><p>No page lives here.</p></body></html>"
)
_CAFE = "<html><head>{}<title>Café</title></head><body><p>Crème brûlée “chaud”</p></body></html>"
# <meta charset> only, no charset in the header; cp1252 bytes that are not valid UTF-8
CAFE_META_1252 = _CAFE.format('<meta charset="windows-1252">').encode("cp1252")
# a BOM beats the header's charset (iso-8859-1 here), as in browsers
CAFE_BOM_UTF8 = _CAFE.format("").encode("utf-8-sig")
CAFE_BOM_UTF16 = _CAFE.format("").encode("utf-16")
PLAIN_TEXT = "Just text.\n  Indented line, kept as is.\n"
JSON_BODY = b'{"name":"opencode","tools":["webfetch","todoread"],"nested":{"ok":true,"n":1}}'
PDF_BODY = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
HUGE_BYTES = 6 * 1024 * 1024
LONG_TEXT = "".join(f"line {n:06d} of a long document\n" for n in range(5000))  # 150,000 chars

_CHUNK = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"


@dataclass(frozen=True)
class SiteRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Static:
    status: int
    content_type: str | None
    body: bytes
    location: str | None = None


class FakeWebsite:
    """uvicorn on ``127.0.0.1:<free port>`` in a daemon thread; ``requests`` records every
    request received (read it from the test thread; appends happen under a lock)."""

    def __init__(self) -> None:
        self.port = 0
        self._requests: list[SiteRequest] = []
        self._lock = threading.Lock()
        self._loopback = ThreadedServer(self._app, "fake website")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def requests(self) -> list[SiteRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    def start(self) -> "FakeWebsite":
        port = self._loopback.start()
        self.port = port
        return self

    def stop(self) -> None:
        self._loopback.stop()

    def __enter__(self) -> "FakeWebsite":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- server side ----

    def _static(self, path: str) -> _Static | None:
        html, text = "text/html; charset=utf-8", "text/plain; charset=utf-8"
        if path.startswith("/chain/"):
            hops = int(path.rsplit("/", 1)[1])
            if hops == 0:
                return _Static(200, html, b"<html><body><p>End of the chain</p></body></html>")
            return _Static(302, None, b"", location=f"/chain/{hops - 1}")
        redirects = {
            "/to-private": "http://10.0.0.1/",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-metadata-decimal": "http://2852039166/latest/meta-data/",
            "/to-mapped-loopback": f"http://[::ffff:127.0.0.1]:{self.port}/page",
            "/to-localhost": f"http://localhost:{self.port}/page",
            "/to-other-port": "http://127.0.0.1:1/",
            "/to-file": "file:///etc/passwd",
            "/relative": "page",
            "/loop": "/loop",
        }
        if path in redirects:
            return _Static(302, None, b"", location=redirects[path])
        pages = {
            "/page": _Static(200, html, PAGE_HTML.encode()),
            "/latin1": _Static(
                200,
                "text/html; charset=iso-8859-1",
                "<html><head><title>Café</title></head><body><p>Crème brûlée</p></body></html>".encode(
                    "latin-1"
                ),
            ),
            "/meta-charset": _Static(200, "text/html", CAFE_META_1252),
            "/bom": _Static(200, "text/html; charset=iso-8859-1", CAFE_BOM_UTF8),
            "/bom-utf16": _Static(200, "text/html", CAFE_BOM_UTF16),
            "/plain": _Static(200, text, PLAIN_TEXT.encode()),
            "/long": _Static(200, text, LONG_TEXT.encode()),
            "/data.json": _Static(200, "application/json", JSON_BODY),
            "/doc.pdf": _Static(200, "application/pdf", PDF_BODY),
            "/blob": _Static(200, "application/octet-stream", bytes(range(256)) * 64),
            "/untyped": _Static(200, None, b"what am I?"),
            "/missing": _Static(404, html, NOT_FOUND_HTML.encode()),
            "/broken": _Static(500, text, b"database exploded while rendering"),
        }
        return pages.get(path)

    async def _app(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self._requests.append(SiteRequest(scope["method"], scope["path"], headers))
        streams: dict[str, Callable[[Any], Awaitable[None]]] = {
            "/huge": _huge(declare_length=False),
            "/huge-declared": _huge(declare_length=True),
            "/slow": _slow,
        }
        if scope["path"] in streams:
            await _until_disconnect(streams[scope["path"]](send), receive)
            return
        page = self._static(scope["path"]) or _Static(404, "text/plain", b"no such route")
        raw = [(b"content-length", str(len(page.body)).encode())]
        if page.content_type:
            raw.append((b"content-type", page.content_type.encode()))
        if page.location:
            raw.append((b"location", page.location.encode()))
        await send({"type": "http.response.start", "status": page.status, "headers": raw})
        await send({"type": "http.response.body", "body": page.body})


def _huge(declare_length: bool) -> Callable[[Any], Awaitable[None]]:
    async def write(send: Any) -> None:
        headers = [(b"content-type", b"text/html")]
        if declare_length:
            headers.append((b"content-length", str(HUGE_BYTES).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(HUGE_BYTES // len(_CHUNK)):
            await send({"type": "http.response.body", "body": _CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return write


async def _slow(send: Any) -> None:
    """Bytes keep coming, 10 a second for a minute: only a deadline on the whole fetch stops it."""
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(600):
        await send({"type": "http.response.body", "body": b".", "more_body": True})
        await asyncio.sleep(0.1)
    await send({"type": "http.response.body", "body": b""})


async def _until_disconnect(writer: Awaitable[None], receive: Any) -> None:
    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(writer), asyncio.ensure_future(client_gone())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class RecordingNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, recording ``(host, port)`` of every connection it opens."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, int]] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connections.append((host, port))
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError(f"unexpected unix socket connection to {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class TableResolver:
    """Names to addresses from a table; unknown names do not resolve. Records lookups."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.lookups.append(host)
        if host not in self.table:
            raise HostNotFound(f"could not resolve {host!r}: Name or service not known")
        return [ip_address(address) for address in self.table[host]]
