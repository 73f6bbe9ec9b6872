"""Sessions, pagination and error shapes through the real app (in-process)."""

import asyncio

import pytest

from opencode.core.ids import utc_now
from opencode.storage.base import MessageRecord


async def test_session_crud(client):
    created = await client.post("/session", json={"title": "First"})
    assert created.status_code == 201
    session = created.json()
    assert session["title"] == "First" and session["status"] == "idle"
    assert session["model"] == "openai/gpt-4o-mini"
    assert session["provider_id"] == "openai" and session["model_id"] == "gpt-4o-mini"
    assert session["total_cost"] == 0 and session["usage"]["input_tokens"] == 0
    assert session["created_at"].endswith(("Z", "+00:00"))

    untitled = (await client.post("/session")).json()
    assert untitled["title"] == "New session"

    listed = await client.get("/session")
    assert [s["id"] for s in listed.json()] == [untitled["id"], session["id"]]
    assert listed.headers["x-total-count"] == "2"
    second_page = await client.get("/session", params={"limit": 1, "offset": 1})
    assert [s["id"] for s in second_page.json()] == [session["id"]]

    patched = await client.patch(f"/session/{session['id']}", json={"title": "Renamed"})
    assert patched.json()["title"] == "Renamed"
    assert patched.json()["updated_at"] > session["updated_at"]
    assert (await client.get(f"/session/{session['id']}")).json()["title"] == "Renamed"
    # renaming moved it to the top
    assert (await client.get("/session")).json()[0]["id"] == session["id"]

    deleted = await client.delete(f"/session/{session['id']}")
    assert deleted.status_code == 200
    assert (await client.get(f"/session/{session['id']}")).status_code == 404
    assert (await client.delete(f"/session/{session['id']}")).status_code == 404


async def test_session_with_explicit_model(client):
    session = (
        await client.post("/session", json={"provider_id": "openai", "model_id": "gpt-4.1"})
    ).json()
    assert session["model"] == "openai/gpt-4.1"
    bad = await client.post("/session", json={"provider_id": "openai", "model_id": "nope-9"})
    assert bad.status_code == 400 and "nope-9" in bad.json()["detail"]
    missing_key = await client.post("/session", json={"provider_id": "anthropic"})
    assert missing_key.status_code == 400 and "ANTHROPIC_API_KEY" in missing_key.json()["detail"]


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("get", "/session/ses_missing", None),
        ("patch", "/session/ses_missing", {"title": "x"}),
        ("delete", "/session/ses_missing", None),
        ("get", "/session/ses_missing/message", None),
        ("post", "/session/ses_missing/message", {"content": "hi"}),
        ("post", "/session/ses_missing/abort", None),
        ("get", "/session/ses_missing/cost", None),
        ("get", "/session/ses_missing/todo", None),
        ("post", "/session/ses_missing/generate-title", None),
        ("get", "/provider/nope", None),
        ("get", "/provider/nope/model", None),
        ("get", "/no/such/route", None),
    ],
)
async def test_unknown_ids_are_json_404s(client, method, path, body):
    response = await client.request(method, path, json=body)
    assert response.status_code == 404
    payload = response.json()
    assert payload["error"] == "not_found" and payload["detail"]


async def seed_messages(client, session_id: str, count: int) -> list[str]:
    store = client.app.state.services.store
    ids = []
    for index in range(count):
        now = utc_now()
        record = await store.add_message(
            MessageRecord(
                id=f"msg_{index:04d}",
                session_id=session_id,
                role="user" if index % 2 == 0 else "assistant",
                created_at=now,
                updated_at=now,
                status="completed",
                parts=[{"type": "text", "text": f"m{index}"}],
                content=f"m{index}",
            )
        )
        ids.append(record.id)
    return ids


async def test_message_pagination_shape_and_orders(client):
    session_id = (await client.post("/session")).json()["id"]
    ids = await seed_messages(client, session_id, 7)

    page = (await client.get(f"/session/{session_id}/message")).json()
    assert set(page) == {"messages", "total_count", "limit", "offset"}
    assert [m["id"] for m in page["messages"]] == ids
    assert (page["total_count"], page["limit"], page["offset"]) == (7, None, 0)

    asc = (
        await client.get(f"/session/{session_id}/message", params={"limit": 3, "offset": 2})
    ).json()
    assert [m["id"] for m in asc["messages"]] == ids[2:5]
    assert (asc["total_count"], asc["limit"], asc["offset"]) == (7, 3, 2)

    desc = (
        await client.get(
            f"/session/{session_id}/message", params={"limit": 3, "offset": 1, "order": "desc"}
        )
    ).json()
    assert [m["id"] for m in desc["messages"]] == [ids[5], ids[4], ids[3]]

    tail = (
        await client.get(
            f"/session/{session_id}/message", params={"limit": 5, "offset": 5, "order": "desc"}
        )
    ).json()
    assert [m["id"] for m in tail["messages"]] == [ids[1], ids[0]]
    beyond = (await client.get(f"/session/{session_id}/message", params={"offset": 50})).json()
    assert beyond["messages"] == [] and beyond["total_count"] == 7


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": "ten"},
        {"offset": -1},
        {"order": "sideways"},
        {"limit": 100000},
        {"offset": 414046245412287090519445602304},
    ],
)
async def test_invalid_pagination_is_422(client, params):
    session_id = (await client.post("/session")).json()["id"]
    response = await client.get(f"/session/{session_id}/message", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error" and body["errors"][0]["loc"][0] == "query"
    name = next(iter(params))
    assert isinstance(body["detail"], str) and body["detail"].startswith(f"{name}: ")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": ""},
        {"content": "x", "max_steps": 0},
        {"content": "x", "max_steps": 101},
        {"content": 5},
    ],
)
async def test_invalid_message_body_is_422_and_changes_nothing(client, body):
    session_id = (await client.post("/session")).json()["id"]
    response = await client.post(f"/session/{session_id}/message", json=body)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert (await client.get(f"/session/{session_id}/message")).json()["total_count"] == 0


async def test_bad_model_or_tool_choice_changes_nothing(client):
    session_id = (await client.post("/session")).json()["id"]
    unknown_tool = await client.post(
        f"/session/{session_id}/message", json={"content": "x", "tools": ["rm_rf"]}
    )
    assert unknown_tool.status_code == 422 and "rm_rf" in unknown_tool.json()["detail"]
    no_key = await client.post(
        f"/session/{session_id}/message", json={"content": "x", "provider_id": "gemini"}
    )
    assert no_key.status_code == 400 and "GEMINI_API_KEY" in no_key.json()["detail"]
    assert (await client.get(f"/session/{session_id}/message")).json()["total_count"] == 0
    assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"


async def test_malformed_json_is_422(client):
    response = await client.post(
        "/session", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["error"] == "validation_error"


async def test_concurrent_session_creation(client):
    responses = await asyncio.gather(
        *(client.post("/session", json={"title": f"s{i}"}) for i in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 20


@pytest.mark.parametrize("params", [{"offset": 2**70}, {"limit": 0}, {"offset": -1}])
async def test_invalid_session_paging_is_422(client, params):
    response = await client.get("/session", params=params)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
