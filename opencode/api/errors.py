"""Every error leaves as JSON ``{"error": ..., "detail": ...}``: never a stack trace."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from opencode.core.errors import OpencodeError

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


def error_response(
    status_code: int, error: str, detail: Any, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "detail": detail, **extra}, status_code=status_code, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpencodeError)
    async def opencode_error(request: Request, exc: OpencodeError) -> JSONResponse:
        error = _HTTP_ERRORS.get(exc.status_code, exc.error)
        if type(exc) is not OpencodeError:
            error = exc.error
        return error_response(exc.status_code, error, exc.message, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", _clean_validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code,
            _HTTP_ERRORS.get(exc.status_code, "http_error"),
            exc.detail,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "The server hit an unexpected error.")


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Location and message only: pydantic's ``input``/``ctx``/``url`` can echo huge bodies or
    hold exception objects that are not JSON."""
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in errors
    ]
