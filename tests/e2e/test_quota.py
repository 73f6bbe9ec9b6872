"""Daily token quotas through the real server: the 429 before a turn, the stop between steps,
titles and summaries counted, per-user limits, and concurrent turns (on one server and on two
sharing a PostgreSQL database) that overspend by no more than the steps already running.

Every test acts for fresh users (``OPENCODE_AUTH=none``, the admin token with ``X-User-Id``), so
the tests of the module share one server per store.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import database, server_env
from tests.e2e.helpers import by_type, new_session, open_turn, send
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider, Reply
from tests.sse import Frame

pytestmark = pytest.mark.timeout(90)
E2E_STORES = ("sqlite", "postgres")  # tests/conftest.py: each test on each

ADMIN_TOKEN = "quota-admin-token-for-tests"
DEFAULT_LIMIT = 100  # OPENCODE_DAILY_TOKEN_LIMIT of the module's server
MODEL = "openai/gpt-4o-mini"
TITLE_MODEL = "anthropic/claude-sonnet-4-5"  # its own model, so /usage shows it apart
QUOTA_ENV = {
    "OPENCODE_AUTH": "none",
    "OPENCODE_ADMIN_TOKEN": ADMIN_TOKEN,
    "OPENCODE_DAILY_TOKEN_LIMIT": str(DEFAULT_LIMIT),
    "OPENCODE_TITLE_MODEL": TITLE_MODEL,
}
QUOTA_BODY = {"error", "detail", "limit", "used", "resets_at"}


@pytest.fixture(scope="module")
def quota_server(
    provider_server: FakeProvider, tmp_path_factory: pytest.TempPathFactory, store_backend: str
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(f"quota-{store_backend}")
    with database(store_backend, workdir) as store:
        env = server_env(provider_server, workdir, store, **QUOTA_ENV)
        server = ServerProcess(workdir, env).start()
        yield server
        server.stop()


def new_user() -> str:
    return str(uuid.uuid4())


@asynccontextmanager
async def acting_for(
    server: ServerProcess, user_id: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``user_id`` (the admin token acting for it); None: the admin itself, naming
    no user."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if user_id is not None:
        headers["X-User-Id"] = user_id
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


async def usage_of(client: httpx.AsyncClient, **params: str) -> dict:
    response = await client.get("/usage", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def set_limit(server: ServerProcess, user_id: str, limit: int | None) -> dict:
    async with acting_for(server, None) as admin:
        response = await admin.put(
            "/usage/limit", json={"user_id": user_id, "daily_token_limit": limit}
        )
    assert response.status_code == 200, response.text
    return response.json()


async def message_page(client: httpx.AsyncClient, session_id: str) -> dict:
    response = await client.get(f"/session/{session_id}/message")
    assert response.status_code == 200, response.text
    return response.json()


def next_midnight() -> datetime:
    return datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)


def assert_quota_refusal(response: httpx.Response, *, limit: int, used: int) -> None:
    """The 429 of a spent quota: its exact body, and Retry-After = seconds to UTC midnight."""
    seconds_left = (next_midnight() - datetime.now(UTC)).total_seconds()
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == QUOTA_BODY, body
    assert body["error"] == "quota_exceeded"
    assert (body["limit"], body["used"]) == (limit, used)
    assert str(limit) in body["detail"] and "PUT /usage/limit" in body["detail"]
    assert datetime.fromisoformat(body["resets_at"]) == next_midnight()
    assert abs(int(response.headers["retry-after"]) - seconds_left) <= 2


def tool_step(call_id: str, **reply) -> Reply:
    return Reply(tool_calls=[(call_id, "todoread", {})], **reply)


async def test_a_user_at_the_limit_is_refused_before_anything_is_stored(fake, quota_server):
    alice, bob = new_user(), new_user()
    fake.script(
        tool_step("call_1", text="Looking.", input_tokens=30, output_tokens=20),
        Reply(text="Nothing to do.", input_tokens=40, output_tokens=10),  # 100: the limit
    )
    async with acting_for(quota_server, alice) as client:
        session_id = await new_session(client)
        grouped = by_type(await send(client, session_id, content="What is on my list?"))
        assert grouped["done"][0]["stop_reason"] == "stop"  # step 2 started at 50 of 100
        before = await message_page(client, session_id)

        refused = await client.post(f"/session/{session_id}/message", json={"content": "more"})
        assert_quota_refusal(refused, limit=DEFAULT_LIMIT, used=100)
        assert await message_page(client, session_id) == before  # nothing stored
        session = (await client.get(f"/session/{session_id}")).json()
        assert session["message_count"] == before["total_count"] == 2
        assert session["status"] == "idle"
        assert len(fake.requests) == 2  # the refused turn never reached the provider

        usage = await usage_of(client)
        assert usage["cost"] == pytest.approx(grouped["done"][0]["cost"]) and usage["cost"] > 0
        assert usage["by_model"][0]["cost"] == pytest.approx(usage["cost"])
        assert usage == {
            "user_id": alice,
            "day": datetime.now(UTC).date().isoformat(),
            "used": 100,
            "limit": DEFAULT_LIMIT,
            "remaining": 0,
            "resets_at": usage["resets_at"],
            "reserved": 0,
            "cost": usage["cost"],
            "requests": 2,
            "by_model": [
                {
                    "model": MODEL,
                    "input_tokens": 70,
                    "output_tokens": 30,
                    "total_tokens": 100,
                    "cost": usage["by_model"][0]["cost"],
                    "requests": 2,
                }
            ],
        }
        assert datetime.fromisoformat(usage["resets_at"]) == next_midnight()

    fake.script(Reply(text="Hi Bob.", input_tokens=12, output_tokens=3))
    async with acting_for(quota_server, bob) as client:  # another user: untouched
        assert (await usage_of(client))["used"] == 0
        frames = await send(client, await new_session(client), content="hi")
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "stop"
        assert (await usage_of(client))["used"] == 15
    async with acting_for(quota_server, alice) as client:
        assert (await usage_of(client))["used"] == 100


async def test_a_step_over_the_limit_ends_the_turn_with_stop_reason_quota(fake, quota_server):
    fake.script(
        tool_step("call_1", text="Let me look.", input_tokens=90, output_tokens=20),
        Reply(text="never sent"),
    )
    async with acting_for(quota_server, new_user()) as client:
        session_id = await new_session(client)
        frames = await send(client, session_id, content="What is on my list?")

        grouped = by_type(frames)
        assert [f.type for f in frames if f.type in ("done", "error")] == ["done"]
        (done,) = grouped["done"]
        assert frames[-1].type == "done" and done["stop_reason"] == "quota"
        assert [s["step_number"] for s in grouped["step_start"]] == [1]
        assert [s["stop_reason"] for s in grouped["step_finish"]] == ["tool_calls"]
        assert grouped["tool_result"][0]["tool_call_id"] == "call_1"
        assert grouped["tool_result"][0]["is_error"] is False
        assert done["usage"]["input_tokens"] == 90 and done["usage"]["output_tokens"] == 20
        assert len(fake.requests) == 1  # no second step reached the provider

        page = await message_page(client, session_id)
        assert page["total_count"] == 2
        assistant = page["messages"][1]
        assert assistant["id"] == done["message_id"] and assistant["status"] == "completed"
        assert assistant["content"] == "Let me look."
        (tool,) = [p for p in assistant["parts"] if p["type"] == "tool"]
        assert tool["call_id"] == "call_1" and tool["state"] == "completed"
        assert assistant["cost"] == pytest.approx(done["cost"])

        usage = await usage_of(client)
        assert (usage["used"], usage["remaining"], usage["requests"]) == (110, 0, 1)
        refused = await client.post(f"/session/{session_id}/message", json={"content": "go on"})
        assert_quota_refusal(refused, limit=DEFAULT_LIMIT, used=110)
    assert len(fake.requests) == 1


async def test_titles_and_manual_compaction_are_counted_and_refused_over_the_limit(
    fake, quota_server
):
    user = new_user()
    await set_limit(quota_server, user, 10_000)
    fake.script(
        Reply(text="Lisbon in May is lovely.", input_tokens=10, output_tokens=5),
        Reply(text="Lisbon trip", input_tokens=30, output_tokens=4),  # the title
        Reply(text="Three nights works.", input_tokens=20, output_tokens=6),
        Reply(text="## Goal\nLisbon.", input_tokens=300, output_tokens=40),  # the summary
        Reply(text="Booked.", input_tokens=25, output_tokens=5),
    )
    async with acting_for(quota_server, user) as client:
        session_id = await new_session(client)
        await send(client, session_id, content="I want to visit Lisbon in May.")
        turn_cost = (await client.get(f"/session/{session_id}/cost")).json()

        titled = await client.post(f"/session/{session_id}/generate-title")
        assert titled.status_code == 200, titled.text
        assert titled.json()["title"] == "Lisbon trip"
        assert fake.requests[-1].dialect == "anthropic"
        usage = await usage_of(client)
        assert (usage["used"], usage["requests"]) == (15 + 34, 2)
        models = {m["model"]: m for m in usage["by_model"]}
        title = models[TITLE_MODEL]
        assert (title["input_tokens"], title["output_tokens"], title["requests"]) == (30, 4, 1)
        assert models[MODEL]["total_tokens"] == 15
        cost = (await client.get(f"/session/{session_id}/cost")).json()
        assert (cost["input_tokens"], cost["output_tokens"]) == (40, 9)
        session_models = {m["model"]: m for m in cost["models"]}
        assert session_models[TITLE_MODEL]["steps"] == 1
        assert session_models[TITLE_MODEL]["cost"] == pytest.approx(title["cost"])
        assert cost["total_cost"] == pytest.approx(turn_cost["total_cost"] + title["cost"])

        await send(client, session_id, content="For three nights")
        compacted = await client.post(f"/session/{session_id}/compact")
        assert compacted.status_code == 200, compacted.text
        usage = await usage_of(client)
        assert (usage["used"], usage["requests"]) == (49 + 26 + 340, 4)
        summary = {m["model"]: m for m in usage["by_model"]}[MODEL]
        assert (summary["input_tokens"], summary["output_tokens"]) == (330, 51)

        await send(client, session_id, content="Book the hotel please")  # something to fold
        used = (await usage_of(client))["used"]
        assert used == 415 + 30
        await set_limit(quota_server, user, used)  # exactly spent
        requests_before = len(fake.requests)
        status_before = (await client.get(f"/session/{session_id}/compaction-status")).json()
        refused_title = await client.post(f"/session/{session_id}/generate-title")
        assert_quota_refusal(refused_title, limit=used, used=used)
        refused_compaction = await client.post(f"/session/{session_id}/compact")
        assert_quota_refusal(refused_compaction, limit=used, used=used)
        assert len(fake.requests) == requests_before
        # refused before it began: no failed attempt is recorded
        status = (await client.get(f"/session/{session_id}/compaction-status")).json()
        assert status == status_before and status["status"] == "completed"
        session = (await client.get(f"/session/{session_id}")).json()
        assert (session["title"], session["status"]) == ("Lisbon trip", "idle")
        assert (await usage_of(client))["used"] == used


async def test_an_automatic_compaction_summary_is_counted(fake, quota_server):
    # gpt-4o-mini's window is 128,000 tokens: a 110,000-token prompt compacts the next turn.
    user = new_user()
    await set_limit(quota_server, user, 1_000_000)
    fake.script(
        Reply(text="one", input_tokens=10, output_tokens=1),
        Reply(text="two", input_tokens=110_000, output_tokens=1),
        Reply(text="## Goal\nCount.", input_tokens=200, output_tokens=20),  # the summary
        Reply(text="three", input_tokens=50, output_tokens=1),
    )
    async with acting_for(quota_server, user) as client:
        session_id = await new_session(client)
        await send(client, session_id, content="first question")
        await send(client, session_id, content="second question")
        frames = await send(client, session_id, content="third question")
        compaction = [f.data["status"] for f in frames if f.type == "compaction"]
        assert compaction == ["started", "completed"] and frames[-1].type == "done"
        usage = await usage_of(client)
    assert len(fake.requests) == 4
    assert (usage["used"], usage["requests"]) == (11 + 110_001 + 220 + 51, 4)
    assert usage["remaining"] == 1_000_000 - usage["used"]


async def test_per_user_limits_beat_the_default_and_only_admins_set_them(fake, quota_server):
    user = new_user()
    async with acting_for(quota_server, user) as client:
        usage = await usage_of(client)
        assert (usage["limit"], usage["remaining"], usage["used"]) == (DEFAULT_LIMIT, 100, 0)

        raised = await set_limit(quota_server, user, 1000)  # higher than the default
        assert raised == {"user_id": user, "daily_token_limit": 1000, "default_limit": 100}
        fake.script(Reply(text="big", input_tokens=140, output_tokens=10))
        frames = await send(client, await new_session(client), content="a big one")
        assert frames[-1].data["stop_reason"] == "stop"
        usage = await usage_of(client)
        assert (usage["limit"], usage["used"], usage["remaining"]) == (1000, 150, 850)

        await set_limit(quota_server, user, 120)  # lower than the default, below what is used
        usage = await usage_of(client)
        assert (usage["limit"], usage["remaining"]) == (120, 0)
        session_id = await new_session(client)
        refused = await client.post(f"/session/{session_id}/message", json={"content": "x"})
        assert_quota_refusal(refused, limit=120, used=150)

        await set_limit(quota_server, user, 0)  # unlimited for this user
        usage = await usage_of(client)
        assert (usage["limit"], usage["remaining"]) == (0, None)
        fake.script(Reply(text="free", input_tokens=500, output_tokens=10))
        frames = await send(client, session_id, content="x")
        assert frames[-1].data["stop_reason"] == "stop"
        assert (await usage_of(client))["used"] == 660

        cleared = await set_limit(quota_server, user, None)  # back to the default
        assert cleared == {"user_id": user, "daily_token_limit": None, "default_limit": 100}
        usage = await usage_of(client)
        assert (usage["limit"], usage["remaining"]) == (DEFAULT_LIMIT, 0)
        refused = await client.post(f"/session/{session_id}/message", json={"content": "x"})
        assert_quota_refusal(refused, limit=DEFAULT_LIMIT, used=660)
        limit = (await client.get("/usage/limit")).json()
        assert limit == {"user_id": user, "daily_token_limit": None, "default_limit": 100}

    async with acting_for(quota_server, None) as admin:  # an admin reads anyone's usage
        assert (await usage_of(admin, user_id=user))["used"] == 660
        bad = await admin.put("/usage/limit", json={"user_id": user, "daily_token_limit": -1})
        assert bad.status_code == 422
        bad = await admin.put("/usage/limit", json={"user_id": "bob", "daily_token_limit": 5})
        assert bad.status_code == 422

    async with httpx.AsyncClient(base_url=quota_server.url, timeout=30) as local:  # no token
        denied = await local.put("/usage/limit", json={"user_id": user, "daily_token_limit": 0})
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
        assert (await local.get("/usage", params={"user_id": user})).status_code == 404
        assert (await local.get("/usage/limit", params={"user_id": user})).status_code == 404
    async with acting_for(quota_server, user) as client:
        assert (await client.get("/usage/limit")).json()["daily_token_limit"] is None


async def test_a_step_cut_short_is_charged_its_estimate_and_releases_its_reservation(
    fake, quota_server
):
    prompt = "Tell me a long story. " * 20  # 440 characters: a 110-token estimate
    fake.script(
        Reply(text=["Once ", "upon ", "a time"], hang_after=1),  # aborted after a chunk
        Reply(status=400, error_message="bad request"),  # fails before any output
    )
    user = new_user()
    await set_limit(quota_server, user, 1000)
    async with acting_for(quota_server, user) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content=prompt) as reader:
            await reader.until_type("text")
            usage = await usage_of(client)
            assert (usage["reserved"], usage["used"]) == (len(prompt) // 4, 0)
            assert (await client.post(f"/session/{session_id}/abort")).status_code == 200
            assert (await reader.rest())[-1].data["stop_reason"] == "aborted"
        usage = await usage_of(client)
        assert (usage["used"], usage["reserved"], usage["requests"]) == (110, 0, 1)

        frames = await send(client, await new_session(client), content=prompt)
        assert frames[-1].type == "error"
        usage = await usage_of(client)
        assert (usage["used"], usage["reserved"]) == (110, 0)  # nothing streamed, nothing billed


async def test_unlimited_by_default_records_usage_and_never_refuses(fake, start_server):
    server = start_server(OPENCODE_AUTH="none", OPENCODE_ADMIN_TOKEN=ADMIN_TOKEN)
    user = new_user()
    # 90,000-token prompts stay under the compaction trigger (0.8 of a 128,000 window).
    fake.script(
        tool_step("call_1", input_tokens=90_000, output_tokens=100),
        Reply(text="done", input_tokens=90_000, output_tokens=200),
        Reply(text="again", input_tokens=90_000, output_tokens=300),
    )
    async with acting_for(server, user) as client:
        session_id = await new_session(client)
        first = await send(client, session_id, content="one")
        second = await send(client, session_id, content="two")
        assert first[-1].data["stop_reason"] == second[-1].data["stop_reason"] == "stop"
        usage = await usage_of(client)
        assert (usage["limit"], usage["remaining"], usage["reserved"]) == (0, None, 0)
        assert (usage["used"], usage["requests"]) == (270_600, 3)
        limit = (await client.get("/usage/limit")).json()
        assert limit == {"user_id": user, "daily_token_limit": None, "default_limit": 0}


# ---- concurrent turns of one user ----

TURNS = 20
MAX_STEPS = 4
STEP_IN, STEP_OUT = 80, 20
STEP_TOKENS = STEP_IN + STEP_OUT  # what every step costs, as the fake reports it
CONTENT = "Step through my todo list, one todoread per step. " * 4  # 200 characters
FIRST_ESTIMATE = len(CONTENT) // 4  # step 1's reservation: its prompt is this message alone
CONCURRENT_LIMIT = 4100
# The last step admitted started at used + reserved <= limit - 1, where reserved holds at least
# FIRST_ESTIMATE for each of the (at most TURNS - 1) other steps in flight; each of those, and
# that last step, then settled STEP_TOKENS. Without reservations the bound would be
# limit - 1 + TURNS * STEP_TOKENS (6099); with them:
OVERSPEND_BOUND = CONCURRENT_LIMIT - 1 + STEP_TOKENS + (TURNS - 1) * (STEP_TOKENS - FIRST_ESTIMATE)


def concurrent_replies() -> list[Reply]:
    """Tool steps, slow enough (3 paced chunks: ~0.6 s) that the 20 turns' steps overlap."""
    return [
        tool_step(f"call_{n}", input_tokens=STEP_IN, output_tokens=STEP_OUT, chunk_delay=0.2)
        for n in range(TURNS * MAX_STEPS)
    ]


