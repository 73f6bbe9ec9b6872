"""Local verification of Supabase access tokens (design note: ``design/supabase.md`` section 2).

Not supabase-py's ``auth.get_claims()``: it checks neither ``aud`` nor ``iss`` and refetches
the JWKS on every unknown ``kid``. Here the header picks exactly one algorithm and one key
(HS256 with the project's shared secret, ES256/RS256 with a key from the JWKS by ``kid``), and
PyJWT checks the signature and every claim. A bad token is always a 401 with a message naming
the problem; neither the token nor a secret ever appears in it.
"""

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from opencode.core.errors import OpencodeError
from opencode.core.users import is_user_id

log = logging.getLogger(__name__)

# Supabase tokens are ~1 KB (more with large user_metadata); the cap bounds the base64 and
# JSON work an anonymous caller can make us do before the signature is checked.
MAX_TOKEN_CHARS = 16 * 1024
ASYMMETRIC = {"ES256": "EC", "RS256": "RSA"}  # alg -> the kty its key must have
LEGACY_ISSUER = "supabase"  # the legacy anon/service_role keys (no sub, no aud)
USER_ROLE, SERVICE_ROLE = "authenticated", "service_role"
_IDENTIFIER = re.compile(r"[A-Za-z0-9_+-]{1,32}")


class InvalidToken(OpencodeError):
    """401 with an RFC 6750 challenge; ``reason`` is the short, fixed description it carries."""

    status_code = 401
    error = "invalid_token"

    def __init__(self, reason: str, detail: str) -> None:
        safe = "".join(c for c in reason if c.isprintable() and c not in '"\\')
        challenge = f'Bearer error="invalid_token", error_description="{safe}"'
        super().__init__(f"Invalid access token: {detail}", headers={"WWW-Authenticate": challenge})
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    user_id: str | None  # the ``sub`` of a user's token; None for a service_role token
    role: str  # "authenticated" or "service_role"
    claims: dict[str, Any]


def _load_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS by kid. A key we cannot use (another kty, an
    encryption key, no kid) is skipped: one odd key must not take the whole set down."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS (expected {"keys": [...]})')
    keys = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(jwk)
        except jwt.PyJWTError:
            continue
        if ASYMMETRIC.get(key.algorithm_name) == key.key_type:
            keys[jwk["kid"]] = key
    return keys


