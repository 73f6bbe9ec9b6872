"""``GET``/``POST /session/{id}/items`` through the real app (in-process): paging by messages,
imports that round-trip, and every refusal (422, 404, 409) storing nothing."""

import copy
import uuid

import pytest

from opencode.core.ids import utc_now
from opencode.storage.base import MessageRecord, SessionRecord
from tests.codex_seed import INVALID_ITEMS, VALID_ITEMS, assert_valid


async def new_session(client) -> str:
    return (await client.post("/session")).json()["id"]


async def add(client, session_id: str, role: str, parts: list, **fields) -> str:
    now = utc_now()
    text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
    record = MessageRecord(
        id=fields.pop("id"),
        session_id=session_id,
        role=role,
        created_at=now,
        updated_at=now,
        status="completed",
        parts=parts,
        content=text,
        **fields,
    )
    return (await client.app.state.services.store.add_message(record)).id


def tool(call_id: str) -> dict:
    return {
        "type": "tool",
        "call_id": call_id,
        "name": "todoread",
        "arguments": {},
        "state": "completed",
        "output": "[]",
    }


async def seed_turns(client, session_id: str, turns: int) -> list[str]:
    """``turns`` exchanges: a question, then a reply that calls a tool and answers."""
    ids = []
    for n in range(turns):
        user = await add(
            client, session_id, "user", [{"type": "text", "text": f"q{n}"}], id=f"msg_{n}u"
        )
        parts = [
            {"type": "step-start", "step_number": 1},
            {"type": "text", "text": f"looking {n}"},
            tool(f"call_{n}"),
            {"type": "step-start", "step_number": 2},
            {"type": "text", "text": f"a{n}"},
        ]
        reply = await add(client, session_id, "assistant", parts, id=f"msg_{n}a", parent_id=user)
        ids += [user, reply]
    return ids


