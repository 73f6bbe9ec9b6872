"""TokenVerifier and JwksCache against the loopback fake of Supabase's JWKS endpoint: every bad
token of the shared table is a 401 naming its flaw, good ones name their user, and the key cache
fetches once, refetches on TTL and (rate-limited) on an unknown kid, and survives the endpoint
failing."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest

from opencode.services.tokens import (
    MAX_TOKEN_CHARS,
    InvalidToken,
    JwksCache,
    TokenVerifier,
    VerifiedToken,
)
from tests.fakes.postgrest import PostgrestServer
from tests.fakes.supabase_auth import (
    DEFAULT_ISSUER,
    JWKS_PATH,
    KeyPair,
    SigningKeys,
    SupabaseAuthServer,
    bad_tokens,
    sign,
)

BAD_NAMES = [name for name, _ in bad_tokens(SigningKeys(), DEFAULT_ISSUER)]

# name -> (the short reason, a word the message must contain), for the flaws a caller must be
# able to tell apart; the rest of the table only has to be refused.
EXPECTED = {
    "expired": ("token expired", "expired"),
    "not_yet_valid": ("token not yet valid", "nbf"),
    "wrong_audience": ("wrong audience", "aud"),
    "audience_list_without_ours": ("wrong audience", "aud"),
    "wrong_issuer": ("wrong issuer", "iss"),
    "tampered_payload": ("bad signature", "signature"),
    "tampered_signature": ("bad signature", "signature"),
    "other_key_same_kid": ("bad signature", "signature"),
    "hs256_with_rsa_public_pem": ("bad signature", "signature"),
    "hs256_wrong_secret": ("bad signature", "signature"),
    "unknown_kid": ("unknown signing key", "JWKS"),
    "es256_without_kid": ("malformed token", "kid"),
    "alg_none": ("unsupported algorithm", '"none"'),
    "hs512": ("unsupported algorithm", "HS512"),
    "rs256_header_on_ec_key": ("unsupported algorithm", "RS256"),
    "missing_sub": ("missing claim sub", "'sub'"),
    "sub_not_a_uuid": ("sub is not a user id", "UUID"),
    "missing_exp": ("missing claim exp", "'exp'"),
    "missing_aud": ("missing claim aud", "'aud'"),
    "missing_iss": ("missing claim iss", "'iss'"),
    "role_anon": ("role not allowed", '"anon"'),
    "legacy_anon_key": ("role not allowed", '"anon"'),
    "service_role_expired": ("token expired", "expired"),
    "service_role_wrong_issuer": ("wrong issuer", "iss"),
    "garbage": ("malformed token", "JWT"),
    "two_parts": ("malformed token", "JWT"),
    "empty": ("malformed token", "JWT"),
    "header_not_json": ("malformed token", "header"),
    "huge": ("token too large", str(MAX_TOKEN_CHARS)),
}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def shared_auth() -> Iterator[SupabaseAuthServer]:
    """For tests that change neither the keys nor the knobs."""
    with SupabaseAuthServer() as auth:
        yield auth


@pytest.fixture
def auth() -> Iterator[SupabaseAuthServer]:
    with SupabaseAuthServer() as auth:
        yield auth


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier_for(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, clock: Clock | None = None, **options
) -> TokenVerifier:
    jwks = JwksCache(auth.jwks_url, http, clock=clock or time.monotonic)
    options = {"hs256_secret": auth.keys.hs256_secret, "jwks": jwks} | options
    return TokenVerifier(issuer=auth.issuer, **options)


async def refused(verifier: TokenVerifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    return caught.value


# ---- the table of bad tokens ----


@pytest.fixture(scope="module")
def table(shared_auth: SupabaseAuthServer) -> dict[str, str]:
    return dict(bad_tokens(shared_auth.keys, shared_auth.issuer))


def test_the_table_is_big_enough_and_fits_in_a_header() -> None:
    assert len(BAD_NAMES) >= 22 and len(set(BAD_NAMES)) == len(BAD_NAMES)
    assert set(EXPECTED) <= set(BAD_NAMES)
    for _, token in bad_tokens(SigningKeys(), DEFAULT_ISSUER):
        assert token.isascii() and "\n" not in token and " " not in token


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_bad_token_is_refused_with_a_401_naming_the_flaw(
    name: str, table: dict[str, str], shared_auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    token = table[name]
    error = await refused(verifier_for(shared_auth, http), token)
    assert (error.status_code, error.error) == (401, "invalid_token")
    challenge = error.headers["WWW-Authenticate"]
    assert challenge == f'Bearer error="invalid_token", error_description="{error.reason}"'
    assert challenge.isascii() and challenge.isprintable()
    for part in [token, *token.split(".")]:
        assert len(part) < 8 or part not in error.message  # never echoes the token
    assert shared_auth.keys.hs256_secret not in error.message
    if name in EXPECTED:
        reason, word = EXPECTED[name]
        assert error.reason == reason, error.message
        assert word in error.message


async def test_without_a_secret_hs256_is_not_accepted_at_all(
    shared_auth: SupabaseAuthServer, http: httpx.AsyncClient, table: dict[str, str]
) -> None:
    verifier = verifier_for(shared_auth, http, hs256_secret=None)
    for token in (shared_auth.keys.mint("HS256"), table["hs256_with_rsa_public_pem"]):
        error = await refused(verifier, token)
        assert error.reason == "unsupported algorithm"
        assert "accepted: ES256, RS256" in error.message


async def test_without_a_jwks_only_hs256_is_accepted(shared_auth: SupabaseAuthServer) -> None:
    verifier = TokenVerifier(
        issuer=shared_auth.issuer, hs256_secret=shared_auth.keys.hs256_secret, jwks=None
    )
    error = await refused(verifier, shared_auth.keys.mint("ES256"))
    assert error.reason == "unsupported algorithm" and "accepted: HS256)" in error.message
    assert (await verifier.verify(shared_auth.keys.mint("HS256"))).role == "authenticated"


# ---- good tokens ----


@pytest.mark.parametrize("alg", ["HS256", "ES256", "RS256"])
async def test_a_user_token_names_its_user(
    alg: str, shared_auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    user_id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    token = shared_auth.keys.mint(alg, sub=user_id, email="ada@example.test")
    verified = await verifier_for(shared_auth, http).verify(token)
    assert verified == VerifiedToken(user_id, "authenticated", verified.claims)
    assert verified.claims["email"] == "ada@example.test"
    assert verified.claims["session_id"] and verified.claims["is_anonymous"] is False


async def test_a_token_without_role_is_a_users(
    shared_auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    verified = await verifier_for(shared_auth, http).verify(shared_auth.keys.mint(omit=("role",)))
    assert verified.role == "authenticated" and verified.user_id == verified.claims["sub"]


async def test_aud_may_be_a_list(shared_auth: SupabaseAuthServer, http: httpx.AsyncClient) -> None:
    token = shared_auth.keys.mint(aud=["other", "authenticated"])
    assert (await verifier_for(shared_auth, http).verify(token)).user_id


async def test_service_role_tokens_are_admin_callers(
    shared_auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    keys, verifier = shared_auth.keys, verifier_for(shared_auth, http)
    now = int(time.time())
    legacy_without_exp = sign(
        {"alg": "HS256", "typ": "JWT"},
        {"iss": "supabase", "role": "service_role", "iat": now},
        keys.hs256_secret.encode(),
    )
    for token in (
        keys.mint_service(),  # the legacy service key: iss "supabase", no sub, no aud
        keys.mint_service("ES256", legacy=False),
        keys.mint_service("RS256", legacy=False, aud="authenticated"),
        legacy_without_exp,
    ):
        verified = await verifier.verify(token)
        assert (verified.user_id, verified.role) == (None, "service_role")
        assert "sub" not in verified.claims


@pytest.mark.parametrize(("seconds_ago", "accepted"), [(10, True), (60, False)])
async def test_expiry_has_a_30_second_leeway(
    seconds_ago: int, accepted: bool, shared_auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    now = int(time.time())
    token = shared_auth.keys.mint(exp=now - seconds_ago, iat=now - 3600)
    verifier = verifier_for(shared_auth, http)
    if accepted:
        assert (await verifier.verify(token)).user_id
    else:
        assert (await refused(verifier, token)).reason == "token expired"


# ---- the JWKS cache ----


async def test_one_fetch_serves_many_verifications(
    auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    verifier = verifier_for(auth, http)
    for alg in ["ES256", "RS256"] * 10:
        await verifier.verify(auth.keys.mint(alg))
    assert auth.fetches == 1


async def test_the_keys_are_refetched_after_the_ttl(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, clock: Clock
) -> None:
    verifier = verifier_for(auth, http, clock)
    await verifier.verify(auth.keys.mint())
    clock.advance(599)
    await verifier.verify(auth.keys.mint())
    assert auth.fetches == 1
    clock.advance(2)
    await verifier.verify(auth.keys.mint())
    assert auth.fetches == 2


async def test_an_unknown_kid_refetches_at_most_once_per_cooldown(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, clock: Clock
) -> None:
    verifier = verifier_for(auth, http, clock)
    await verifier.verify(auth.keys.mint())
    clock.advance(31)
    stranger = KeyPair.generate("ES256")
    for _ in range(5):
        assert (await refused(verifier, auth.keys.mint(signer=stranger))).reason == (
            "unknown signing key"
        )
    assert auth.fetches == 2  # the first unknown kid refetched; the next four did not
    clock.advance(29)
    await refused(verifier, auth.keys.mint(signer=stranger))
    assert auth.fetches == 2
    clock.advance(1)
    await refused(verifier, auth.keys.mint(signer=stranger))
    assert auth.fetches == 3


async def test_a_rotated_key_is_picked_up_after_the_cooldown(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, clock: Clock
) -> None:
    verifier = verifier_for(auth, http, clock)
    old_token = auth.keys.mint()
    await verifier.verify(old_token)
    auth.rotate()
    new_token = auth.keys.mint()
    clock.advance(10)  # within the cooldown of the first fetch: not refetched yet
    assert (await refused(verifier, new_token)).reason == "unknown signing key"
    assert auth.fetches == 1
    clock.advance(21)
    assert (await verifier.verify(new_token)).user_id
    assert auth.fetches == 2
    # the old key left the JWKS with that fetch: its tokens stop working
    assert (await refused(verifier, old_token)).reason == "unknown signing key"
    assert auth.fetches == 2


async def test_concurrent_verifications_on_a_cold_cache_make_one_request(
    auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    auth.delay = 0.2  # every caller arrives while the first fetch is in flight
    verifier = verifier_for(auth, http)
    tokens = [auth.keys.mint("ES256" if i % 2 else "RS256") for i in range(50)]
    results = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert len({result.user_id for result in results}) == 50
    assert auth.fetches == 1


async def test_a_cancelled_caller_does_not_leave_the_cache_without_keys(
    auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    auth.delay = 0.3
    verifier = verifier_for(auth, http)
    first = asyncio.create_task(verifier.verify(auth.keys.mint()))
    await asyncio.sleep(0.1)  # the fetch is in flight
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    auth.delay = 0.0
    assert (await verifier.verify(auth.keys.mint())).user_id  # no cooldown after a cancel
    assert auth.fetches == 2


@pytest.mark.parametrize("failure", ["status 500", "html", "not a jwks", "refused"])
async def test_an_unreachable_jwks_is_a_401_not_a_crash(
    failure: str, auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    url = auth.jwks_url
    if failure == "status 500":
        auth.fail_status = 500
    elif failure == "html":
        auth.html = True
    elif failure == "not a jwks":
        url = f"{auth.url}/auth/v1/elsewhere"  # a JSON 404
    else:
        url = "http://127.0.0.1:9/auth/v1/.well-known/jwks.json"  # the discard port: refused
    jwks = JwksCache(url, http)
    verifier = TokenVerifier(issuer=auth.issuer, hs256_secret=None, jwks=jwks)
    assert await jwks.prime() is False  # never raises
    error = await refused(verifier, auth.keys.mint())
    assert error.reason == "cannot fetch the signing keys" and url in error.message


async def test_a_warm_cache_keeps_working_when_the_endpoint_fails(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, clock: Clock
) -> None:
    verifier = verifier_for(auth, http, clock)
    await verifier.verify(auth.keys.mint())
    auth.fail_status = 500
    clock.advance(700)  # past the TTL: refetched, which fails, and the old keys stay
    assert (await verifier.verify(auth.keys.mint("RS256"))).user_id
    assert auth.fetches == 2
    clock.advance(10)  # a failed fetch is not retried within the cooldown either
    await verifier.verify(auth.keys.mint())
    assert auth.fetches == 2
    auth.fail_status = None
    clock.advance(30)
    await verifier.verify(auth.keys.mint())
    assert auth.fetches == 3


async def test_prime_fetches_ahead_of_the_first_token(
    auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    jwks = JwksCache(auth.jwks_url, http)
    assert await jwks.prime() is True
    verifier = TokenVerifier(issuer=auth.issuer, hs256_secret=None, jwks=jwks)
    await verifier.verify(auth.keys.mint())
    assert auth.fetches == 1


async def test_keys_it_cannot_use_are_skipped_not_fatal(
    auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    auth.extra_keys = [
        {"kty": "OKP", "crv": "X448", "x": "AAAA", "kid": "x448"},
        {"kty": "future", "kid": "future"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
        KeyPair.generate("ES256").public_jwk() | {"use": "enc", "kid": "encryption"},
        {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad", "kid": "broken"},
        "not an object",
    ]
    verifier = verifier_for(auth, http)
    assert (await verifier.verify(auth.keys.mint())).user_id
    oct_kid = auth.keys.mint("HS256", header={"kid": "symmetric"})
    assert (await verifier.verify(oct_kid)).user_id  # HS256 uses the secret, never a JWK
    forged = sign({"alg": "ES256", "kid": "symmetric"}, {"sub": "x"}, auth.keys.es256.private_key)
    assert (await refused(verifier, forged)).reason == "unknown signing key"


async def test_the_postgrest_emulator_serves_the_same_jwks(
    auth: SupabaseAuthServer, http: httpx.AsyncClient
) -> None:
    # No database is reached: the JWKS path never touches the pool.
    with PostgrestServer("postgresql://127.0.0.1:9/unused", jwks=auth.keys) as rest:
        response = await http.get(f"{rest.url}{JWKS_PATH}")
        assert response.status_code == 200
        assert json.loads(response.text) == auth.keys.jwks()
        jwks = JwksCache(f"{rest.url}{JWKS_PATH}", http)
        verifier = TokenVerifier(issuer=auth.issuer, hs256_secret=None, jwks=jwks)
        assert (await verifier.verify(auth.keys.mint("RS256"))).user_id
    assert auth.fetches == 0


# ---- verified tokens are remembered briefly ----


async def test_a_token_seen_again_is_not_parsed_again(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = verifier_for(auth, http)
    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    token = auth.keys.mint("ES256")
    first = await verifier.verify(token)
    parsed = len(decodes)
    for _ in range(100):
        assert await verifier.verify(token) == first
    assert len(decodes) == parsed  # answered from what was verified
    other = auth.keys.mint("ES256")
    assert (await verifier.verify(other)).user_id != first.user_id
    assert len(decodes) > parsed


async def test_a_remembered_token_is_checked_again_once_its_key_has_left_the_jwks(
    auth: SupabaseAuthServer, http: httpx.AsyncClient, clock: Clock
) -> None:
    verifier = verifier_for(auth, http, clock)
    token = auth.keys.mint("RS256")
    await verifier.verify(token)
    auth.rotate()
    clock.advance(31)
    await verifier.verify(auth.keys.mint("RS256"))  # an unknown kid: the JWKS is refetched
    assert (await refused(verifier, token)).reason == "unknown signing key"
