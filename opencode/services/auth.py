"""Who is calling, from a request's credentials, by ``OPENCODE_AUTH`` mode.

- ``none``: everyone is the local user.
- ``password``: HTTP Basic with user ``opencode`` and ``OPENCODE_SERVER_PASSWORD``; the caller is
  the local user (one password, one user).
- ``supabase``: ``Authorization: Bearer <Supabase access token>``, verified locally
  (``services/tokens.py``); the caller is the token's ``sub``. A ``service_role`` token is an
  admin caller.

In every mode ``OPENCODE_ADMIN_TOKEN`` as a bearer token is an admin caller, which acts for the
user named by ``X-User-Id`` (and without it, sees every user's rows).
"""

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opencode.core.errors import BadRequest, OpencodeError
from opencode.core.settings import AuthMode
from opencode.core.users import LOCAL_CALLER, LOCAL_USER_ID, Caller, is_user_id

if TYPE_CHECKING:  # PyJWT and cryptography (~40 ms of start-up) load only in supabase mode
    from opencode.services.tokens import JwksCache, TokenVerifier

AUTH_USER = "opencode"


class Unauthorized(OpencodeError):
    status_code = 401
    error = "unauthorized"


@dataclass(frozen=True)
class Credentials:
    """What a request brought: its ``Authorization`` header, an ``access_token`` query
    parameter (only where an ``EventSource`` needs one) and ``X-User-Id``."""

    authorization: str | None = None
    access_token: str | None = None
    user_id: str | None = None

    @property
    def bearer(self) -> str | None:
        if self.authorization:
            scheme, _, token = self.authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
        return self.access_token or None


class Authenticator:
    def __init__(
        self,
        mode: AuthMode,
        *,
        password: str | None = None,
        admin_token: str | None = None,
        verifier: "TokenVerifier | None" = None,
        jwks: "JwksCache | None" = None,
    ) -> None:
        if mode == "supabase" and verifier is None:
            raise ValueError("supabase auth needs a TokenVerifier")
        self.mode = mode
        self._basic = f"{AUTH_USER}:{password}".encode() if password else None
        self._admin = admin_token.encode() if admin_token else None
        self._verifier = verifier
        self._jwks = jwks

    async def prime(self) -> None:
        """Fetch the signing keys at startup, so the first request does not wait for them
        (a failure is retried on demand: requests verify against whatever can be fetched)."""
        if self._jwks is not None:
            await self._jwks.prime()

    async def authenticate(self, credentials: Credentials) -> Caller:
        token = credentials.bearer
        # Only from the header: a URL (?access_token=) ends up in proxies' logs.
        if credentials.authorization and token is not None and self._is_admin_token(token):
            return _admin(credentials.user_id)
        if self.mode == "none":
            return LOCAL_CALLER
        if self.mode == "password":
            if self._basic_ok(credentials.authorization):
                return LOCAL_CALLER
            raise Unauthorized(
                f"This server needs HTTP Basic auth (user {AUTH_USER!r}, the server password).",
                headers={"WWW-Authenticate": 'Basic realm="opencode"'},
            )
        if token is None:
            raise Unauthorized(
                "This server needs a Supabase access token: send Authorization: Bearer <token> "
                "(the session's access_token from supabase-js), or ?access_token= on /event "
                "and stream routes.",
                headers={"WWW-Authenticate": 'Bearer realm="opencode"'},
            )
        assert self._verifier is not None
        verified = await self._verifier.verify(token)
        if verified.role == "service_role":
            return _admin(credentials.user_id)
        assert verified.user_id is not None  # the verifier requires a UUID sub for users
        return Caller(verified.user_id.lower())  # as X-User-Id: one user whatever the case

    def _is_admin_token(self, token: str) -> bool:
        return self._admin is not None and secrets.compare_digest(token.encode(), self._admin)

    def _basic_ok(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if self._basic is None or scheme.lower() != "basic":
            return False
        try:
            supplied = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(supplied, self._basic)


def _admin(user_id: str | None) -> Caller:
    if user_id is None:
        return Caller(LOCAL_USER_ID, admin=True, everyone=True)
    if not is_user_id(user_id):
        raise BadRequest(
            "X-User-Id must be a user id (a UUID such as 123e4567-e89b-12d3-a456-426614174000)."
        )
    return Caller(user_id.lower(), admin=True)
