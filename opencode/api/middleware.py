"""Pure ASGI middleware: HTTP Basic auth and the request body limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so SSE responses stream through untouched.
"""

import base64
import binascii
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencode.api.errors import error_response

AUTH_USER = "opencode"
PUBLIC_PATHS = frozenset({"/health"})


class BasicAuthMiddleware:
    def __init__(self, app: ASGIApp, *, password: str) -> None:
        self.app = app
        self._expected = f"{AUTH_USER}:{password}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(
            401,
            "unauthorized",
            f"This server needs HTTP Basic auth (user {AUTH_USER!r}, the server password).",
            headers={"WWW-Authenticate": 'Basic realm="opencode"'},
        )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            supplied = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(supplied, self._expected)


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
