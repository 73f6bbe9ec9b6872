"""``websearch``: backend selection, each backend's wire format, output, and error mapping.

No test reaches the internet. Tavily, Brave and Exa go through respx with
``assert_all_mocked`` on (respx's default), so an unmatched request fails instead of passing
through; SearXNG is a real HTTP server on loopback (tests/fakes/search.py); DuckDuckGo's
``ddgs`` client talks through its own native HTTP stack, so its ``DDGS`` class is replaced.

Response shapes follow each service's documentation:
- Tavily: ``POST https://api.tavily.com/search``, ``Authorization: Bearer tvly-...``, body
  ``{"query", "max_results"}``; reply ``{"query", "answer", "results": [{"title", "url",
  "content", "score", "raw_content"}], "response_time"}`` (help.tavily.com, docs.tavily.com).
- Brave: ``GET https://api.search.brave.com/res/v1/web/search?q=&count=`` with
  ``X-Subscription-Token``; reply ``{"type": "search", "query": {...}, "web": {"type":
  "search", "results": [{"title", "url", "description", ...}]}}``; matched words are wrapped in
  ``<strong>``; errors ``{"type": "ErrorResponse", "error": {"code", "detail", "status"}}``.
- Exa: ``POST https://api.exa.ai/search`` with ``x-api-key``; ``contents.highlights.
  maxCharacters`` (Feb 2026 changelog: replaces ``numSentences``); reply ``{"requestId",
  "results": [{"title", "url", "publishedDate", "author", "id", "text", "highlights",
  "highlightScores", "summary"}]}`` (exa.ai/docs/reference/search).
"""

import json
import socket
import subprocess
import sys
import threading
from typing import Any

import ddgs
import httpx
import pytest
import respx
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from opencode.core.errors import OpencodeError
from opencode.core.settings import Settings
from opencode.llm.types import ToolCall
from opencode.tools.base import ToolContext
from opencode.tools.registry import ToolRegistry, ToolResult
from opencode.tools.search_backends import (
    BraveBackend,
    DuckDuckGoBackend,
    ExaBackend,
    SearchHit,
    SearxngBackend,
    TavilyBackend,
    plain_text,
)
from opencode.tools.websearch import WebSearch, choose_search_provider, format_results
from tests.fakes.search import SEARCH_ENV, FakeSearxng, SearxReply, searx_result

TAVILY_URL = "https://api.tavily.com/search"
BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
EXA_URL = "https://api.exa.ai/search"
CTX = ToolContext("ses_1", "msg_1", "call_1")


@pytest.fixture(autouse=True)
def no_search_env(monkeypatch):
    for name in SEARCH_ENV:
        monkeypatch.delenv(name, raising=False)


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)


def registry_with(tool: WebSearch) -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(tool)
    return registry


async def search(searcher: Any, query: str = "python asyncio", **args: Any) -> ToolResult:
    """Run the tool (or a tool around a backend) the way the agent loop does."""
    tool = searcher if isinstance(searcher, WebSearch) else WebSearch(searcher)
    arguments = json.dumps({"query": query, **args})
    call = ToolCall(id="call_1", name="websearch", arguments=arguments)
    return await registry_with(tool).execute(call, CTX)


ENDPOINTS = {"tavily": ("POST", TAVILY_URL), "brave": ("GET", BRAVE_URL), "exa": ("POST", EXA_URL)}


async def search_mocked(
    backend: Any, reply: httpx.Response | Exception, query: str = "python asyncio", **args: Any
) -> tuple[ToolResult, httpx.Request]:
    """Search with the backend's endpoint answering ``reply`` (or raising it); respx fails
    any other request. Returns the result and the one request the backend sent."""
    method, url = ENDPOINTS[backend.name]
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        route = router.route(method=method, url=url)
        if isinstance(reply, Exception):
            route.mock(side_effect=reply)
        else:
            route.mock(return_value=reply)
        result = await search(backend, query, **args)
    [call] = route.calls
    return result, call.request