class JwksCache:
    """The project's public signing keys, fetched with httpx and kept for ``ttl`` seconds.

    An unknown kid (a key rotated in) refetches at most once per ``cooldown``, so a stream of
    tokens with made-up kids cannot turn into a stream of requests to Supabase. One lock makes
    the fetch single-flight: callers that arrive during it wait and then read its result. A
    failed fetch keeps the keys we have (a Supabase hiccup must not log everyone out) and is
    not retried within ``cooldown`` either.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        ttl: float = 600.0,
        cooldown: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self._http, self._clock = url, http, clock
        self.ttl, self.cooldown, self.timeout = ttl, cooldown, timeout
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK:
        if self._fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if not (self._fresh() and kid in self._keys) and self._may_fetch():
                await self._fetch()
        if self._keys is None:
            raise InvalidToken(
                "cannot fetch the signing keys",
                f"the signing keys could not be fetched from {self.url}; try again shortly",
            )
        if kid not in self._keys:
            raise InvalidToken(
                "unknown signing key",
                f"it is signed with a key that is not in the project's JWKS ({self.url})",
            )
        return self._keys[kid]

    def holds(self, kid: str) -> bool:
        """Whether the last key set fetched still has ``kid`` (no fetch, no await)."""
        return self._keys is not None and kid in self._keys

    async def prime(self) -> bool:
        """Fetch now (at startup) so the first request does not wait; False if that failed."""
        async with self._lock:
            await self._fetch()
            if self._keys is None:
                self._attempted_at = float("-inf")  # the first token tries again, no cooldown
        return self._keys is not None

    def _fresh(self) -> bool:
        return self._keys is not None and self._clock() - self._fetched_at < self.ttl

    def _may_fetch(self) -> bool:
        return self._clock() - self._attempted_at >= self.cooldown

    async def _fetch(self) -> None:
        # The attempt counts once it ends: a caller cancelled mid-fetch (a client that hung
        # up) leaves the next waiter free to fetch instead of a cooldown without keys.
        try:
            response = await self._http.get(self.url, timeout=self.timeout)
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            keys = _load_keys(response.json())
        except (httpx.HTTPError, ValueError) as exc:  # JSONDecodeError is a ValueError
            self._attempted_at = self._clock()
            kept = "keeping the cached keys" if self._keys is not None else "no keys cached"
            log.warning(
                "JWKS fetch from %s failed (%s: %s); %s", self.url, type(exc).__name__, exc, kept
            )
            return
        self._keys, self._fetched_at = keys, self._clock()
        self._attempted_at = self._fetched_at


# PyJWT's exceptions -> (short reason, what to tell the caller). Order matters: subclasses
# first (InvalidSignatureError is a DecodeError, everything is an InvalidTokenError).
_PYJWT_ERRORS: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "token expired", "it has expired; refresh the session"),
    (jwt.ImmatureSignatureError, "token not yet valid", "its nbf or iat is in the future"),
    (jwt.InvalidAudienceError, "wrong audience", "its aud is not {audience!r}"),
    (jwt.InvalidIssuerError, "wrong issuer", "its iss is not this project's ({issuer})"),
    (jwt.InvalidSignatureError, "bad signature", "its signature does not match"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm", "its alg does not match its key"),
    (jwt.exceptions.InvalidSubjectError, "sub is not a user id", "its sub is not a string"),
    (jwt.InvalidIssuedAtError, "malformed token", "its iat is not a number"),
]


def _from_pyjwt(exc: jwt.PyJWTError, audience: str, issuer: str) -> InvalidToken:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return InvalidToken(f"missing claim {exc.claim}", f"it has no {exc.claim!r} claim")
    for kind, reason, detail in _PYJWT_ERRORS:
        if isinstance(exc, kind):
            return InvalidToken(reason, detail.format(audience=audience, issuer=issuer))
    # PyJWT puts token content (a crit extension's name, a JSON error) after a colon: cut it.
    what = str(exc).split(":")[0].strip().rstrip(".")[:80] or type(exc).__name__
    return InvalidToken("malformed token", f"it is not a well-formed JWT ({what})")


VERIFIED_CACHE_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 10_000


class TokenVerifier:
    """Verifies a bearer token: a user's (``role`` authenticated) or an admin caller's
    (``role`` service_role, also the legacy service key). Every other role is refused."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str = USER_ROLE,
        hs256_secret: str | None,
        jwks: JwksCache | None,
        leeway: float = 30.0,
    ) -> None:
        self.issuer, self.audience, self.leeway = issuer, audience, leeway
        self._secret, self._jwks = hs256_secret, jwks
        # A browser sends one token with every request for an hour; parsing and checking it
        # costs 0.1-0.3 ms each time (bench/bench_auth.py). What verified stays verified for a
        # minute at most (never past its exp, never once its key has left the JWKS): less than
        # the JWKS cache already trusts a key.
        self._verified: OrderedDict[str, tuple[VerifiedToken, float, str | None]] = OrderedDict()

    async def verify(self, token: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token too large", f"it is longer than {MAX_TOKEN_CHARS} characters")
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and now < cached[1] and self._still_signed(cached[2]):
            self._verified.move_to_end(token)
            return cached[0]
        verified, kid = await self._verify(token)
        until = now + VERIFIED_CACHE_SECONDS
        if isinstance(exp := verified.claims.get("exp"), int | float):
            until = min(until, exp)
        self._verified[token] = (verified, until, kid)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    def _still_signed(self, kid: str | None) -> bool:
        return kid is None or (self._jwks is not None and self._jwks.holds(kid))

    async def _verify(self, token: str) -> tuple[VerifiedToken, str | None]:
        """The token's identity, and the JWKS kid that signed it (None: the HS256 secret)."""
        try:
            header = jwt.get_unverified_header(token)
            # Unverified: it only picks the checks; the decode below verifies what it read.
            role = jwt.decode(token, options={"verify_signature": False}).get("role", USER_ROLE)
        except jwt.PyJWTError as exc:
            raise _from_pyjwt(exc, self.audience, self.issuer) from None
        key, alg = await self._key(header)
        options, issuers = self._checks(role)
        try:
            # ~0.1 ms of CPU: cheaper than a hop to a thread.
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options=options,
                audience=self.audience,
                issuer=issuers,
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise _from_pyjwt(exc, self.audience, self.issuer) from None
        return self._identity(claims), (header.get("kid") if alg in ASYMMETRIC else None)

    def _checks(self, role: Any) -> tuple[dict[str, Any], str | tuple[str, ...]]:
        """PyJWT's options and the accepted issuers for a token of this (unverified) role."""
        if role == USER_ROLE:
            return {"require": ["exp", "sub", "aud", "iss"]}, self.issuer
        if role == SERVICE_ROLE:  # legacy service keys carry neither sub nor aud
            return {"require": ["iss"], "verify_aud": False}, (self.issuer, LEGACY_ISSUER)
        # any other role is refused by _identity, once the signature shows it is genuine
        return {"verify_aud": False, "verify_iss": False}, self.issuer

    async def _key(self, header: dict[str, Any]) -> tuple[Any, str]:
        """The one key and algorithm the header may use. Never ``none``; never HS256 with a
        public key (the secret is the only HS256 key); an asymmetric key only for its own alg."""
        alg, kid = header.get("alg"), header.get("kid")
        if alg == "HS256" and self._secret:
            return self._secret, alg
        if isinstance(alg, str) and alg in ASYMMETRIC and self._jwks is not None:
            if not kid:
                raise InvalidToken("malformed token", f"an {alg} token must name its key in kid")
            key = await self._jwks.key(kid)
            if key.algorithm_name != alg:
                raise InvalidToken(
                    "unsupported algorithm",
                    f"its alg is {alg} but its key is for {key.algorithm_name}",
                )
            return key, alg
        accepted = ["HS256"] * bool(self._secret) + list(ASYMMETRIC) * (self._jwks is not None)
        raise InvalidToken(
            "unsupported algorithm",
            f"alg {_shown(alg)} is not accepted here (accepted: {', '.join(accepted) or 'none'})",
        )

    def _identity(self, claims: dict[str, Any]) -> VerifiedToken:
        role = claims.get("role", USER_ROLE)
        if role == SERVICE_ROLE:
            return VerifiedToken(None, SERVICE_ROLE, claims)
        if role != USER_ROLE:
            raise InvalidToken(
                "role not allowed",
                f"role {_shown(role)} may not call this API (only authenticated or service_role)",
            )
        if not is_user_id(claims["sub"]):
            raise InvalidToken("sub is not a user id", "its sub is not a user id (a UUID)")
        return VerifiedToken(claims["sub"], USER_ROLE, claims)


def _shown(value: Any) -> str:
    """A header or claim value fit to quote back: a short identifier, else a placeholder."""
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value):
        return json.dumps(value)
    return "(not shown)"
