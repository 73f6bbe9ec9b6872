"""Pure ASGI middleware: authentication, the request body limit, and methods per path.

Pure ASGI (not ``BaseHTTPMiddleware``) so SSE responses stream through untouched.
"""

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

import anyio
from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import BaseRoute, compile_path, get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencode.api.errors import error_response, opencode_error_response
from opencode.core.errors import OpencodeError
from opencode.services.auth import Credentials

PUBLIC_PATHS = frozenset({"/health"})
# In supabase mode a browser opens the docs without a token; they hold nothing private.
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
_UNAVAILABLE = "The server is starting or stopping; try again in a moment."


class AuthMiddleware:
    """Every request but ``public_paths`` is authenticated by the lifespan's ``Authenticator``
    before anything reads it; the ``Caller`` goes into ``scope["state"]["caller"]`` for the
    routes (``CallerDep``). ``?access_token=`` counts only on GET ``/event`` and the stream
    routes, where a browser's ``EventSource`` cannot send headers."""

    def __init__(self, app: ASGIApp, *, public_paths: frozenset[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self._public = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public:
            await self.app(scope, receive, send)
            return
        services = getattr(scope["app"].state, "services", None)
        if services is None:
            response = error_response(503, "unavailable", _UNAVAILABLE, {"Retry-After": "1"})
            await response(scope, receive, send)
            return
        try:
            caller = await services.auth.authenticate(_credentials(scope))
        except OpencodeError as exc:
            await opencode_error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def _credentials(scope: Scope) -> Credentials:
    headers = Headers(scope=scope)
    token = None
    if scope["method"] in ("GET", "HEAD") and _takes_query_token(scope["path"]):
        token = _query_value(scope.get("query_string", b""), "access_token")
    return Credentials(
        authorization=headers.get("authorization"),
        access_token=token,
        user_id=headers.get("x-user-id"),
    )


def _takes_query_token(path: str) -> bool:
    return path == "/event" or (path.startswith("/session/") and path.endswith("/stream"))


def _query_value(query: bytes, name: str) -> str | None:
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return None


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, or while reading a
    chunked body (then the app sees a disconnect and nothing is changed)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max:
            await self._reject(scope, receive, send)
            return
        received = 0
        too_large = False
        sent = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal sent
            if too_large:
                return  # the app's answer to a cut-off body (400 or 500) is replaced by 413
            sent = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not sent:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"The request body is larger than {self._max} bytes."
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class MethodsMiddleware:
    """``Allow``, ``OPTIONS`` and ``HEAD`` from every route on a path, not the first one.

    Starlette answers 405 with the methods of the first route whose path matches (GET
    ``/session/{id}`` hides PATCH and DELETE) and FastAPI routes have no HEAD. Here: OPTIONS on
    a known path is 204 with ``Allow``; another method the path lacks is a JSON 405 with
    ``Allow``; HEAD runs the GET route and sends its headers only, then stops the route (an SSE
    stream would never end by itself), so no HEAD operations need adding to the schema.
    Unknown paths go on to the router's 404.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._routes = routes  # the app's list: read at the first request, when it is complete
        self._table: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routed = self._routed(scope)
        methods = _answered(routed)
        method = scope["method"]
        if not routed:
            await self.app(scope, receive, send)
        elif method == "HEAD" and "GET" in routed:
            await _head(self.app, scope, receive, send)
        elif method == "OPTIONS" and "OPTIONS" not in routed:
            allow = _allow(methods)
            await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
        elif method not in methods:
            allow = _allow(methods)
            response = error_response(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {scope['path']}; it answers {allow}.",
                headers={"Allow": allow},
            )
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _routed(self, scope: Scope) -> set[str]:
        """The methods the routes on this path declare themselves."""
        if self._table is None:
            self._table = _route_table(self._routes)
        path = get_route_path(scope)
        methods: set[str] = set()
        for pattern, route_methods in self._table:
            if pattern.match(path):
                methods |= route_methods
        return methods


def _route_table(routes: Sequence[BaseRoute]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path pattern, methods) of every HTTP route, those of included routers too (FastAPI
    keeps them nested, with their prefixes, so ``iter_route_contexts`` walks them)."""
    table = []
    for context in iter_route_contexts(routes):
        if context.path and context.methods:
            pattern, _, _ = compile_path(context.path)
            table.append((pattern, frozenset(context.methods)))
    return table


def _answered(routed: set[str]) -> set[str]:
    """Everything a path answers: its routes' methods, HEAD with GET, and OPTIONS."""
    if not routed:
        return set()
    return routed | {"OPTIONS"} | ({"HEAD"} if "GET" in routed else set())


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allow(methods: set[str]) -> str:
    order = {method: index for index, method in enumerate(_METHOD_ORDER)}
    return ", ".join(sorted(methods, key=lambda method: (order.get(method, 99), method)))


async def _head(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the GET route, send its response head (Content-Length included) and an empty
    body, then cancel the route: the client asked for nothing more."""
    with anyio.CancelScope() as cancel:

        async def head_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                cancel.cancel()

        await app({**scope, "method": "GET"}, receive, head_only)
