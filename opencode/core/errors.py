"""One error base, rendered by one handler as JSON ``{"error": ..., "detail": ...}``."""

from typing import Any


class OpencodeError(Exception):
    status_code = 500
    error = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers
        self.extra = extra


class BadRequest(OpencodeError):
    status_code = 400
    error = "bad_request"


class NotFound(OpencodeError):
    status_code = 404
    error = "not_found"


class Conflict(OpencodeError):
    status_code = 409
    error = "conflict"


class UpstreamError(OpencodeError):
    """The model provider failed (after retries): not our fault, not the caller's."""

    status_code = 502
    error = "provider_error"


class ServiceUnavailable(OpencodeError):
    """The server cannot take this now (it is shutting down); ``Retry-After`` says when to."""

    status_code = 503
    error = "unavailable"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, **extra)
