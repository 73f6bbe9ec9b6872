"""Authentication through the real server: Basic auth and none mode; Supabase access tokens
(every bad token of the shared table refused, ES256/RS256/HS256 accepted, ``?access_token=``
on the stream routes only, never logged); admin callers (``OPENCODE_ADMIN_TOKEN`` and
``service_role`` tokens, ``X-User-Id``); and ``GET /session`` paging past 10,000 sessions."""

import asyncio
import base64
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from opencode.core.ids import new_id, utc_now
from opencode.storage.base import SessionRecord
from opencode.storage.sqlite import SqliteStore
from tests.conftest import server_env
from tests.e2e.helpers import new_session, open_turn, send
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider, Reply
from tests.fakes.supabase_auth import (
    DEFAULT_ISSUER,
    SigningKeys,
    SupabaseAuthServer,
    bad_tokens,
)
from tests.sse import Frame, SSEParser

pytestmark = pytest.mark.timeout(90)

ADMIN_TOKEN = f"admin-{secrets.token_urlsafe(24)}"
BAD_NAMES = [name for name, _ in bad_tokens(SigningKeys(), DEFAULT_ISSUER)]
ALL_PAGE = 10_000  # GET /session without limit answers at most this many


async def test_password_protects_the_real_server(fake, start_server):
    server = start_server(OPENCODE_SERVER_PASSWORD="hunter2", OPENCODE_MAX_BODY_BYTES="2048")
    fake.script(Reply(text="authorised"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        assert (await anonymous.get("/health")).json()["status"] == "ok"
        denied = await anonymous.post("/session")
        assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
        assert (await anonymous.get("/event")).status_code == 401
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, auth=("opencode", "hunter2")
    ) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="hi")
        assert frames[-1].type == "done"
        too_big = await client.post(f"/session/{session_id}/message", json={"content": "x" * 4096})
        assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
        assert (await client.get(f"/session/{session_id}/message")).json()["total_count"] == 2
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, auth=("opencode", "wrong")
    ) as intruder:
        assert (await intruder.get(f"/session/{session_id}")).status_code == 401


# ---- password and none modes ----


