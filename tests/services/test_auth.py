"""The Authenticator: who a request's credentials make the caller, in each OPENCODE_AUTH mode."""

import base64
import uuid

import pytest

from opencode.core.errors import OpencodeError
from opencode.core.users import LOCAL_CALLER, LOCAL_USER_ID, Caller
from opencode.services.auth import Authenticator, Credentials
from opencode.services.tokens import InvalidToken, TokenVerifier
from tests.fakes.supabase_auth import SigningKeys

ADMIN = "admin-token-0123456789"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def keys() -> SigningKeys:
    return SigningKeys()


@pytest.fixture
def supabase(keys) -> Authenticator:
    verifier = TokenVerifier(issuer=keys.issuer, hs256_secret=keys.hs256_secret, jwks=None)
    return Authenticator("supabase", admin_token=ADMIN, verifier=verifier)


async def test_none_mode_is_the_local_user_whatever_is_sent():
    auth = Authenticator("none")
    assert await auth.authenticate(Credentials()) == LOCAL_CALLER
    garbage = Credentials(authorization="Bearer nonsense", user_id=str(uuid.uuid4()))
    assert await auth.authenticate(garbage) == LOCAL_CALLER


async def test_password_mode_takes_basic_auth_only():
    auth = Authenticator("password", password="s3cret")
    ok = Credentials(authorization=basic("opencode", "s3cret"))
    assert await auth.authenticate(ok) == LOCAL_CALLER
    for wrong in (None, basic("opencode", "nope"), basic("admin", "s3cret"), "Basic %%%"):
        with pytest.raises(OpencodeError) as refused:
            await auth.authenticate(Credentials(authorization=wrong))
        assert refused.value.status_code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic")


async def test_supabase_mode_makes_the_tokens_sub_the_caller(keys, supabase):
    sub = str(uuid.uuid4())
    token = keys.mint("HS256", sub=sub)
    assert await supabase.authenticate(Credentials(authorization=f"Bearer {token}")) == Caller(sub)
    # the query parameter counts too (the middleware only passes it on stream routes)
    assert await supabase.authenticate(Credentials(access_token=token)) == Caller(sub)
    # X-User-Id means nothing from a user
    spoof = Credentials(authorization=f"Bearer {token}", user_id=str(uuid.uuid4()))
    assert await supabase.authenticate(spoof) == Caller(sub)


async def test_supabase_mode_refuses_missing_and_bad_tokens(keys, supabase):
    with pytest.raises(OpencodeError) as missing:
        await supabase.authenticate(Credentials())
    assert missing.value.status_code == 401
    assert missing.value.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(InvalidToken):
        await supabase.authenticate(Credentials(authorization="Bearer not.a.token"))
    expired = keys.mint("HS256", lifetime=-120)
    with pytest.raises(InvalidToken, match="expired"):
        await supabase.authenticate(Credentials(authorization=f"Bearer {expired}"))


async def test_admin_token_and_service_role_act_for_x_user_id(keys, supabase):
    user = str(uuid.uuid4())
    for token in (ADMIN, keys.mint_service("HS256")):
        acting = Credentials(authorization=f"Bearer {token}", user_id=user.upper())
        assert await supabase.authenticate(acting) == Caller(user, admin=True)
        everyone = await supabase.authenticate(Credentials(authorization=f"Bearer {token}"))
        assert everyone == Caller(LOCAL_USER_ID, admin=True, everyone=True)
        assert everyone.owner_filter is None
        with pytest.raises(OpencodeError) as bad:
            await supabase.authenticate(
                Credentials(authorization=f"Bearer {token}", user_id="alice")
            )
        assert bad.value.status_code == 400


async def test_the_admin_token_works_in_password_mode_too():
    auth = Authenticator("password", password="s3cret", admin_token=ADMIN)
    caller = await auth.authenticate(Credentials(authorization=f"Bearer {ADMIN}"))
    assert caller.admin and caller.everyone
    with pytest.raises(OpencodeError):
        await auth.authenticate(Credentials(authorization=f"Bearer {ADMIN}x"))


def test_callers_see_their_own_rows_and_admins_everyones():
    alice = Caller(str(uuid.uuid4()))
    assert alice.may_see(alice.user_id) and not alice.may_see(str(uuid.uuid4()))
    assert not alice.may_see(None)  # a row no server wrote belongs to nobody's user
    assert alice.owner_filter == alice.user_id
    admin = Caller(alice.user_id, admin=True)
    assert admin.may_see(str(uuid.uuid4())) and admin.owner_filter == alice.user_id


async def test_the_admin_token_never_counts_from_the_query_string(supabase):
    with pytest.raises(InvalidToken):  # verified as a Supabase token, which it is not
        await supabase.authenticate(Credentials(access_token=ADMIN))
    password = Authenticator("password", password="s3cret", admin_token=ADMIN)
    with pytest.raises(OpencodeError) as refused:
        await password.authenticate(Credentials(access_token=ADMIN))
    assert refused.value.status_code == 401
