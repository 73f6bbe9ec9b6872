"""``websearch``: search the web and return a numbered list of title, URL and snippet.

The backend is chosen once, at startup, from the settings: ``OPENCODE_SEARCH_PROVIDER`` if
set, else the first configured key (Tavily, Brave, Exa, SearXNG), else DuckDuckGo (no key).
A provider named explicitly but missing its key is a startup error, not a tool error: the
model cannot fix the server's configuration, and the operator should learn of it at once.
"""

from dataclasses import dataclass
from typing import Annotated, get_args

from pydantic import BaseModel, Field, StringConstraints

from opencode.core.errors import OpencodeError
from opencode.core.settings import Settings
from opencode.tools.base import Tool, ToolContext
from opencode.tools.search_backends import (
    BraveBackend,
    DuckDuckGoBackend,
    ExaBackend,
    HttpBackend,
    SearchBackend,
    SearchHit,
    SearchProvider,
    SearxngBackend,
    TavilyBackend,
)

SEARCH_PROVIDERS: tuple[SearchProvider, ...] = get_args(SearchProvider)
PROVIDER_ENV = "OPENCODE_SEARCH_PROVIDER"
DEFAULT = "default"
SNIPPET_CHARS = 300

# The backends a setting configures, in auto-selection order; DuckDuckGo needs none.
CONFIGURED_BACKENDS: tuple[type[HttpBackend], ...] = (
    TavilyBackend,
    BraveBackend,
    ExaBackend,
    SearxngBackend,
)

DESCRIPTION = """\
Search the web. Returns a numbered list of results, each with a title, a URL and a short \
snippet. Use it for current events, documentation, or facts you are unsure about; write \
queries the way you would type them into a search engine. Snippets are short: open a \
promising URL with a fetch tool when you need the page itself. Cite the URLs you rely on."""


class WebSearchParams(BaseModel):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="The search query."
    )
    max_results: int = Field(5, ge=1, le=10, description="How many results to return (1-10).")


@dataclass(frozen=True)
class SearchChoice:
    provider: SearchProvider
    configured_by: str  # OPENCODE_SEARCH_PROVIDER, the key's variable, or "default"


class WebSearch(Tool):
    name = "websearch"
    description = DESCRIPTION
    Params = WebSearchParams

    def __init__(self, backend: SearchBackend, configured_by: str = DEFAULT) -> None:
        self._backend = backend
        self.configured_by = configured_by

    @classmethod
    def from_settings(cls, settings: Settings) -> "WebSearch":
        choice = choose_search_provider(settings)
        return cls(build_backend(choice.provider, settings), choice.configured_by)

    @property
    def provider(self) -> SearchProvider:
        return self._backend.name

    async def run(self, params: BaseModel, ctx: ToolContext) -> str:
        assert isinstance(params, WebSearchParams)
        hits = await self._backend.search(params.query, params.max_results)
        return format_results(params.query, self.provider, hits[: params.max_results])


def choose_search_provider(settings: Settings) -> SearchChoice:
    """Raises ``OpencodeError`` for an unknown provider or one whose key/URL is not set."""
    explicit = (settings.search_provider or "").strip().lower()
    if explicit:
        if explicit not in SEARCH_PROVIDERS:
            raise OpencodeError(
                f"{PROVIDER_ENV}={settings.search_provider!r} is not a search provider; "
                f"use one of: {', '.join(SEARCH_PROVIDERS)}."
            )
        provider: SearchProvider = explicit  # type: ignore[assignment]
        backend = _configured_backend(provider)
        if backend and not _setting(settings, backend):
            raise OpencodeError(
                f"{PROVIDER_ENV}={provider} needs {backend.key_env}; set it, or choose another "
                f"provider ({', '.join(SEARCH_PROVIDERS)})."
            )
        return SearchChoice(provider, PROVIDER_ENV)
    for backend in CONFIGURED_BACKENDS:
        if _setting(settings, backend):
            return SearchChoice(backend.name, backend.key_env)
    return SearchChoice("duckduckgo", DEFAULT)


def build_backend(provider: SearchProvider, settings: Settings) -> SearchBackend:
    backend = _configured_backend(provider)
    if backend is None:
        return DuckDuckGoBackend()
    return backend.from_setting(_setting(settings, backend))


def _configured_backend(provider: SearchProvider) -> type[HttpBackend] | None:
    return next((backend for backend in CONFIGURED_BACKENDS if backend.name == provider), None)


def _setting(settings: Settings, backend: type[HttpBackend]) -> str:
    return (getattr(settings, backend.settings_field) or "").strip()


def format_results(query: str, provider: str, hits: list[SearchHit]) -> str:
    if not hits:
        return f'No results found for "{query}" ({provider}).'
    entries = []
    for number, found in enumerate(hits, start=1):
        lines = [f"{number}. {found.title}", f"   {found.url}"]
        if found.snippet:
            lines.append(f"   {_trim(found.snippet)}")
        entries.append("\n".join(lines))
    return f'Search results for "{query}" ({provider}):\n\n' + "\n\n".join(entries)


def _trim(text: str, limit: int = SNIPPET_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.") + "…"
