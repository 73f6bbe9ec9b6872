"""Every error leaves as JSON ``{"error": ..., "detail": ...}``: never a stack trace.

``detail`` is always a sentence; a 422 adds ``errors``, the problems one by one. The OpenAPI
``responses`` of each route come from ``error_responses`` here, so the documented shape is the
one these handlers send.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from opencode.core.errors import OpencodeError
from opencode.core.text import scrub
from opencode.schemas.common import (
    UNSAFE_TEXT,
    BusyOut,
    ErrorOut,
    QuotaOut,
    ValidationErrorOut,
)

log = logging.getLogger(__name__)

_HTTP_ERRORS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "too_many_requests",
}
_PARAM_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
_MAX_LISTED_PROBLEMS = 10


def error_response(
    status_code: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "detail": detail, **extra}, status_code=status_code, headers=headers
    )


def opencode_error_response(exc: OpencodeError) -> JSONResponse:
    """The JSON answer to ``exc``: a plain ``OpencodeError`` is named by its status code, a
    subclass by its own ``error``."""
    error = (
        exc.error
        if type(exc) is not OpencodeError
        else _HTTP_ERRORS.get(exc.status_code, exc.error)
    )
    extra = dict(exc.extra)
    if exc.status_code == 422:
        extra.setdefault("errors", [])  # every 422 has the same shape
    return error_response(exc.status_code, error, exc.message, headers=exc.headers, **extra)


def internal_error_response() -> JSONResponse:
    return error_response(500, "internal_error", "The server hit an unexpected error.")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpencodeError)
    async def opencode_error(request: Request, exc: OpencodeError) -> JSONResponse:
        return opencode_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _clean_validation_errors(exc.errors())
        return error_response(422, "validation_error", _sentence(problems), errors=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code,
            _HTTP_ERRORS.get(exc.status_code, "http_error"),
            exc.detail if isinstance(exc.detail, str) else str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response()


def _clean_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Location, message and type only: pydantic's ``input``/``ctx``/``url`` can echo huge
    bodies or hold exception objects that are not JSON. A location can hold a key the client
    sent, so it is scrubbed of what JSON cannot encode."""
    return [
        {
            "loc": [part if isinstance(part, int) else scrub(str(part)) for part in error["loc"]],
            "msg": _message(error),
            "type": error.get("type", "value_error"),
        }
        for error in errors
    ]


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if error.get("type") == "string_unicode":
        return UNSAFE_TEXT  # a lone surrogate met pydantic's JSON parser before our check
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error")
        return (
            f"The body is not valid JSON ({reason})." if reason else "The body is not valid JSON."
        )
    return msg


def _sentence(problems: Sequence[Mapping[str, Any]]) -> str:
    """``content: String should have at least 1 character; limit: Input should be ...``."""
    parts = [
        problem["msg"]
        if problem["type"] == "json_invalid"
        else f"{_location(problem['loc'])}: {problem['msg']}"
        for problem in problems
    ]
    if len(parts) > _MAX_LISTED_PROBLEMS:
        hidden = len(parts) - _MAX_LISTED_PROBLEMS
        parts = [*parts[:_MAX_LISTED_PROBLEMS], f"and {hidden} more (see errors)"]
    return "; ".join(parts) or "The request is invalid."


def _location(loc: Sequence[str | int]) -> str:
    """``["body", "tools", 0]`` reads ``tools[0]``; the whole body reads ``body``."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in _PARAM_SOURCES:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "request"


_DESCRIPTIONS = {
    400: "bad_host: the Host header is not one this server answers (OPENCODE_ALLOWED_HOSTS)",
    401: "unauthorized: credentials are missing or wrong (OPENCODE_AUTH=password: HTTP Basic; "
    "supabase: a Supabase access token as Bearer), or invalid_token: the token does not verify",
    403: "forbidden: a browser request from an origin that is neither this server nor in "
    "OPENCODE_CORS_ORIGINS",
    404: "not_found: no such id",
    409: "conflict: busy",
    413: "payload_too_large: the body is over OPENCODE_MAX_BODY_BYTES",
    422: "validation_error: the request does not match the schema",
    429: "quota_exceeded: the user's daily token quota (OPENCODE_DAILY_TOKEN_LIMIT) is spent; "
    "retry after Retry-After seconds (the next UTC midnight)",
    502: "provider_error: the model provider failed",
    503: "unavailable: the server is shutting down and takes no new model work; retry after "
    "Retry-After seconds",
}
_MODELS: dict[int, type[ErrorOut]] = {409: ErrorOut, 422: ValidationErrorOut, 429: QuotaOut}


def error_responses(
    *codes: int, notes: Mapping[int, str] | None = None, busy: bool = False
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes a route can answer. ``notes`` describes what
    the route itself answers with a code, ``"kind: when"``; a 400 note adds to ``bad_host``,
    which every route but ``/health`` can answer. ``busy``: the 409 names the running reply."""
    notes = notes or {}
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description = notes.get(code, _DESCRIPTIONS[code])
        if code == 400 and code in notes:
            description = f"{_DESCRIPTIONS[400]}; {notes[400]}"
        model = BusyOut if busy and code == 409 else _MODELS.get(code, ErrorOut)
        response: dict[str, Any] = {"model": model, "description": description}
        if code in (429, 503):
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
        responses[code] = response
    return responses
