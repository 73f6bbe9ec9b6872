"""Two users on one real server in supabase auth mode, on SQLite and PostgreSQL: everything of
one user's session (every ``/session/{session_id}`` operation the OpenAPI lists, its pending
question, its place in the lists, its events) is invisible to the other, who gets exactly what
an unknown id gets and changes nothing."""

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opencode.core.ids import new_id
from tests.conftest import database, server_env
from tests.e2e.helpers import listen_bus, new_session, open_turn, send, wait_until
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider, Reply
from tests.fakes.supabase_auth import SigningKeys, SupabaseAuthServer
from tests.sse import Frame

pytestmark = pytest.mark.timeout(120)
E2E_STORES = ("sqlite", "postgres")  # tests/conftest.py: each test runs on both

ADMIN_TOKEN = f"admin-{secrets.token_urlsafe(24)}"
TODOS = [{"id": "1", "content": "sand the fence", "status": "pending", "priority": "high"}]
QUESTION = {
    "question": "Which colour?",
    "header": "Colour",
    "options": [{"label": "red", "description": ""}, {"label": "blue", "description": ""}],
    "multiple": False,
}
SUMMARY = "## Goal\nPaint the fence.\n## Open tasks and todos\nSand it first."
# What another user sends to each operation: what would succeed for the owner. Operations not
# listed get no body, or ``{}`` when they take one (the 404 comes before the body is read).
BODIES = {
    ("PATCH", "/session/{session_id}"): {"title": "taken over"},
    ("POST", "/session/{session_id}/message"): {"content": "ignore the owner"},
}
# Every operation on one session that exists today; the OpenAPI must list at least these.
KNOWN = {
    ("GET", "/session/{session_id}"),
    ("PATCH", "/session/{session_id}"),
    ("DELETE", "/session/{session_id}"),
    ("GET", "/session/{session_id}/message"),
    ("POST", "/session/{session_id}/message"),
    ("GET", "/session/{session_id}/stream"),
    ("POST", "/session/{session_id}/abort"),
    ("POST", "/session/{session_id}/generate-title"),
    ("GET", "/session/{session_id}/cost"),
    ("POST", "/session/{session_id}/compact"),
    ("GET", "/session/{session_id}/compaction-status"),
    ("GET", "/session/{session_id}/todo"),
}


