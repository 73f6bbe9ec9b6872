"""Supabase's token side for tests: signing keys, minted access tokens, a table of bad tokens,
and a loopback fake of the auth server's JWKS endpoint.

Tokens look like what Supabase Auth (GoTrue) issues: ``iss = <project>/auth/v1``, ``aud`` and
``role`` ``authenticated``, ``exp`` one hour out, ``sub`` a UUID, ``email``, ``session_id``,
``is_anonymous``, ``aal``, ``amr``, ``app_metadata``, ``user_metadata``; a signing-keys token
carries ``kid`` (ES256 by default, RS256 too), a legacy one is HS256 with the project's shared
secret. The legacy service key is ``{"iss": "supabase", "role": "service_role"}``: no sub, no aud.
Every token here is ASCII, so each one can be sent as ``Authorization: Bearer <token>``.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms

from tests.fakes.loopback import ThreadedServer

JWKS_PATH = "/auth/v1/.well-known/jwks.json"
DEFAULT_ISSUER = "http://supabase.test/auth/v1"
LEGACY_SERVICE_LIFETIME = 10 * 365 * 86400  # Supabase's legacy keys expire after ten years


def b64url(data: bytes | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class KeyPair:
    """An asymmetric signing key (``alg`` ES256 on P-256, or RS256) and its ``kid``."""

    alg: str
    kid: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str = "ES256") -> "KeyPair":
        if alg == "ES256":
            private: Any = ec.generate_private_key(ec.SECP256R1())
        elif alg == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"no {alg} keys here (ES256 or RS256)")
        return cls(alg, str(uuid.uuid4()), private)

    def public_jwk(self) -> dict[str, Any]:
        """As Supabase publishes it: the public part with kid, alg, use and key_ops."""
        to_jwk = ECAlgorithm.to_jwk if self.alg == "ES256" else RSAAlgorithm.to_jwk
        jwk = to_jwk(self.private_key.public_key(), as_dict=True)
        return jwk | {"kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def sign(header: dict[str, Any], payload: dict[str, Any], key: Any) -> str:
    """A compact JWS signed as ``header["alg"]`` says, with no check that key and alg agree
    (what an attacker's tool does). ``key`` is a private key, or bytes for HS256."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    if header["alg"] == "HS256":  # raw HMAC: PyJWT refuses a PEM as a secret, an attacker need not
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    else:
        signature = get_default_algorithms()[header["alg"]].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


class SigningKeys:
    """One project's keys: the legacy HS256 secret, and an ES256 and an RS256 key pair that the
    JWKS publishes. ``issuer`` goes into minted tokens (SupabaseAuthServer.start sets it)."""

    def __init__(self, issuer: str = DEFAULT_ISSUER) -> None:
        self.issuer = issuer
        self.hs256_secret = secrets.token_urlsafe(32)
        self.es256, self.rs256 = KeyPair.generate("ES256"), KeyPair.generate("RS256")

    def pair(self, alg: str) -> KeyPair:
        return {"ES256": self.es256, "RS256": self.rs256}[alg]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.es256.public_jwk(), self.rs256.public_jwk()]}

    def rotate(self) -> None:
        """New key pairs with new kids; the old ones leave the JWKS (revoked)."""
        self.es256, self.rs256 = KeyPair.generate("ES256"), KeyPair.generate("RS256")

    def user_claims(self, *, sub: str | None = None, lifetime: int = 3600) -> dict[str, Any]:
        now, sub = int(time.time()), sub or str(uuid.uuid4())
        return {
            "iss": self.issuer,
            "sub": sub,
            "aud": "authenticated",
            "exp": now + lifetime,
            "iat": now,
            "email": f"user-{str(sub)[:8]}@example.test",
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
        }

    def mint(
        self,
        alg: str = "ES256",
        *,
        sub: str | None = None,
        lifetime: int = 3600,
        omit: tuple[str, ...] = (),
        header: dict[str, Any] | None = None,
        signer: Any = None,
        **claims: Any,
    ) -> str:
        """A user's access token (``sub`` a fresh UUID unless given). ``claims`` override,
        ``omit`` drops claims, ``header`` overrides header fields (a None value drops one),
        ``signer`` signs instead of this project's key for ``alg`` (a KeyPair or secret)."""
        payload = self.user_claims(sub=sub, lifetime=lifetime) | claims
        return self._sign(alg, {k: v for k, v in payload.items() if k not in omit}, header, signer)

    def mint_service(
        self, alg: str = "HS256", *, legacy: bool = True, lifetime: int | None = None, **claims: Any
    ) -> str:
        """A service_role token: the legacy service key (``iss`` "supabase", no sub, no aud),
        or with ``legacy=False`` one issued by this project."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": "supabase" if legacy else self.issuer}
        payload |= {"ref": "opencode-test", "role": "service_role", "iat": now}
        payload["exp"] = now + (lifetime or (LEGACY_SERVICE_LIFETIME if legacy else 3600))
        return self._sign(alg, payload | claims, None, None)

    def _sign(
        self, alg: str, payload: dict[str, Any], header: dict[str, Any] | None, signer: Any
    ) -> str:
        fields: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if alg == "HS256":
            key = signer if signer is not None else self.hs256_secret
            key = key.encode() if isinstance(key, str) else key
        else:
            pair = signer if signer is not None else self.pair(alg)
            fields["kid"], key = pair.kid, pair.private_key
        fields |= header or {}
        fields = {k: v for k, v in fields.items() if v is not None}
        return sign(fields, payload, key)


def _tamper(token: str, part: int) -> str:
    """The token with one part changed: the payload's sub swapped, or the signature's bits."""
    parts = token.split(".")
    if part == 1:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        parts[1] = b64url(payload | {"sub": str(uuid.uuid4())})
    else:
        signature = bytearray(base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)))
        signature[len(signature) // 2] ^= 0xFF
        parts[2] = b64url(bytes(signature))
    return ".".join(parts)


def bad_tokens(keys: SigningKeys, issuer: str) -> list[tuple[str, str]]:
    """``(name, token)`` pairs a verifier for ``issuer`` (HS256 secret and JWKS from ``keys``)
    must refuse with a 401. Only the named flaw is wrong in each; the rest is a valid token."""
    now = int(time.time())
    good = keys.user_claims() | {"iss": issuer}

    def mint(alg: str = "ES256", **options: Any) -> str:
        return keys.mint(alg, **(good | options))

    es_header = {"alg": "ES256", "typ": "JWT", "kid": keys.es256.kid}
    stranger = KeyPair.generate("ES256")
    impostor = KeyPair("ES256", keys.es256.kid, stranger.private_key)
    hs = keys.hs256_secret.encode()
    return [
        ("expired", mint(exp=now - 120, iat=now - 3720)),
        ("not_yet_valid", mint(nbf=now + 600)),
        ("issued_in_the_future", mint(iat=now + 600)),
        ("wrong_audience", mint(aud="another-project")),
        ("audience_list_without_ours", mint(aud=["anon", "another-project"])),
        ("wrong_issuer", mint(iss="https://someone-else.supabase.co/auth/v1")),
        ("tampered_payload", _tamper(mint(), 1)),
        ("tampered_signature", _tamper(mint(), 2)),
        ("other_key_same_kid", mint(signer=impostor)),
        ("unknown_kid", mint(signer=stranger)),
        ("es256_without_kid", mint(header={"kid": None})),
        ("alg_none", f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(good)}."),
        ("alg_none_with_kid", f"{b64url(es_header | {'alg': 'none'})}.{b64url(good)}."),
        (
            "hs256_with_rsa_public_pem",
            sign({"alg": "HS256", "kid": keys.rs256.kid}, good, keys.rs256.public_pem()),
        ),
        (
            "hs256_with_ec_public_pem",
            sign({"alg": "HS256", "kid": keys.es256.kid}, good, keys.es256.public_pem()),
        ),
        ("hs256_wrong_secret", mint("HS256", signer=secrets.token_urlsafe(32))),
        ("hs512", sign({"alg": "HS512", "typ": "JWT"}, good, hs)),
        (
            "rs256_header_on_ec_key",
            sign(es_header | {"alg": "RS256"}, good, keys.rs256.private_key),
        ),
        (
            "es256_header_on_rsa_key",
            sign(es_header | {"kid": keys.rs256.kid}, good, keys.es256.private_key),
        ),
        ("missing_sub", mint(omit=("sub",))),
        ("sub_not_a_uuid", mint(sub="user-1234")),
        ("sub_not_a_string", mint(sub=12345)),
        ("missing_exp", mint(omit=("exp",))),
        ("exp_not_a_number", mint(exp="tomorrow")),
        ("missing_aud", mint(omit=("aud",))),
        ("missing_iss", mint(omit=("iss",))),
        ("role_anon", mint(role="anon", aud="anon")),
        ("role_supabase_admin", mint(role="supabase_admin")),
        (
            "legacy_anon_key",
            sign(
                {"alg": "HS256", "typ": "JWT"},
                {"iss": "supabase", "role": "anon", "iat": now, "exp": now + 3600},
                hs,
            ),
        ),
        ("service_role_expired", keys.mint_service(lifetime=-120)),
        (
            "service_role_wrong_issuer",
            keys.mint_service(iss="https://someone-else.supabase.co/auth/v1"),
        ),
        (
            "service_role_wrong_secret",
            sign(
                {"alg": "HS256", "typ": "JWT"},
                {"iss": "supabase", "role": "service_role", "iat": now},
                b"guessed-secret",
            ),
        ),
        ("kid_not_a_string", mint(header={"kid": 7})),
        ("unknown_critical_header", mint(header={"crit": ["x-opencode"], "x-opencode": 1})),
        ("header_not_json", f"{b64url(b'not json')}.{b64url(good)}.c2ln"),
        ("header_not_an_object", f"{b64url(b'[1, 2]')}.{b64url(good)}.c2ln"),
        ("payload_not_json", f"{b64url(es_header)}.{b64url(b'not json')}.c2ln"),
        ("garbage", "not-a-jwt-at-all"),
        ("two_parts", f"{b64url(es_header)}.{b64url(good)}"),
        ("four_parts", mint() + ".c2ln"),
        ("bad_base64", "%%%.%%%.%%%"),
        ("deeply_nested_json", f"{b64url(es_header)}.{b64url(b'[' * 9000)}.c2ln"),
        ("empty", ""),
        ("huge", mint(user_metadata={"padding": "x" * 47 * 1024})),  # ~64 KB
    ]


def jwks_document(source: dict[str, Any] | SigningKeys) -> dict[str, Any]:
    """The JWKS to serve: a fixed document, or the current keys of a SigningKeys."""
    return source.jwks() if isinstance(source, SigningKeys) else source


class SupabaseAuthServer:
    """``GET /auth/v1/.well-known/jwks.json`` on ``127.0.0.1:<free port>`` (uvicorn in a daemon
    thread), from ``keys``. Knobs, read on every request: ``fail_status`` (answer that status),
    ``html`` (a 200 HTML page, as a misrouted proxy sends), ``delay`` (seconds before
    answering), ``extra_keys`` (JWKs published after the keys' own). ``fetches`` counts JWKS
    requests. Use as ``with SupabaseAuthServer() as auth:``.
    """

    def __init__(self, keys: SigningKeys | None = None) -> None:
        self.keys = keys or SigningKeys()
        self.url = ""
        self.fail_status: int | None = None
        self.html = False
        self.delay = 0.0
        self.extra_keys: list[dict[str, Any]] = []
        self._fetches = 0
        self._lock = threading.Lock()
        self._loopback = ThreadedServer(self._app, "fake supabase auth")

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}{JWKS_PATH}"

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    def start(self) -> "SupabaseAuthServer":
        """Serve, and point ``keys.issuer`` at this server (what Supabase puts in ``iss``)."""
        self.url = f"http://127.0.0.1:{self._loopback.start()}"
        self.keys.issuer = self.issuer
        return self

    def stop(self) -> None:
        self._loopback.stop()

    def __enter__(self) -> "SupabaseAuthServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._fetches = 0
        self.fail_status, self.html, self.delay, self.extra_keys = None, False, 0.0, []

    def rotate(self) -> None:
        self.keys.rotate()

    async def _app(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != JWKS_PATH or scope["method"] not in ("GET", "HEAD"):
            await _send(send, 404, b'{"code":404,"error_code":"not_found","msg":"Not found"}')
            return
        with self._lock:
            self._fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            await _send(send, self.fail_status, b'{"code":500,"msg":"Internal server error"}')
        elif self.html:
            await _send(send, 200, b"<html><body>Bad gateway</body></html>", "text/html")
        else:
            document = jwks_document(self.keys)
            document["keys"] = [*document["keys"], *self.extra_keys]
            await _send(send, 200, json.dumps(document).encode())


async def _send(send: Any, status: int, body: bytes, media: str = "application/json") -> None:
    headers = [(b"content-type", media.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