# ---- selection ----


@pytest.mark.parametrize(
    "env,provider,configured_by",
    [
        ({}, "duckduckgo", "default"),
        ({"TAVILY_API_KEY": "tvly-k"}, "tavily", "TAVILY_API_KEY"),
        ({"BRAVE_API_KEY": "b-k"}, "brave", "BRAVE_API_KEY"),
        ({"EXA_API_KEY": "e-k"}, "exa", "EXA_API_KEY"),
        ({"SEARXNG_URL": "http://127.0.0.1:8888"}, "searxng", "SEARXNG_URL"),
        (
            {"SEARXNG_URL": "http://s", "EXA_API_KEY": "e", "BRAVE_API_KEY": "b"},
            "brave",
            "BRAVE_API_KEY",
        ),
        ({"SEARXNG_URL": "http://s", "EXA_API_KEY": "e"}, "exa", "EXA_API_KEY"),
        (
            {k: "x" for k in ("TAVILY_API_KEY", "BRAVE_API_KEY", "EXA_API_KEY")}
            | {"SEARXNG_URL": "http://s"},
            "tavily",
            "TAVILY_API_KEY",
        ),
        ({"TAVILY_API_KEY": "   ", "EXA_API_KEY": "e"}, "exa", "EXA_API_KEY"),
        (
            {"OPENCODE_SEARCH_PROVIDER": "Brave", "BRAVE_API_KEY": "b", "TAVILY_API_KEY": "t"},
            "brave",
            "OPENCODE_SEARCH_PROVIDER",
        ),
        (
            {"OPENCODE_SEARCH_PROVIDER": " DuckDuckGo ", "TAVILY_API_KEY": "t"},
            "duckduckgo",
            "OPENCODE_SEARCH_PROVIDER",
        ),
        (
            {"OPENCODE_SEARCH_PROVIDER": "searxng", "SEARXNG_URL": "https://search.example"},
            "searxng",
            "OPENCODE_SEARCH_PROVIDER",
        ),
    ],
)
def test_selection(env, provider, configured_by):
    choice = choose_search_provider(settings(**env))
    assert (choice.provider, choice.configured_by) == (provider, configured_by)
    tool = WebSearch.from_settings(settings(**env))
    assert (tool.provider, tool.configured_by) == (provider, configured_by)


def test_selection_reads_the_environment(monkeypatch):
    monkeypatch.setenv("EXA_API_KEY", "e-k")
    tool = WebSearch.from_settings(Settings(_env_file=None))
    assert (tool.provider, tool.configured_by) == ("exa", "EXA_API_KEY")


@pytest.mark.parametrize(
    "provider,variable",
    [("brave", "BRAVE_API_KEY"), ("EXA", "EXA_API_KEY"), ("SearXNG", "SEARXNG_URL")],
)
def test_explicit_provider_without_its_key_fails_at_startup(provider, variable):
    # Another backend's key does not rescue it: the operator asked for this one.
    with pytest.raises(OpencodeError) as info:
        WebSearch.from_settings(settings(OPENCODE_SEARCH_PROVIDER=provider, TAVILY_API_KEY="t"))
    assert f"OPENCODE_SEARCH_PROVIDER={provider.lower()} needs {variable};" in str(info.value)


def test_explicit_provider_missing_key_message():
    with pytest.raises(OpencodeError) as info:
        WebSearch.from_settings(settings(OPENCODE_SEARCH_PROVIDER="exa"))
    assert str(info.value) == (
        "OPENCODE_SEARCH_PROVIDER=exa needs EXA_API_KEY; set it, or choose another provider "
        "(tavily, brave, exa, searxng, duckduckgo)."
    )