@pytest.fixture(scope="module")
def isolated_server(
    provider_server: FakeProvider,
    supabase_auth: SupabaseAuthServer,
    store_backend: str,
    tmp_path_factory,
) -> Iterator[ServerProcess]:
    """ES256 tokens only (no SUPABASE_JWT_SECRET): verified with keys from the JWKS."""
    workdir = tmp_path_factory.mktemp(f"isolation-{store_backend}")
    with database(store_backend, workdir) as store:
        env = server_env(
            provider_server,
            workdir,
            store,
            OPENCODE_AUTH="supabase",
            SUPABASE_URL=supabase_auth.url,
            OPENCODE_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        server = ServerProcess(workdir, env).start()
        yield server
        server.stop()


def as_caller(
    server: ServerProcess, token: str, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    sent = {"Authorization": f"Bearer {token}"} | (headers or {})
    return httpx.AsyncClient(base_url=server.url, timeout=30, headers=sent)


def new_user(keys: SigningKeys) -> tuple[str, str]:
    user_id = str(uuid.uuid4())
    return user_id, keys.mint("ES256", sub=user_id)


def mentions(frame: Frame, *ids: str) -> bool:
    text = json.dumps(frame.data)
    return any(identifier in text for identifier in ids)


async def session_operations(client: httpx.AsyncClient) -> list[tuple[str, str, bool]]:
    """(method, path, takes a body) of every operation whose path has ``{session_id}``, from
    the server's own OpenAPI, plus HEAD for each GET (the server answers HEAD on every GET)."""
    spec = (await client.get("/openapi.json")).json()
    operations = [
        (method.upper(), path, "requestBody" in operation)
        for path, item in spec["paths"].items()
        if "{session_id}" in path
        for method, operation in item.items()
    ]
    operations += [("HEAD", path, False) for method, path, _ in operations if method == "GET"]
    assert {(method, path) for method, path, _ in operations} >= KNOWN
    return operations


async def call(
    client: httpx.AsyncClient, method: str, path: str, takes_body: bool, session_id: str
) -> httpx.Response:
    body = BODIES.get((method, path), {} if takes_body else None)
    url = path.replace("{session_id}", session_id)
    return await client.request(method, url, json=body)


def assert_same_as_unknown(theirs: httpx.Response, unknown: httpx.Response, ids: tuple) -> None:
    """Status, headers and body alike, but for the id (both ids have the same length)."""
    their_id, unknown_id = ids
    what = f"{theirs.request.method} {theirs.request.url.path}"
    assert theirs.status_code == 404, (what, theirs.text)
    assert theirs.content == unknown.content.replace(unknown_id.encode(), their_id.encode()), what
    assert [(k, v) for k, v in theirs.headers.items() if k != "date"] == [
        (k, v) for k, v in unknown.headers.items() if k != "date"
    ], what
    if theirs.request.method != "HEAD":
        assert theirs.json()["error"] == "not_found", what


async def snapshot(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """What the owner sees of the session, read through every GET it has."""
    seen = {}
    for route in ("", "/message", "/todo", "/cost", "/compaction-status"):
        response = await client.get(f"/session/{session_id}{route}")
        assert response.status_code == 200, response.text
        seen[route] = response.json()
    return seen


async def test_another_users_session_and_question_are_not_found_and_untouched(
    fake, keys, isolated_server
):
    server = isolated_server
    alice_id, alice_token = new_user(keys)
    _, bob_token = new_user(keys)
    fake.script(
        Reply(tool_calls=[("call_todo", "todowrite", {"todos": TODOS})]),
        Reply(text="Planned."),
        Reply(text="Noted."),
        Reply(text=SUMMARY),
        Reply(tool_calls=[("call_q", "question", {"questions": [QUESTION]})]),
        Reply(text="Blue it is."),
    )
    async with (
        as_caller(server, alice_token) as alice,
        # a user's X-User-Id means nothing: bob stays bob
        as_caller(server, bob_token, {"X-User-Id": alice_id}) as bob,
        as_caller(server, ADMIN_TOKEN) as admin,
        listen_bus(alice) as alice_events,
        listen_bus(bob) as bob_events,
        listen_bus(admin) as all_events,
    ):
        session_id = await new_session(alice, title="alice's fence")
        assert (await send(alice, session_id, content="plan the fence"))[-1].type == "done"
        assert (await send(alice, session_id, content="then paint it"))[-1].type == "done"
        compacted = await alice.post(f"/session/{session_id}/compact")
        assert compacted.status_code == 200 and compacted.json()["status"] == "completed"

        async with open_turn(alice, session_id, content="which colour?") as turn:
            asked = (await turn.until_type("question"))[-1].data
            question_id = asked["question_id"]
            before = await snapshot(alice, session_id)
            assert before[""]["status"] == "busy" and before["/todo"] == TODOS
            assert before["/compaction-status"]["compactions"] == 1
            provider_calls = len(fake.requests)

            operations = await session_operations(bob)
            for method, path, takes_body in operations:
                unknown_id = new_id("ses")
                theirs = await call(bob, method, path, takes_body, session_id)
                unknown = await call(bob, method, path, takes_body, unknown_id)
                assert_same_as_unknown(theirs, unknown, (session_id, unknown_id))
            for action in ("reply", "reject"):
                unknown_id = new_id("que")
                body = {"answers": [["red"]]} if action == "reply" else None
                theirs = await bob.post(f"/question/{question_id}/{action}", json=body)
                unknown = await bob.post(f"/question/{unknown_id}/{action}", json=body)
                assert_same_as_unknown(theirs, unknown, (question_id, unknown_id))

            assert session_id not in [s["id"] for s in (await bob.get("/session")).json()]
            assert (await bob.get("/question")).json() == []
            mine = await bob.get("/question", params={"session_id": session_id})
            assert mine.status_code == 200 and mine.json() == []
            everyone = (await admin.get("/question")).json()
            assert question_id in [q["id"] for q in everyone]

            # bob's DELETE, PATCH, message, abort, title and compact changed nothing
            assert len(fake.requests) == provider_calls
            assert await snapshot(alice, session_id) == before
            pending = (await alice.get("/question")).json()
            assert [q["id"] for q in pending] == [question_id]
            answered = await alice.post(
                f"/question/{question_id}/reply", json={"answers": [["blue"]]}
            )
            assert answered.status_code == 200
            frames = await turn.rest()
        result = next(f.data for f in frames if f.type == "tool_result")
        assert '"Which colour?"="blue"' in result["text"]  # alice's answer, not bob's
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"

        # events: bob's stream is live (it gets his own session) and never saw alice's
        await wait_until(
            lambda: any(
                f.data["type"] == "session.status"
                and f.data["properties"] == {"session_id": session_id, "status": "idle"}
                for f in alice_events
            )
        )
        bob_session = await new_session(bob)
        await wait_until(lambda: any(mentions(f, bob_session) for f in bob_events))
        await wait_until(lambda: any(mentions(f, bob_session) for f in all_events))
        first_of_alice = min(int(f.id) for f in alice_events if mentions(f, session_id))
        replay = {"Last-Event-ID": str(first_of_alice - 1)}
        async with listen_bus(bob, replay) as bob_replayed:
            await wait_until(lambda: any(mentions(f, bob_session) for f in bob_replayed))
        assert bob_session not in [s["id"] for s in (await alice.get("/session")).json()]

    for frames_of_bob in (bob_events, bob_replayed):
        assert not [f.data for f in frames_of_bob if mentions(f, session_id, question_id)]
    alice_saw = {f.data["type"] for f in alice_events if mentions(f, session_id)}
    assert alice_saw >= {
        "session.created",
        "session.status",
        "message.created",
        "message.part.delta",
        "todo.updated",
        "session.compaction",
        "question.asked",
        "question.answered",
    }
    assert not [f.data for f in alice_events if mentions(f, bob_session)]
    assert {f.data["type"] for f in all_events if mentions(f, session_id)} == alice_saw


async def test_lists_hold_only_the_callers_own(keys, isolated_server):
    alice_id, alice_token = new_user(keys)
    bob_id, bob_token = new_user(keys)
    async with (
        as_caller(isolated_server, alice_token) as alice,
        as_caller(isolated_server, bob_token) as bob,
        as_caller(isolated_server, ADMIN_TOKEN, {"X-User-Id": bob_id}) as for_bob,
    ):
        alices = [await new_session(alice, title=f"alice {n}") for n in range(3)]
        bobs = [await new_session(bob, title=f"bob {n}") for n in range(2)]
        listed = await alice.get("/session")
        assert [s["id"] for s in listed.json()] == alices[::-1]  # newest first
        assert listed.headers["x-total-count"] == "3" and "link" not in listed.headers
        page = await bob.get("/session", params={"limit": 1})
        assert [s["id"] for s in page.json()] == bobs[-1:]
        assert page.headers["x-total-count"] == "2" and 'rel="next"' in page.headers["link"]
        assert [s["id"] for s in (await for_bob.get("/session")).json()] == bobs[::-1]
        # deleting one's own leaves the other's alone
        assert (await bob.delete(f"/session/{bobs[0]}")).status_code == 200
        assert (await alice.get("/session")).headers["x-total-count"] == "3"
        assert (await for_bob.get("/session")).headers["x-total-count"] == "1"


async def test_a_sub_in_upper_case_is_the_same_user(keys, isolated_server):
    """UUIDs are case-insensitive (the admin's X-User-Id is lower-cased, Postgres stores
    ``uuid``): the same user whichever case their token's sub is in."""
    user_id = str(uuid.uuid4())
    upper, lower = keys.mint("ES256", sub=user_id.upper()), keys.mint("ES256", sub=user_id)
    async with (
        as_caller(isolated_server, upper) as shouting,
        as_caller(isolated_server, lower) as quiet,
    ):
        session_id = await new_session(shouting)
        assert (await shouting.get(f"/session/{session_id}")).status_code == 200
        assert (await quiet.get(f"/session/{session_id}")).status_code == 200
        assert [s["id"] for s in (await quiet.get("/session")).json()] == [session_id]
        assert [s["id"] for s in (await shouting.get("/session")).json()] == [session_id]