async def test_password_mode_wants_basic_auth_and_takes_the_admin_token(start_server):
    server = start_server(OPENCODE_SERVER_PASSWORD="hunter2", OPENCODE_ADMIN_TOKEN=ADMIN_TOKEN)
    user_id = str(uuid.uuid4())
    keys = SigningKeys()
    attempts = {
        "nothing": {},
        "wrong password": {"Authorization": basic("opencode", "nope")},
        "wrong user": {"Authorization": basic("admin", "hunter2")},
        "a Supabase token": bearer(keys.mint("HS256", sub=user_id)),
        "not base64": {"Authorization": "Basic %%%"},
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for what, headers in attempts.items():
            for method, path in (("GET", "/session"), ("GET", "/docs"), ("POST", "/session")):
                denied = await client.request(method, path, headers=headers)
                assert denied.status_code == 401, (what, path)
                assert denied.json()["error"] == "unauthorized", (what, path)
                assert denied.headers["www-authenticate"].startswith("Basic"), (what, path)
        # ?access_token= is no password, and it counts on the stream routes only
        in_query = await client.get("/event", params={"access_token": "hunter2"})
        assert in_query.status_code == 401
        in_query = await client.get("/session", params={"access_token": ADMIN_TOKEN})
        assert in_query.status_code == 401
        # the admin token never counts from a URL (it would end up in proxies' logs)
        in_query = await client.get("/event", params={"access_token": ADMIN_TOKEN})
        assert in_query.status_code == 401

        local = {"Authorization": basic("opencode", "hunter2")}
        made = await client.post("/session", headers=local)
        assert made.status_code == 201
        session_id = made.json()["id"]
        # the admin token acting for a user: that user owns what it creates, the local user
        # (Basic auth) does not see it in its list, and the admin still reaches the local one
        admin_for_user = bearer(ADMIN_TOKEN) | {"X-User-Id": user_id}
        theirs = (await client.post("/session", headers=admin_for_user)).json()["id"]
        assert ids(await client.get("/session", headers=admin_for_user)) == [theirs]
        assert theirs not in ids(await client.get("/session", headers=local))
        assert session_id in ids(await client.get("/session", headers=local))
        assert (await client.get(f"/session/{session_id}", headers=admin_for_user)).is_success
        everyone = ids(await client.get("/session", headers=bearer(ADMIN_TOKEN)))
        assert {session_id, theirs} <= set(everyone)


async def test_none_mode_needs_nothing_and_ignores_credentials(fake, start_server):
    server = start_server(OPENCODE_AUTH="none")
    fake.script(Reply(text="open house"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="hi")
        assert frames[-1].type == "done"
        for headers in ({"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic %%%"}):
            answered = await client.get(f"/session/{session_id}", headers=headers)
            assert answered.status_code == 200, headers
        async with client.stream("GET", "/event") as events:
            assert events.status_code == 200
        assert (await client.get("/docs")).status_code == 200


# ---- supabase mode: one server for the module ----


def supabase_env(
    provider: FakeProvider, workdir: Path, auth: SupabaseAuthServer, **overrides: str
) -> dict[str, str]:
    return server_env(
        provider,
        workdir,
        None,
        OPENCODE_AUTH="supabase",
        SUPABASE_URL=auth.url,
        SUPABASE_JWT_SECRET=auth.keys.hs256_secret,
        OPENCODE_ADMIN_TOKEN=ADMIN_TOKEN,
        **overrides,
    )


@pytest.fixture(scope="module")
def supabase_server(
    provider_server: FakeProvider, supabase_auth: SupabaseAuthServer, tmp_path_factory
) -> Iterator[ServerProcess]:
    """DEBUG logging, so the check that no token reaches the log reads everything it writes."""
    workdir = tmp_path_factory.mktemp("supabase-auth")
    env = supabase_env(provider_server, workdir, supabase_auth, OPENCODE_LOG_LEVEL="DEBUG")
    server = ServerProcess(workdir, env).start()
    yield server
    server.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}" if token else "Bearer"}


def as_caller(
    server: ServerProcess, token: str | None = None, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """A client that sends ``token`` as ``Authorization: Bearer`` (and ``headers``)."""
    sent = (bearer(token) if token else {}) | (headers or {})
    return httpx.AsyncClient(base_url=server.url, timeout=30, headers=sent)


async def next_frame(response: httpx.Response, type: str) -> Frame:
    """The first frame of an SSE response whose event is ``type``."""
    parser = SSEParser()
    async for line in response.aiter_lines():
        frame = parser.feed(line)
        if frame is not None and frame.event == type:
            return frame
    raise AssertionError(f"the stream ended without a {type} frame")


def new_user(keys: SigningKeys, alg: str = "ES256") -> tuple[str, str]:
    """A fresh user id and an access token for it."""
    user_id = str(uuid.uuid4())
    return user_id, keys.mint(alg, sub=user_id)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [session["id"] for session in response.json()]


def segments(token: str) -> list[str]:
    """The parts of a token long enough that finding one in a text means the token leaked."""
    return [part for part in token.split(".") if len(part) >= 8] or ([token] if token else [])


@pytest.fixture(scope="module")
def bad_table(supabase_auth: SupabaseAuthServer) -> dict[str, str]:
    return dict(bad_tokens(supabase_auth.keys, supabase_auth.issuer))


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_bad_token_is_a_401_that_does_not_quote_it(name, bad_table, supabase_server):
    token = bad_table[name]
    async with as_caller(supabase_server, headers=bearer(token)) as client:
        refused = await client.get("/session")
    assert refused.status_code < 500 and not refused.is_success, refused.text
    for part in segments(token):
        assert part not in refused.text
        assert part not in refused.headers.get("www-authenticate", "")
    if refused.status_code in (400, 431):
        # Bigger than h11's 16 KiB limit on a request head: refused by the HTTP layer
        # before the app (and its own 16 KiB token cap) sees it.
        assert name == "huge" and len(token) > 16 * 1024
        return
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    if name == "empty":  # "Authorization: Bearer" with nothing after it: no token at all
        assert refused.json()["error"] == "unauthorized"
        assert challenge == 'Bearer realm="opencode"'
    else:
        assert refused.json()["error"] == "invalid_token"
        assert challenge.startswith('Bearer error="invalid_token", error_description="')
        assert refused.json()["detail"].startswith("Invalid access token: ")


async def test_the_bad_token_table_never_reaches_the_log(bad_table, supabase_server):
    async with as_caller(supabase_server) as client:
        for name, token in bad_table.items():
            refused = await client.get("/event", params={"access_token": token})
            assert 400 <= refused.status_code < 500, name
    log = supabase_server.log()
    assert "auth: supabase" in log and "Traceback" not in log
    for token in bad_table.values():
        for part in segments(token):
            assert part not in log


async def test_no_token_is_a_401_and_the_docs_and_health_are_public(supabase_server):
    async with as_caller(supabase_server) as anonymous:
        for method, path in (("GET", "/session"), ("POST", "/session"), ("GET", "/event")):
            denied = await anonymous.request(method, path)
            assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
            assert denied.headers["www-authenticate"] == 'Bearer realm="opencode"'
        denied = await anonymous.get("/session", headers={"Authorization": basic("opencode", "x")})
        assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
        for path in ("/docs", "/redoc", "/openapi.json", "/health"):
            assert (await anonymous.get(path)).status_code == 200, path


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
async def test_a_good_token_of_each_algorithm_is_its_user(alg, keys, supabase_server):
    user_id, token = new_user(keys, alg)
    other_alg = {"ES256": "RS256", "RS256": "HS256", "HS256": "ES256"}[alg]
    async with (
        as_caller(supabase_server, token) as client,
        as_caller(supabase_server, keys.mint(other_alg, sub=user_id)) as same_user,
        as_caller(supabase_server, new_user(keys, alg)[1]) as stranger,
    ):
        listed = await client.get("/session")
        assert listed.status_code == 200 and listed.json() == []
        assert listed.headers["x-total-count"] == "0"
        session_id = await new_session(client, title=f"by {alg}")
        assert ids(await same_user.get("/session")) == [session_id]  # the same sub, any key
        assert ids(await stranger.get("/session")) == []


async def test_a_user_token_cannot_act_for_someone_else(keys, supabase_server):
    owner_id, owner_token = new_user(keys)
    _, token = new_user(keys)
    async with (
        as_caller(supabase_server, owner_token) as owner,
        as_caller(supabase_server, token, {"X-User-Id": owner_id}) as pretender,
    ):
        session_id = await new_session(owner)
        assert ids(await pretender.get("/session")) == []
        assert (await pretender.get(f"/session/{session_id}")).status_code == 404
        own = await new_session(pretender)
        assert ids(await pretender.get("/session")) == [own]
        assert own not in ids(await owner.get("/session"))


async def test_access_token_in_the_query_only_on_event_and_stream(fake, keys, supabase_server):
    _, token = new_user(keys)
    fake.script(Reply(text=["still ", "going"], hang_after=1))
    async with (
        as_caller(supabase_server, token) as client,
        as_caller(supabase_server) as browser,
    ):
        session_id = await new_session(client)
        query = {"access_token": token}
        async with browser.stream("GET", "/event", params=query) as events:
            assert events.status_code == 200
            assert (await next_frame(events, "server.connected")).id is None
        assert (await browser.head("/event", params=query)).status_code == 200

        async with open_turn(client, session_id, content="go") as reader:
            await reader.until_type("text")
            async with browser.stream(
                "GET", f"/session/{session_id}/stream", params=query
            ) as stream:
                assert stream.status_code == 200
                assert (await next_frame(stream, "text")).data["text"] == "still "
            assert (await client.post(f"/session/{session_id}/abort")).status_code == 200
            assert (await reader.rest())[-1].data["stop_reason"] == "aborted"

        for method, path in (
            ("GET", "/session"),
            ("POST", "/session"),
            ("GET", f"/session/{session_id}"),
            ("GET", f"/session/{session_id}/message"),
            ("DELETE", f"/session/{session_id}"),
            ("GET", "/question"),
            ("POST", f"/session/{session_id}/stream"),  # a method other than GET/HEAD
        ):
            denied = await browser.request(method, path, params=query)
            assert denied.status_code == 401, (method, path)
            assert denied.json()["error"] == "unauthorized", (method, path)
        assert (await client.get(f"/session/{session_id}")).status_code == 200  # not deleted

        # a bad query token is as bad as a bad header
        bad = await browser.get("/event", params={"access_token": token[:-4] + "AAAA"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
        # the admin token only counts in the Authorization header
        admin = await browser.get("/event", params={"access_token": ADMIN_TOKEN})
        assert admin.status_code == 401 and admin.json()["error"] == "invalid_token"

    log = supabase_server.log()
    for part in segments(token):
        assert part not in log
    assert "access_token=" not in log


async def test_the_admin_token_acts_for_the_user_named_by_x_user_id(keys, supabase_server):
    owner_id, owner_token = new_user(keys)
    _, other_token = new_user(keys)
    admin_headers = {"X-User-Id": owner_id}
    async with (
        as_caller(supabase_server, ADMIN_TOKEN, admin_headers) as for_owner,
        as_caller(supabase_server, ADMIN_TOKEN, {"X-User-Id": owner_id.upper()}) as upper,
        as_caller(supabase_server, ADMIN_TOKEN) as admin,
        as_caller(supabase_server, owner_token) as owner,
        as_caller(supabase_server, other_token) as other,
    ):
        made = await new_session(for_owner, title="made for the owner")
        made_upper = await new_session(upper, title="made with an upper-case id")
        assert sorted(ids(await owner.get("/session"))) == sorted([made, made_upper])
        assert (await owner.get(f"/session/{made}")).json()["title"] == "made for the owner"
        assert (await other.get(f"/session/{made}")).status_code == 404
        theirs = await new_session(other, title="the other user's")

        # acting for the owner: lists narrowed to the owner, any row reachable by id
        assert sorted(ids(await for_owner.get("/session"))) == sorted([made, made_upper])
        assert (await for_owner.get(f"/session/{theirs}")).status_code == 200
        renamed = await for_owner.patch(f"/session/{theirs}", json={"title": "renamed by admin"})
        assert renamed.status_code == 200
        assert (await other.get(f"/session/{theirs}")).json()["title"] == "renamed by admin"

        # no X-User-Id: everyone's
        everyone = await admin.get("/session")
        assert {made, made_upper, theirs} <= set(ids(everyone))
        assert int(everyone.headers["x-total-count"]) >= 3
        assert (await admin.delete(f"/session/{made_upper}")).status_code == 200
        assert ids(await owner.get("/session")) == [made]

        # the admin token with anything after it is just a bad token
        async with as_caller(supabase_server, ADMIN_TOKEN + "x") as almost:
            refused = await almost.get("/session")
            assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    "user_id",
    [
        "not-a-uuid",
        "12345",
        "123e4567e89b12d3a456426614174000",  # a UUID without dashes
        "{123e4567-e89b-12d3-a456-426614174000}",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456-42661417400g",
    ],
)
async def test_a_bad_x_user_id_is_a_400(user_id, keys, supabase_server):
    for token in (ADMIN_TOKEN, keys.mint_service()):
        async with as_caller(supabase_server, token, {"X-User-Id": user_id}) as admin:
            refused = await admin.get("/session")
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"] == "bad_request"
            assert "X-User-Id" in refused.json()["detail"]
            assert (await admin.post("/session")).status_code == 400


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-key", "project-issued"])
async def test_a_service_role_token_is_an_admin_caller(legacy, keys, supabase_server):
    service = keys.mint_service(legacy=legacy)
    owner_id, owner_token = new_user(keys)
    _, other_token = new_user(keys)
    async with (
        as_caller(supabase_server, service, {"X-User-Id": owner_id}) as for_owner,
        as_caller(supabase_server, service) as admin,
        as_caller(supabase_server, owner_token) as owner,
        as_caller(supabase_server, other_token) as other,
    ):
        made = await new_session(for_owner)
        assert ids(await owner.get("/session")) == [made]
        assert ids(await for_owner.get("/session")) == [made]
        theirs = await new_session(other)
        assert (await for_owner.get(f"/session/{theirs}")).status_code == 200
        assert {made, theirs} <= set(ids(await admin.get("/session")))
        assert (await other.get(f"/session/{made}")).status_code == 404


# ---- GET /session paging ----


async def seed_sessions(path: Path, owners: dict[str, int]) -> dict[str, list[str]]:
    """``count`` sessions per owner straight into the SQLite file, one second apart and
    interleaved between owners; their ids newest first, per owner."""
    store = SqliteStore(str(path))
    await store.initialize()
    made: dict[str, list[str]] = {owner: [] for owner in owners}
    start = utc_now() - timedelta(days=1)
    try:
        for index in range(max(owners.values())):
            for owner, count in owners.items():
                if index < count:
                    at = start + timedelta(seconds=index)
                    record = SessionRecord(
                        id=new_id("ses"),
                        title=f"seeded {index}",
                        created_at=at,
                        updated_at=at,
                        user_id=owner,
                    )
                    await store.create_session(record)
                    made[owner].append(record.id)
    finally:
        await store.close()
    return {owner: list(reversed(session_ids)) for owner, session_ids in made.items()}


async def test_session_list_pages_by_ten_thousand_with_a_next_link(
    keys, supabase_auth, provider_server, tmp_path
):
    owner_id, owner_token = new_user(keys, "HS256")
    other_id, other_token = new_user(keys, "HS256")
    seeded = await seed_sessions(tmp_path / "opencode.db", {owner_id: ALL_PAGE + 57, other_id: 3})
    server = ServerProcess(tmp_path, supabase_env(provider_server, tmp_path, supabase_auth))
    await asyncio.to_thread(server.start)
    try:
        async with (
            as_caller(server, owner_token) as owner,
            as_caller(server, other_token) as other,
            as_caller(server, ADMIN_TOKEN) as admin,
        ):
            first = await owner.get("/session")
            assert first.headers["x-total-count"] == str(ALL_PAGE + 57)
            assert ids(first) == seeded[owner_id][:ALL_PAGE]  # newest first
            link = first.headers["link"]
            assert link == (
                f'<{server.url}/session?limit={ALL_PAGE}&offset={ALL_PAGE}>; rel="next"'
            )
            rest = await owner.get(link[1 : link.index(">")])
            assert ids(rest) == seeded[owner_id][ALL_PAGE:]
            assert "link" not in rest.headers
            assert rest.headers["x-total-count"] == str(ALL_PAGE + 57)

            # another user's sessions are neither listed nor counted
            theirs = await other.get("/session")
            assert ids(theirs) == seeded[other_id]
            assert theirs.headers["x-total-count"] == "3" and "link" not in theirs.headers

            # an explicit limit pages the same way; the page size is capped
            page = await owner.get("/session", params={"limit": 50, "offset": 10})
            assert ids(page) == seeded[owner_id][10:60]
            assert page.headers["link"].endswith('/session?limit=50&offset=60>; rel="next"')
            last = await owner.get("/session", params={"limit": 50, "offset": ALL_PAGE + 50})
            assert ids(last) == seeded[owner_id][-7:] and "link" not in last.headers
            too_big = await owner.get("/session", params={"limit": ALL_PAGE + 1})
            assert too_big.status_code == 422

            everyone = await admin.get("/session")
            assert everyone.headers["x-total-count"] == str(ALL_PAGE + 60)
            assert len(ids(everyone)) == ALL_PAGE and "link" in everyone.headers
    finally:
        await asyncio.to_thread(server.stop)
