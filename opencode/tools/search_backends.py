"""The web search backends behind the ``websearch`` tool, one class per service.

Each backend turns a query into ``SearchHit``s and raises only ``ToolError``, with a message
that says what went wrong and what to do (wrong key, rate limit, outage, odd response).
Response shapes are parsed with small pydantic models that ignore fields we do not use.
"""

import asyncio
import ssl
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, ClassVar, Literal, Protocol, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from opencode.core.errors import OpencodeError
from opencode.tools.base import ToolError
from opencode.tools.text import collapse_whitespace

SearchProvider = Literal["tavily", "brave", "exa", "searxng", "duckduckgo"]

HTTP_TIMEOUT = 20.0
_ERROR_DETAIL_CHARS = 200

ResponseT = TypeVar("ResponseT", bound=BaseModel)


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    snippet: str


class SearchBackend(Protocol):
    name: SearchProvider

    async def search(self, query: str, max_results: int) -> list[SearchHit]: ...


# ---- HTTP backends ----


class HttpBackend:
    """Shared request and error handling; subclasses build the request and read the reply.

    A backend is configured by one setting (an API key or, for SearXNG, a URL).
    """

    name: ClassVar[SearchProvider]
    key_env: ClassVar[str]  # the variable that configures it, named in error messages
    settings_field: ClassVar[str]  # the ``Settings`` field read from ``key_env``

    def __init__(self, api_key: str | None = None, *, timeout: float = HTTP_TIMEOUT) -> None:
        self._api_key = api_key
        self._timeout = timeout
        self._ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_setting(cls, value: str) -> Self:
        """The backend configured by its setting's value; ``OpencodeError`` when unusable."""
        return cls(value)

    async def _send(self, request: httpx.Request, model: type[ResponseT]) -> ResponseT:
        if self._ssl_context is None:  # loading the CA bundle takes a moment: once per backend
            self._ssl_context = await asyncio.to_thread(httpx.create_ssl_context)
        try:
            # A client per search: tools have no shutdown hook that could close a shared one.
            async with httpx.AsyncClient(timeout=self._timeout, verify=self._ssl_context) as client:
                response = await client.send(request)
        except httpx.TimeoutException as exc:
            raise ToolError(
                f"Search backend {self.name} timed out after {self._timeout:g} s; try again."
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ToolError(
                f"Could not reach search backend {self.name}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise ToolError(self._status_error(response))
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ToolError(
                f"Search backend {self.name} returned a response this tool cannot read "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})."
            ) from exc

    def _status_error(self, response: httpx.Response) -> str:
        status = response.status_code
        if status in (401, 403):
            return f"Search backend {self.name} rejected the API key (check {self.key_env})."
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            wait = f"; retry after {retry_after} seconds" if retry_after else "; try again later"
            return f"Search backend {self.name} is rate limited (HTTP 429){wait}."
        if status >= 500:
            return f"Search backend {self.name} is unavailable (HTTP {status}); try again later."
        return f"Search backend {self.name} refused the request (HTTP {status}): " + (
            _error_detail(response) or response.reason_phrase
        )


class _ContentResult(BaseModel):
    title: str | None = None
    url: str
    content: str | None = None


class _ContentResponse(BaseModel):
    """The reply shape Tavily and SearXNG share (as far as this tool reads it)."""

    results: list[_ContentResult]


class TavilyBackend(HttpBackend):
    """``POST https://api.tavily.com/search`` with a Bearer key (docs.tavily.com)."""

    name = "tavily"
    key_env = "TAVILY_API_KEY"
    settings_field = "tavily_api_key"
    url = "https://api.tavily.com/search"

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        request = httpx.Request(
            "POST",
            self.url,
            headers={"Authorization": f"Bearer {self._api_key}"},
            json={"query": query, "max_results": max_results},
        )
        reply = await self._send(request, _ContentResponse)
        return [hit(r.title, r.url, r.content) for r in reply.results]


class _BraveResult(BaseModel):
    title: str | None = None
    url: str
    description: str | None = None


class _BraveWeb(BaseModel):
    results: list[_BraveResult] = []


class _BraveResponse(BaseModel):
    web: _BraveWeb | None = None  # absent when nothing matched


class BraveBackend(HttpBackend):
    """``GET https://api.search.brave.com/res/v1/web/search`` with ``X-Subscription-Token``."""

    name = "brave"
    key_env = "BRAVE_API_KEY"
    settings_field = "brave_api_key"
    url = "https://api.search.brave.com/res/v1/web/search"

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        request = httpx.Request(
            "GET",
            self.url,
            params={"q": query, "count": max_results},
            headers={"X-Subscription-Token": self._api_key, "Accept": "application/json"},
        )
        reply = await self._send(request, _BraveResponse)
        results = reply.web.results if reply.web else []
        # Brave marks the matched words in titles and descriptions with <strong>.
        return [hit(r.title, r.url, r.description, html=True) for r in results]


class _ExaResult(BaseModel):
    title: str | None = None
    url: str
    highlights: list[str] | None = None
    summary: str | None = None
    text: str | None = None


class _ExaResponse(BaseModel):
    results: list[_ExaResult]