def estimate_of(request_json: dict) -> int:
    """The reservation the server made for a model call (``estimate_tokens`` of its messages:
    characters / 4, the system prompt left out), read back from the request it sent."""
    chars = 0
    for message in request_json["messages"]:
        if message["role"] == "system":
            continue
        chars += len(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    return chars // 4


async def peak_open_streams(fake: FakeProvider, into: list[int]) -> None:
    while True:
        into.append(fake.open_streams)
        await asyncio.sleep(0.01)


async def run_concurrent_turns(
    fake: FakeProvider, servers: list[ServerProcess], user: str
) -> list[list[Frame]]:
    """``TURNS`` turns of ``user``, one per new session, spread over ``servers`` and started
    together; every turn's frames."""
    await set_limit(servers[0], user, CONCURRENT_LIMIT)
    fake.script(*concurrent_replies())
    async with (
        acting_for(servers[0], user) as first,
        acting_for(servers[-1], user) as last,
    ):
        clients = [first if n % 2 == 0 else last for n in range(TURNS)]
        sessions = await asyncio.gather(*(new_session(client) for client in clients))
        samples: list[int] = []
        sampler = asyncio.create_task(peak_open_streams(fake, samples))
        try:
            turns = await asyncio.gather(
                *(
                    send(client, session_id, content=CONTENT, max_steps=MAX_STEPS)
                    for client, session_id in zip(clients, sessions, strict=True)
                )
            )
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        assert max(samples) >= TURNS // 2, f"the turns did not overlap: {max(samples)} streams"

        for client, session_id in zip(clients, sessions, strict=True):
            (_, assistant) = (await message_page(client, session_id))["messages"]
            assert assistant["status"] == "completed"
        return turns


async def assert_quota_held(
    fake: FakeProvider, servers: list[ServerProcess], user: str, turns: list[list[Frame]]
) -> None:
    steps_run = len(fake.requests)
    assert all(estimate_of(r.json) >= FIRST_ESTIMATE for r in fake.requests)
    assert all(estimate_of(r.json) <= STEP_TOKENS for r in fake.requests)  # see below

    stop_reasons = []
    for frames in turns:
        ends = [f for f in frames if f.type in ("done", "error")]
        assert len(ends) == 1 and ends[0] is frames[-1], [f.type for f in frames]
        assert ends[0].type == "done", ends[0].data
        steps = len([f for f in frames if f.type == "step_finish"])
        reason = ends[0].data["stop_reason"]
        stop_reasons.append(reason)
        assert reason == ("max_steps" if steps == MAX_STEPS else "quota"), (steps, reason)
        usage = ends[0].data["usage"]
        assert usage["input_tokens"] + usage["output_tokens"] == steps * STEP_TOKENS
    assert "quota" in stop_reasons
    assert sum(len([f for f in t if f.type == "step_start"]) for t in turns) == steps_run

    async with acting_for(servers[-1], user) as client:
        usage = await usage_of(client)
        assert usage["used"] == steps_run * STEP_TOKENS  # every step that ran, none lost
        assert usage["requests"] == usage["by_model"][0]["requests"] == steps_run
        assert usage["reserved"] == 0  # every reservation settled
        assert usage["used"] <= OVERSPEND_BOUND, (usage["used"], OVERSPEND_BOUND)
        # Each step's estimate was at most STEP_TOKENS (asserted above), so the reservations
        # that refused the first cut-off step became at least as many used tokens: the quota
        # is spent, and the next turn is refused on every server.
        assert usage["used"] >= CONCURRENT_LIMIT
        for server in servers:
            async with acting_for(server, user) as other:
                session_id = await new_session(other)
                refused = await other.post(
                    f"/session/{session_id}/message", json={"content": "one more"}
                )
                assert_quota_refusal(refused, limit=CONCURRENT_LIMIT, used=usage["used"])
    assert len(fake.requests) == steps_run


async def test_concurrent_turns_of_one_user_overspend_by_at_most_the_steps_in_flight(
    fake, quota_server
):
    user = new_user()
    turns = await run_concurrent_turns(fake, [quota_server], user)
    await assert_quota_held(fake, [quota_server], user, turns)


async def test_two_servers_on_one_postgres_database_share_the_quota(
    fake: FakeProvider, tmp_path: Path
):
    with database("postgres", tmp_path) as store:
        env = server_env(fake, tmp_path, store, **QUOTA_ENV)
        servers = [ServerProcess(tmp_path, env).start()]  # one at a time: migrations once
        try:
            servers.append(ServerProcess(tmp_path, env).start())
            user = new_user()
            turns = await run_concurrent_turns(fake, servers, user)
            await assert_quota_held(fake, servers, user, turns)
        finally:
            for server in servers:
                server.stop()