def test_unknown_provider_lists_the_valid_names():
    with pytest.raises(OpencodeError) as info:
        WebSearch.from_settings(settings(OPENCODE_SEARCH_PROVIDER="google"))
    assert str(info.value) == (
        "OPENCODE_SEARCH_PROVIDER='google' is not a search provider; "
        "use one of: tavily, brave, exa, searxng, duckduckgo."
    )


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://search.example", "http://"])
def test_searxng_url_must_be_http(url):
    with pytest.raises(OpencodeError, match="SEARXNG_URL .* is not an http\\(s\\) URL"):
        WebSearch.from_settings(settings(SEARXNG_URL=url))


def test_ddgs_is_imported_only_when_searching():
    code = (
        "import sys, opencode.tools.registry as r; r.default_registry(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ddgs', 'primp')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- parameters and output ----


async def test_arguments_are_validated():
    backend = TavilyBackend("tvly-k")
    too_many = await search(backend, max_results=11)
    assert too_many.is_error and "max_results: Input should be less than or equal to 10" in (
        too_many.text
    )
    blank = await search(backend, query="   ")
    assert blank.is_error and "query:" in blank.text


def test_json_schema_is_what_the_model_sees():
    schema = WebSearch(TavilyBackend("k")).json_schema()
    assert schema["required"] == ["query"]
    assert schema["properties"]["max_results"] == {
        "default": 5,
        "description": "How many results to return (1-10).",
        "maximum": 10,
        "minimum": 1,
        "title": "Max Results",
        "type": "integer",
    }


def test_format_results_numbers_trims_and_skips_empty_snippets():
    long = "word " * 100
    text = format_results(
        "q",
        "exa",
        [SearchHit("One", "https://one.example", long.strip()), SearchHit("Two", "https://t", "")],
    )
    header, first, second = text.split("\n\n")
    assert header == 'Search results for "q" (exa):'
    title, url, snippet = first.split("\n")
    assert (title, url) == ("1. One", "   https://one.example")
    assert snippet.startswith("   word word") and snippet.endswith("word…")
    assert len(snippet.strip()) <= 301
    assert second == "2. Two\n   https://t"


def test_plain_text_strips_tags_and_entities():
    html = "The <strong>Python</strong> &amp; <em>asyncio</em>\n  guide &#8211; 2024"
    assert plain_text(html) == "The Python & asyncio guide – 2024"
    assert plain_text("a < b and c > d") == "a < b and c > d"


# ---- Tavily ----


async def test_tavily_request_and_results():
    reply = {
        "query": "python asyncio",
        "answer": None,
        "images": [],
        "results": [
            {
                "title": "asyncio — Asynchronous I/O",
                "url": "https://docs.python.org/3/library/asyncio.html",
                "content": "asyncio is a library to write concurrent code.",
                "score": 0.98,
                "raw_content": None,
            },
            {
                "title": "",
                "url": "https://realpython.com/async-io-python/",
                "content": "A walkthrough.",
                "score": 0.7,
                "raw_content": None,
            },
        ],
        "response_time": 1.1,
    }
    result, request = await search_mocked(
        TavilyBackend("tvly-secret"), httpx.Response(200, json=reply), max_results=3
    )
    assert request.headers["Authorization"] == "Bearer tvly-secret"
    assert json.loads(request.content) == {"query": "python asyncio", "max_results": 3}
    assert not result.is_error
    assert result.text == (
        'Search results for "python asyncio" (tavily):\n\n'
        "1. asyncio — Asynchronous I/O\n"
        "   https://docs.python.org/3/library/asyncio.html\n"
        "   asyncio is a library to write concurrent code.\n\n"
        "2. https://realpython.com/async-io-python/\n"
        "   https://realpython.com/async-io-python/\n"
        "   A walkthrough."
    )


async def test_no_results_is_not_an_error():
    reply = httpx.Response(200, json={"query": "zzqx", "results": []})
    result, _ = await search_mocked(TavilyBackend("k"), reply, query="zzqx")
    assert not result.is_error
    assert result.text == 'No results found for "zzqx" (tavily).'


# ---- Brave ----


async def test_brave_request_strips_html_and_handles_no_web_section():
    reply = {
        "type": "search",
        "query": {"original": "python asyncio"},
        "web": {
            "type": "search",
            "results": [
                {
                    "title": "Learn <strong>asyncio</strong> &amp; friends",
                    "url": "https://example.com/asyncio",
                    "description": "A guide to <strong>Python</strong> <strong>asyncio</strong>.",
                    "is_source_local": False,
                    "language": "en",
                }
            ],
        },
    }
    result, request = await search_mocked(
        BraveBackend("brave-key"), httpx.Response(200, json=reply), max_results=2
    )
    assert request.headers["X-Subscription-Token"] == "brave-key"
    assert dict(request.url.params) == {"q": "python asyncio", "count": "2"}
    assert result.text.splitlines()[2:] == [
        "1. Learn asyncio & friends",
        "   https://example.com/asyncio",
        "   A guide to Python asyncio.",
    ]

    no_web = httpx.Response(200, json={"type": "search", "query": {"original": "x"}})
    empty, _ = await search_mocked(BraveBackend("brave-key"), no_web, query="x")
    assert empty.text == 'No results found for "x" (brave).'


# ---- Exa ----


async def test_exa_request_prefers_highlights_then_summary_then_text():
    reply = {
        "requestId": "b5947044c4b78efa9552a7c89b306d95",
        "resolvedSearchType": "neural",
        "results": [
            {
                "id": "https://arxiv.org/abs/2307.06435",
                "title": "A Comprehensive Overview of Large Language Models",
                "url": "https://arxiv.org/abs/2307.06435",
                "publishedDate": "2023-11-16T01:36:32.547Z",
                "author": "Humza Naveed",
                "highlights": ["Such requirements have limited", "their adoption."],
                "highlightScores": [0.46, 0.41],
            },
            {"id": "2", "title": None, "url": "https://b.example", "summary": "A summary."},
            {"id": "3", "title": "Text only", "url": "https://c.example", "text": "Body text."},
        ],
        "costDollars": {"total": 0.005},
    }
    result, request = await search_mocked(
        ExaBackend("exa-key"), httpx.Response(200, json=reply), query="llm survey", max_results=3
    )
    assert request.headers["x-api-key"] == "exa-key"
    assert json.loads(request.content) == {
        "query": "llm survey",
        "numResults": 3,
        "contents": {"highlights": {"maxCharacters": 500}},
    }
    entries = result.text.split("\n\n")[1:]
    assert entries == [
        "1. A Comprehensive Overview of Large Language Models\n"
        "   https://arxiv.org/abs/2307.06435\n"
        "   Such requirements have limited … their adoption.",
        "2. https://b.example\n   https://b.example\n   A summary.",
        "3. Text only\n   https://c.example\n   Body text.",
    ]


# ---- errors (the mapping is shared by the HTTP backends) ----


@pytest.mark.parametrize(
    "status,headers,body,expected",
    [
        (401, {}, {"detail": {"error": "Unauthorized"}}, "rejected the API key (check {env})."),
        (403, {}, {"error": "forbidden"}, "rejected the API key (check {env})."),
        (429, {"Retry-After": "17"}, {}, "is rate limited (HTTP 429); retry after 17 seconds."),
        (429, {}, {}, "is rate limited (HTTP 429); try again later."),
        (500, {}, {}, "is unavailable (HTTP 500); try again later."),
        (503, {}, {}, "is unavailable (HTTP 503); try again later."),
    ],
)
@pytest.mark.parametrize(
    "backend,env",
    [
        (TavilyBackend("k"), "TAVILY_API_KEY"),
        (BraveBackend("k"), "BRAVE_API_KEY"),
        (ExaBackend("k"), "EXA_API_KEY"),
    ],
)
async def test_http_status_errors(backend, env, status, headers, body, expected):
    reply = httpx.Response(status, json=body, headers=headers)
    result, _ = await search_mocked(backend, reply)
    assert result.is_error
    assert result.text == f"Search backend {backend.name} " + expected.format(env=env)


BRAVE_VALIDATION_ERROR = {
    "type": "ErrorResponse",
    "error": {
        "id": "abc",
        "status": 422,
        "code": "VALIDATION",
        "detail": "Unable to validate request parameter(s)",
    },
    "time": 1700000000,
}
TAVILY_PLAN_LIMIT = {"detail": {"error": "This request exceeds your plan's set usage limit."}}


@pytest.mark.parametrize(
    "backend,status,body,message",
    [
        (BraveBackend("k"), 422, BRAVE_VALIDATION_ERROR, "Unable to validate request parameter(s)"),
        (
            TavilyBackend("k"),
            432,
            TAVILY_PLAN_LIMIT,
            "This request exceeds your plan's set usage limit.",
        ),
    ],
)
async def test_a_refusal_carries_the_service_message(backend, status, body, message):
    result, _ = await search_mocked(backend, httpx.Response(status, json=body))
    assert result.is_error
    assert result.text == (
        f"Search backend {backend.name} refused the request (HTTP {status}): {message}"
    )


@pytest.mark.parametrize(
    "error,expected",
    [
        (
            httpx.ReadTimeout("read timed out"),
            "Search backend exa timed out after 20 s; try again.",
        ),
        (
            httpx.ConnectError("name resolution failed"),
            "Could not reach search backend exa: ConnectError: name resolution failed",
        ),
    ],
)
async def test_transport_errors(error, expected):
    result, _ = await search_mocked(ExaBackend("k"), error)
    assert result.is_error and result.text == expected


@pytest.mark.parametrize(
    "content",
    [b"<html>Bad gateway</html>", b'{"results": "none"}', b'{"results": [{"title": "no url"}]}'],
)
async def test_unreadable_responses(content):
    result, _ = await search_mocked(TavilyBackend("k"), httpx.Response(200, content=content))
    assert result.is_error
    assert result.text.startswith("Search backend tavily returned a response this tool cannot read")


# ---- SearXNG (real HTTP on loopback) ----


async def test_searxng_json_api_on_loopback():
    async with FakeSearxng() as fake:
        fake.script(
            SearxReply(
                results=[
                    searx_result(f"Result {n}", f"https://r{n}.example/", f"About <b>{n}</b>")
                    for n in range(1, 8)
                ]
            )
        )
        result = await search(SearxngBackend(f"{fake.url}/searx/"), max_results=2)
    [seen] = fake.requests
    assert seen.path == "/searx/search"
    assert seen.params == {"q": "python asyncio", "format": "json"}
    assert result.text == (
        'Search results for "python asyncio" (searxng):\n\n'
        "1. Result 1\n   https://r1.example/\n   About 1\n\n"
        "2. Result 2\n   https://r2.example/\n   About 2"
    )


async def test_searxng_without_json_format_explains_the_fix():
    async with FakeSearxng() as fake:
        fake.script(SearxReply(status=403, body="<html>403 Forbidden</html>"))
        result = await search(SearxngBackend(fake.url))
    assert result.is_error
    assert result.text == (
        f"SearXNG at {fake.url} refused the JSON API (HTTP 403); add json to search.formats "
        "in its settings.yml, or check SEARXNG_URL."
    )


async def test_searxng_errors_on_loopback():
    async with FakeSearxng() as fake:
        fake.script(
            SearxReply(status=429, headers={"Retry-After": "3"}),
            SearxReply(body="not json"),
            SearxReply(hang=True),
        )
        backend = SearxngBackend(fake.url, timeout=0.3)
        limited, malformed, slow = [(await search(backend)).text for _ in range(3)]
    assert limited == "Search backend searxng is rate limited (HTTP 429); retry after 3 seconds."
    assert malformed.startswith("Search backend searxng returned a response this tool cannot")
    assert slow == "Search backend searxng timed out after 0.3 s; try again."


async def test_searxng_unreachable():
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = await search(SearxngBackend(url))
    assert result.is_error
    assert result.text.startswith("Could not reach search backend searxng: ConnectError")


# ---- DuckDuckGo (ddgs, with its client class replaced) ----


class FakeDDGS:
    """Stands in for ``ddgs.DDGS``: same constructor and ``text()`` signature and row shape."""

    instances: list["FakeDDGS"] = []
    rows: list[dict[str, str]] = []
    error: Exception | None = None
    gate: threading.Event | None = None

    def __init__(self, proxy: str | None = None, timeout: int | None = 5, *, verify=True):
        self.timeout = timeout
        self.calls: list[tuple[str, dict[str, Any]]] = []
        FakeDDGS.instances.append(self)

    def text(self, query: str, **kwargs: Any) -> list[dict[str, str]]:
        self.calls.append((query, kwargs))
        if FakeDDGS.gate is not None:
            FakeDDGS.gate.wait(5)
        if FakeDDGS.error is not None:
            raise FakeDDGS.error
        return list(FakeDDGS.rows)


@pytest.fixture
def fake_ddgs(monkeypatch) -> type[FakeDDGS]:
    monkeypatch.setattr(FakeDDGS, "instances", [])
    monkeypatch.setattr(FakeDDGS, "rows", [])
    monkeypatch.setattr(FakeDDGS, "error", None)
    monkeypatch.setattr(FakeDDGS, "gate", None)
    monkeypatch.setattr(ddgs, "DDGS", FakeDDGS)
    return FakeDDGS


async def test_duckduckgo_runs_ddgs_in_a_thread(fake_ddgs):
    fake_ddgs.rows = [
        {"title": "Python &amp; asyncio", "href": "https://a.example", "body": "Body <b>A</b>"},
        {"title": "No link", "href": "", "body": "dropped"},
        {"title": "B", "href": "https://b.example", "body": ""},
    ]
    result = await search(WebSearch.from_settings(settings()), query="asyncio", max_results=4)
    [client] = fake_ddgs.instances
    assert client.calls == [("asyncio", {"max_results": 4})]
    assert client.timeout == 10
    assert result.text == (
        'Search results for "asyncio" (duckduckgo):\n\n'
        "1. Python & asyncio\n   https://a.example\n   Body A\n\n"
        "2. B\n   https://b.example"
    )


@pytest.mark.parametrize(
    "error,expected,is_error",
    [
        (
            RatelimitException("202 Ratelimit"),
            "Search backend duckduckgo is rate limited; wait a minute and try again, or "
            "configure a search API key (TAVILY_API_KEY, BRAVE_API_KEY, EXA_API_KEY).",
            True,
        ),
        (
            TimeoutException("timed out"),
            "Search backend duckduckgo timed out after 20 s; try again.",
            True,
        ),
        (
            DDGSException("https://html.duckduckgo.com/html 403 Forbidden"),
            "Search backend duckduckgo failed: https://html.duckduckgo.com/html 403 Forbidden",
            True,
        ),
        (DDGSException("No results found."), 'No results found for "q" (duckduckgo).', False),
    ],
)
async def test_duckduckgo_errors(fake_ddgs, error, expected, is_error):
    fake_ddgs.error = error
    result = await search(DuckDuckGoBackend(), query="q")
    assert (result.text, result.is_error) == (expected, is_error)


async def test_duckduckgo_overall_timeout(fake_ddgs):
    fake_ddgs.gate = threading.Event()
    try:
        result = await search(DuckDuckGoBackend(timeout=0.2), query="slow")
    finally:
        fake_ddgs.gate.set()  # let the worker thread finish
    assert result.is_error
    assert result.text == "Search backend duckduckgo timed out after 0.2 s; try again."