async def items_page(client, session_id: str, **params) -> dict:
    response = await client.get(f"/session/{session_id}/items", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert_valid(page["items"])  # each entry is rawResponseItem/completed params
    return page


async def test_pages_count_messages_like_the_message_route(client):
    session_id = await new_session(client)
    ids = await seed_turns(client, session_id, 3)

    whole = await items_page(client, session_id)
    assert (whole["total_count"], whole["limit"], whole["offset"]) == (6, None, 0)
    assert len(whole["items"]) == 3 * 5  # user message; text, call, output, text
    assert {entry["threadId"] for entry in whole["items"]} == {session_id}

    for params in ({"limit": 3, "offset": 1}, {"limit": 2, "offset": 1, "order": "desc"}):
        page = await items_page(client, session_id, **params)
        messages = (await client.get(f"/session/{session_id}/message", params=params)).json()
        assert (page["total_count"], page["limit"]) == (messages["total_count"], params["limit"])
        turns = [m["parent_id"] or m["id"] for m in messages["messages"]]
        assert list(dict.fromkeys(e["turnId"] for e in page["items"])) == list(dict.fromkeys(turns))

    # A page that starts at an assistant message: its items still belong to the turn its user
    # message (on the page before) started.
    page = await items_page(client, session_id, limit=2, offset=1)
    assert [e["turnId"] for e in page["items"]] == ["msg_0u"] * 4 + ["msg_1u"]
    assert [e["item"]["type"] for e in page["items"]][:4] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert page["items"][3]["item"]["phase"] == "final_answer"
    assert (await items_page(client, session_id, offset=50))["items"] == []
    assert ids[1] == "msg_0a"


async def test_an_import_round_trips_and_lands_as_messages(client):
    session_id = await new_session(client)
    response = await client.post(f"/session/{session_id}/items", json={"items": VALID_ITEMS})
    assert response.status_code == 201, response.text
    imported = response.json()
    assert imported["items"] == len(VALID_ITEMS) and imported["session_id"] == session_id

    messages = (await client.get(f"/session/{session_id}/message")).json()["messages"]
    assert [m["id"] for m in messages] == imported["messages"]
    assert [m["role"] for m in messages] == ["assistant", "user", "assistant"]
    developer, user, reply = messages
    assert developer["parts"][1] == {"type": "item", "item": VALID_ITEMS[0]}
    assert user["content"] == "What changed in FastAPI 0.115?"
    assert reply["parent_id"] == user["id"] and reply["status"] == "completed"
    tools = [p for p in reply["parts"] if p["type"] == "tool"]
    assert [(t["call_id"], t["state"]) for t in tools] == [
        ("call_01", "completed"),
        ("call_02", "error"),
    ]
    assert reply["content"] == "Fetching the release notes first.0.115 adds ..."

    exported = [e["item"] for e in (await items_page(client, session_id))["items"]]
    assert exported == VALID_ITEMS
    again = await new_session(client)
    response = await client.post(f"/session/{again}/items", json={"items": exported})
    assert response.status_code == 201
    assert [e["item"] for e in (await items_page(client, again))["items"]] == exported


@pytest.mark.parametrize(
    ("why", "item", "field"), INVALID_ITEMS, ids=[case[0] for case in INVALID_ITEMS]
)
async def test_an_invalid_item_is_a_422_naming_its_index_and_field(client, why, item, field):
    session_id = await new_session(client)
    items = [*copy.deepcopy(VALID_ITEMS[:3]), item]
    response = await client.post(f"/session/{session_id}/items", json={"items": items})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    locs = [problem["loc"] for problem in body["errors"]]
    assert ["body", "items", 3, *field] in locs, locs
    assert body["detail"].startswith("items[3]")
    if isinstance(item, dict):  # pydantic refuses what is not even an object
        assert "nothing was stored" in body["detail"]
    assert (await client.get(f"/session/{session_id}")).json()["message_count"] == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"items": []}, ["body", "items"]),
        ({}, ["body", "items"]),
        ({"items": {"type": "other"}}, ["body", "items"]),
        ({"items": [{"type": "other"}, 5]}, ["body", "items", 1]),
        (
            {"items": [{"type": "compaction", "encrypted_content": "a\u0000b"}]},
            ["body", "items", 0, "encrypted_content"],
        ),
    ],
)
async def test_a_malformed_body_is_a_422_storing_nothing(client, body, loc):
    session_id = await new_session(client)
    response = await client.post(f"/session/{session_id}/items", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    assert (await client.get(f"/session/{session_id}")).json()["message_count"] == 0


async def test_unknown_and_other_users_sessions_are_404(client):
    store = client.app.state.services.store
    now = utc_now()
    theirs = await store.create_session(
        SessionRecord(
            id="ses_theirs", title="t", created_at=now, updated_at=now, user_id=str(uuid.uuid4())
        )
    )
    await add(client, theirs.id, "user", [{"type": "text", "text": "private"}], id="msg_private")
    body = {"items": VALID_ITEMS[:2]}
    for session_id in (theirs.id, "ses_unknown"):
        for response in (
            await client.get(f"/session/{session_id}/items"),
            await client.post(f"/session/{session_id}/items", json=body),
        ):
            assert response.status_code == 404 and response.json()["error"] == "not_found"
            assert "private" not in response.text
    assert (await store.get_session(theirs.id)).message_count == 1


async def test_a_busy_session_refuses_an_import_and_an_import_holds_the_session(client):
    session_id = await new_session(client)
    runs = client.app.state.services.runs
    with runs.claim(session_id):  # what a running turn or another import holds
        assert (await client.get(f"/session/{session_id}")).json()["status"] == "busy"
        response = await client.post(f"/session/{session_id}/items", json={"items": VALID_ITEMS})
        assert response.status_code == 409 and "imported" in response.json()["detail"]
        turn = await client.post(f"/session/{session_id}/message", json={"content": "hi"})
        assert turn.status_code == 409
        compact = await client.post(f"/session/{session_id}/compact")
        assert compact.status_code == 409
    assert (await client.get(f"/session/{session_id}")).json()["message_count"] == 0
    response = await client.post(f"/session/{session_id}/items", json={"items": VALID_ITEMS})
    assert response.status_code == 201 and not runs.is_busy(session_id)


async def test_the_routes_are_documented(client):
    spec = (await client.get("/openapi.json")).json()
    path = spec["paths"]["/session/{session_id}/items"]
    assert {"limit", "offset", "order"} == {p["name"] for p in path["get"]["parameters"]} - {
        "session_id"
    }
    assert "counts" in path["get"]["description"] or "count" in path["get"]["description"]
    assert {"201", "404", "409", "422"} <= set(path["post"]["responses"])
    schema = path["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/CodexItemsImported")