class ExaBackend(HttpBackend):
    """``POST https://api.exa.ai/search`` with ``x-api-key``, asking for highlights."""

    name = "exa"
    key_env = "EXA_API_KEY"
    settings_field = "exa_api_key"
    url = "https://api.exa.ai/search"

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        # Highlights are query-relevant excerpts; ``text`` would be the whole page.
        body = {
            "query": query,
            "numResults": max_results,
            "contents": {"highlights": {"maxCharacters": 500}},
        }
        request = httpx.Request("POST", self.url, headers={"x-api-key": self._api_key}, json=body)
        reply = await self._send(request, _ExaResponse)
        return [hit(r.title, r.url, _exa_snippet(r)) for r in reply.results]


def _exa_snippet(result: _ExaResult) -> str | None:
    if result.highlights:
        return " … ".join(result.highlights)
    return result.summary or result.text


class SearxngBackend(HttpBackend):
    """``GET {SEARXNG_URL}/search?format=json``: a self-hosted SearXNG instance's JSON API.

    SearXNG has no ``count`` parameter (a page is ~20 results); the tool keeps the first few.
    """

    name = "searxng"
    key_env = "SEARXNG_URL"
    settings_field = "searxng_url"

    def __init__(self, base_url: str, *, timeout: float = HTTP_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self._base_url = base_url.rstrip("/")

    @classmethod
    def from_setting(cls, value: str) -> Self:
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise OpencodeError(
                f"SEARXNG_URL {value!r} is not an http(s) URL; set it to the instance's base "
                "URL, e.g. http://localhost:8080."
            )
        return cls(value)

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        request = httpx.Request(
            "GET",
            f"{self._base_url}/search",
            params={"q": query, "format": "json"},
            headers={"Accept": "application/json"},
        )
        reply = await self._send(request, _ContentResponse)
        return [hit(r.title, r.url, r.content, html=True) for r in reply.results]

    def _status_error(self, response: httpx.Response) -> str:
        if response.status_code == 403:
            # SearXNG answers 403 to format=json unless its settings.yml enables the format.
            return (
                f"SearXNG at {self._base_url} refused the JSON API (HTTP 403); add json to "
                "search.formats in its settings.yml, or check SEARXNG_URL."
            )
        if response.status_code == 401:
            return f"SearXNG at {self._base_url} requires authentication (HTTP 401)."
        return super()._status_error(response)


# ---- DuckDuckGo (no key) ----


class DuckDuckGoBackend:
    """The ``ddgs`` package: keyless, synchronous, with its own HTTP client (run in a thread).

    ``ddgs`` is imported on first use: it pulls in lxml and a native HTTP client.
    """

    name: SearchProvider = "duckduckgo"

    def __init__(self, *, timeout: float = HTTP_TIMEOUT) -> None:
        self._timeout = timeout

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

        try:
            rows = await asyncio.wait_for(
                asyncio.to_thread(self._text, query, max_results), timeout=self._timeout
            )
        except RatelimitException as exc:
            raise ToolError(
                "Search backend duckduckgo is rate limited; wait a minute and try again, or "
                "configure a search API key (TAVILY_API_KEY, BRAVE_API_KEY, EXA_API_KEY)."
            ) from exc
        except (TimeoutException, TimeoutError) as exc:
            raise ToolError(
                f"Search backend duckduckgo timed out after {self._timeout:g} s; try again."
            ) from exc
        except DDGSException as exc:
            if _is_no_results(exc, DDGSException):
                return []
            raise ToolError(f"Search backend duckduckgo failed: {exc}") from exc
        return [
            hit(row.get("title"), row["href"], row.get("body"), html=True)
            for row in rows[:max_results]
            if row.get("href")
        ]

    def _text(self, query: str, max_results: int) -> list[dict[str, Any]]:
        from ddgs import DDGS

        # ddgs's own timeout is per engine request; the wait_for above bounds the whole call.
        engine_timeout = max(1, int(self._timeout / 2))
        return DDGS(timeout=engine_timeout).text(query, max_results=max_results)


def _is_no_results(exc: Exception, base: type[Exception]) -> bool:
    """ddgs 9 raises a bare ``DDGSException("No results found.")`` for an empty result set."""
    return type(exc) is base and "no results found" in str(exc).lower()


# ---- text helpers ----


def hit(title: str | None, url: str, snippet: str | None, *, html: bool = False) -> SearchHit:
    clean = plain_text if html else collapse_whitespace
    return SearchHit(title=clean(title or "") or url, url=url, snippet=clean(snippet or ""))


def plain_text(html: str) -> str:
    """The text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed."""
    parser = _TextCollector()
    parser.feed(html)
    parser.close()
    return collapse_whitespace("".join(parser.parts))


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _error_detail(response: httpx.Response) -> str:
    """The service's own error message, from JSON bodies like ``{"detail": {"error": ...}}``
    (Tavily), ``{"error": {"detail": ...}}`` (Brave) or ``{"error": ...}`` (Exa)."""
    try:
        node: Any = response.json()
    except ValueError:
        return collapse_whitespace(response.text)[:_ERROR_DETAIL_CHARS]
    for _ in range(3):
        if isinstance(node, str):
            return node[:_ERROR_DETAIL_CHARS]
        if not isinstance(node, dict):
            break
        node = next((node[k] for k in ("detail", "error", "message") if k in node), None)
    return collapse_whitespace(response.text)[:_ERROR_DETAIL_CHARS]
