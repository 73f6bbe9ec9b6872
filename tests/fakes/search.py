"""A fake SearXNG instance on loopback that answers ``GET .../search`` with scripted replies.

The JSON shape is SearXNG's own (``{"query", "number_of_results", "results": [{"url",
"title", "content", "engine", ...}], "answers", "suggestions", ...}``, docs.searxng.org
"Search API"); an instance without ``json`` in ``search.formats`` answers 403.

Runs uvicorn as a task on the test's own event loop: ``async with FakeSearxng() as fake``.
"""

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Every variable that picks the search backend (tests clear them for a known start).
SEARCH_ENV = (
    "OPENCODE_SEARCH_PROVIDER",
    "TAVILY_API_KEY",
    "BRAVE_API_KEY",
    "EXA_API_KEY",
    "SEARXNG_URL",
)


@dataclass
class SearxReply:
    results: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: str | None = None  # raw body instead of the JSON built from ``results``
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the fake stops): for client timeouts


@dataclass(frozen=True)
class SeenRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


def searx_result(title: str, url: str, content: str) -> dict[str, Any]:
    """One result as SearXNG's JSON API renders it (fields we do not read included)."""
    return {
        "url": url,
        "title": title,
        "content": content,
        "engine": "duckduckgo",
        "parsed_url": ["https", url.split("/")[2], "/", "", "", ""],
        "template": "default.html",
        "engines": ["duckduckgo", "brave"],
        "positions": [1, 2],
        "score": 4.0,
        "category": "general",
    }


class FakeSearxng:
    def __init__(self) -> None:
        self.replies: list[SearxReply] = []
        self.requests: list[SeenRequest] = []
        self.url = ""
        self._release = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._app = Starlette(routes=[Route("/{path:path}", self._search, methods=["GET"])])

    def script(self, *replies: SearxReply) -> None:
        self.replies.extend(replies)

    async def _search(self, request: Request) -> Response:
        self.requests.append(
            SeenRequest(request.url.path, dict(request.query_params), dict(request.headers))
        )
        if not request.url.path.endswith("/search"):
            return Response("not found", status_code=404)
        reply = self.replies.pop(0) if self.replies else SearxReply()
        if reply.hang:
            await self._release.wait()
        body = reply.body
        if body is None:
            query = request.query_params.get("q", "")
            body = json.dumps(
                {
                    "query": query,
                    "number_of_results": 0,
                    "results": reply.results,
                    "answers": [],
                    "corrections": [],
                    "infoboxes": [],
                    "suggestions": [],
                    "unresponsive_engines": [],
                }
            )
        return Response(
            body, status_code=reply.status, headers=reply.headers, media_type="application/json"
        )

    async def __aenter__(self) -> "FakeSearxng":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self._app, lifespan="off", log_config=None, access_log=False, http="h11"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(5):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.005)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
