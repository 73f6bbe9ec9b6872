"""``webfetch``: read a public web page as Markdown, plain text or HTML.

Connections go through ``netguard`` (public addresses only, vetted where the socket opens);
redirects are followed here, one hop at a time, so every hop is vetted. The body is streamed
with a size cap, the whole fetch has one deadline, and HTML conversion runs in a thread.
"""

import asyncio
import ssl

import httpcore
import httpx
from pydantic import BaseModel, Field

from opencode.core.settings import Settings
from opencode.tools.base import Tool, ToolContext, ToolError
from opencode.tools.netguard import AddressPolicy, AddressRefused, GuardedTransport, HostNotFound
from opencode.tools.text import collapse_whitespace
from opencode.tools.webpage import Format, Kind, Page, decode, html_to_text, render

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 120.0

DESCRIPTION = """\
Fetch a public http(s) URL and return its content: HTML as clean Markdown (default), as plain \
text or as raw HTML; text as is; JSON pretty-printed. PDFs, images and other binary types are \
not supported.

Limits: public internet addresses only; at most 5 redirects; responses over 5 MiB are refused; \
timeout 30 s by default, at most 120 s; long output is truncated (the result says so)."""

_ACCEPT: dict[Format, str] = {
    "markdown": "text/markdown, text/html;q=0.9, text/plain;q=0.8, application/json;q=0.8, "
    "*/*;q=0.1",
    "text": "text/plain, text/markdown;q=0.9, text/html;q=0.8, application/json;q=0.8, */*;q=0.1",
    "html": "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.8, */*;q=0.1",
}
_USER_AGENT = "Mozilla/5.0 (compatible; opencode-api webfetch)"
_TEXT_TYPES = ("application/xml", "application/javascript", "application/yaml")


class WebFetchParams(BaseModel):
    url: str = Field(description="The http:// or https:// URL to fetch.")
    format: Format = Field(
        "markdown", description="How to return an HTML page: markdown, text or html."
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds for the whole fetch; default 30, at most 120."
    )


class WebFetch(Tool):
    name = "webfetch"
    description = DESCRIPTION
    Params = WebFetchParams

    def __init__(
        self,
        *,
        max_chars: int = 50_000,
        policy: AddressPolicy | None = None,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """``policy`` says which addresses may be reached (public ones only by default);
        ``network`` is the backend that opens vetted connections (httpcore's by default)."""
        self._max_chars = max_chars
        self._policy = policy or AddressPolicy()
        self._network = network
        self._ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "WebFetch":
        policy = AddressPolicy(allow_private=settings.webfetch_allow_private)
        return cls(max_chars=settings.webfetch_max_chars, policy=policy)

    async def run(self, params: BaseModel, ctx: ToolContext) -> str:
        assert isinstance(params, WebFetchParams)
        url = _http_url(params.url)
        seconds = min(params.timeout or DEFAULT_TIMEOUT, MAX_TIMEOUT)
        try:
            async with asyncio.timeout(seconds):
                page = await self._fetch(url, params.format)
        except TimeoutError:
            raise ToolError(
                f"Timed out after {seconds:g} s fetching {url}. Retry with a larger timeout "
                f"(at most {MAX_TIMEOUT:g} s) or try another URL."
            ) from None
        return await asyncio.to_thread(render, page, params.format, self._max_chars)

    async def _fetch(self, start: httpx.URL, fmt: Format) -> Page:
        if self._ssl_context is None:  # loading the CA bundle takes a moment: once per tool
            self._ssl_context = await asyncio.to_thread(httpx.create_ssl_context)
        transport = GuardedTransport(self._policy, self._network, self._ssl_context)
        headers = {"User-Agent": _USER_AGENT, "Accept": _ACCEPT[fmt]}
        url = start
        # No httpx timeouts: the caller's deadline covers the whole fetch, redirects included.
        async with httpx.AsyncClient(
            transport=transport, headers=headers, timeout=None, trust_env=False
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    async with client.stream("GET", url) as response:
                        if not response.is_redirect:
                            return await _read(response)
                        url = _redirect_target(response)
                except AddressRefused as exc:
                    raise ToolError(
                        f"Refused to fetch {url}: {exc}. webfetch only connects to public "
                        "internet addresses (the server allows private ones only when "
                        "OPENCODE_WEBFETCH_ALLOW_PRIVATE=true)."
                    ) from None
                except HostNotFound as exc:
                    raise ToolError(f"Could not fetch {url}: {exc}. Check the host name.") from None
                except httpx.HTTPError as exc:
                    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    raise ToolError(f"Could not fetch {url}: {reason}.") from None
        raise ToolError(
            f"Too many redirects: stopped after {MAX_REDIRECTS} starting at {start} (next: {url})."
        )


def _http_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise ToolError(f"Invalid URL {raw!r}: {exc}.") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ToolError(
            f"Cannot fetch {raw!r}: give a full http:// or https:// URL, "
            "e.g. https://example.com/page."
        )
    return url


def _redirect_target(response: httpx.Response) -> httpx.URL:
    location = response.headers["location"]
    try:
        target = response.url.join(location)
    except httpx.InvalidURL as exc:
        raise ToolError(
            f"{response.url} redirected to an invalid URL {location!r}: {exc}."
        ) from None
    if target.scheme not in ("http", "https"):
        raise ToolError(
            f"Refused a redirect from {response.url} to {location!r}: only http and https "
            "URLs can be fetched."
        )
    return target


async def _read(response: httpx.Response) -> Page:
    url = response.url
    if response.status_code >= 400:
        excerpt = await _excerpt(response)
        raise ToolError(
            f"HTTP {response.status_code} {response.reason_phrase} from {url}."
            + (f" The response begins: {excerpt}" if excerpt else "")
        )
    content_type = response.headers.get("content-type", "")
    kind = _kind(content_type)
    if kind is None:
        shown = content_type.split(";")[0].strip() or "none given"
        raise ToolError(
            f"Unsupported content type ({shown}) at {url}: webfetch reads HTML, text and JSON."
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise _too_large(url)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_BYTES:
            raise _too_large(url)
    return Page(str(url), kind, bytes(body), response.charset_encoding)


async def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= 4096:
            break
    text = decode(bytes(body), response.charset_encoding)
    if _kind(response.headers.get("content-type", "")) == "html":
        text = await asyncio.to_thread(html_to_text, text)
    text = collapse_whitespace(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _too_large(url: httpx.URL) -> ToolError:
    return ToolError(
        f"The response from {url} is larger than {MAX_BYTES // (1024 * 1024)} MiB; webfetch "
        "stopped reading it. Look for a smaller page or a more specific URL."
    )


def _kind(content_type: str) -> Kind | None:
    media = content_type.split(";")[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        return "html"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+xml"):
        return "text"
    return None
