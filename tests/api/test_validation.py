"""Error shapes (a sentence in ``detail``, problems in ``errors``), unsafe text, empty model
names, PATCH of the model, and money rounding, through the real app."""

import json

import pytest

from opencode.core.ids import utc_now
from opencode.storage.base import MessageRecord

JSON = {"content-type": "application/json"}


async def new_session(client, **body) -> str:
    response = await client.post("/session", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def message_count(client, session_id: str) -> int:
    return (await client.get(f"/session/{session_id}/message")).json()["total_count"]


async def test_422_detail_is_a_sentence_and_errors_the_list(client):
    session_id = await new_session(client)
    response = await client.post(
        f"/session/{session_id}/message", json={"content": "", "max_steps": 0, "tools": [5]}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == (
        "content: String should have at least 1 character; "
        "max_steps: Input should be greater than or equal to 1; "
        "tools[0]: Input should be a valid string"
    )
    assert body["errors"] == [
        {
            "loc": ["body", "content"],
            "msg": "String should have at least 1 character",
            "type": "string_too_short",
        },
        {
            "loc": ["body", "max_steps"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        },
        {
            "loc": ["body", "tools", 0],
            "msg": "Input should be a valid string",
            "type": "string_type",
        },
    ]
    query = await client.get(f"/session/{session_id}/message", params={"limit": 0, "order": "x"})
    assert query.json()["detail"] == (
        "limit: Input should be greater than or equal to 1; order: Input should be 'asc' or 'desc'"
    )


async def test_422_never_echoes_the_input(client):
    secret = "sk-do-not-echo-" + "x" * 300
    response = await client.post("/session", json={"title": secret})
    assert response.status_code == 422
    assert "sk-do-not-echo" not in response.text
    assert response.json()["detail"] == "title: String should have at most 200 characters"


async def test_malformed_json_reads_as_a_sentence(client):
    response = await client.post("/session", content=b'{"title": ', headers=JSON)
    body = response.json()
    assert response.status_code == 422 and body["errors"][0]["type"] == "json_invalid"
    assert body["detail"].startswith("The body is not valid JSON (")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("get", "/session/ses_missing", {}, 404),
        ("get", "/no/such/route", {}, 404),
        ("put", "/session", {}, 405),
        ("post", "/session", {"json": {"title": 5}}, 422),
        ("post", "/session", {"json": {"provider_id": "nope"}}, 400),
        ("post", "/session/{id}/message", {"json": {"content": "x", "tools": ["rm"]}}, 422),
        ("post", "/session/{id}/generate-title", {}, 409),
        ("post", "/question/que_missing/reply", {"json": {"answers": [["a"]]}}, 404),
        ("get", "/session", {"headers": {"Host": "evil.example"}}, 400),
        ("post", "/session", {"headers": {"Origin": "http://evil.example"}}, 403),
    ],
)
async def test_every_error_has_a_string_detail(client, method, path, kwargs, status):
    session_id = await new_session(client)
    response = await client.request(method, path.format(id=session_id), **kwargs)
    assert response.status_code == status
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"]
    if status == 422:
        assert isinstance(body["errors"], list)


async def test_generate_title_without_a_message_is_409(client):
    """The request is fine; the session is not ready for it (a schema cannot say that, so a
    400 would read as "schema-valid request rejected")."""
    session_id = await new_session(client)
    response = await client.post(f"/session/{session_id}/generate-title")
    assert response.status_code == 409 and "no message" in response.json()["detail"]


UNSAFE = [b'"a\\u0000b"', b'"a\\ud800b"', b'"\\udfff"', b'"ok\\ud83d"']


@pytest.mark.parametrize("raw", UNSAFE)
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/session", b'{"title": %s}'),
        ("POST", "/session", b'{"model_id": %s}'),
        ("PATCH", "/session/{id}", b'{"title": %s}'),
        ("PATCH", "/session/{id}", b'{"provider_id": %s}'),
        ("POST", "/session/{id}/message", b'{"content": %s}'),
        ("POST", "/session/{id}/message", b'{"content": "hi", "system": %s}'),
        ("POST", "/session/{id}/message", b'{"content": "hi", "provider_id": %s}'),
        ("POST", "/session/{id}/message", b'{"content": "hi", "tools": [%s]}'),
        ("POST", "/question/que_x/reply", b'{"answers": [["yes", %s]]}'),
    ],
)
async def test_nul_and_lone_surrogates_are_422_and_change_nothing(
    client, raw, method, path, template
):
    session_id = await new_session(client, title="kept")
    response = await client.request(
        method, path.format(id=session_id), content=template % raw, headers=JSON
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert "NUL" in body["detail"] and "surrogate" in body["detail"]
    sessions = (await client.get("/session")).json()
    assert [(s["id"], s["title"]) for s in sessions] == [(session_id, "kept")]
    assert await message_count(client, session_id) == 0


async def test_unsafe_ids_in_the_path_and_query_are_422(client):
    for path in ("/session/ses%00x", "/session/ses%00x/message", "/provider/open%00ai"):
        response = await client.get(path)
        assert response.status_code == 422, path
        assert response.json()["errors"][0]["loc"][0] == "path"
    query = await client.get("/question", params={"session_id": "a\x00b"})
    assert query.status_code == 422 and query.json()["errors"][0]["loc"] == ["query", "session_id"]


async def test_a_surrogate_pair_is_fine(client):
    response = await client.post(
        "/session", content=b'{"title": "ok \\ud83d\\ude00"}', headers=JSON
    )
    assert response.status_code == 201 and response.json()["title"] == "ok \U0001f600"


EMPTY_MODELS = [
    {"model_id": "openai/"},
    {"model_id": "anthropic/"},
    {"model_id": "/gpt-4o"},
    {"model_id": ""},
    {"model_id": " "},
    {"model_id": " gpt-4o-mini"},
    {"model_id": "openai/ gpt-4o-mini"},
    {"provider_id": ""},
    {"provider_id": " openai"},
    {"provider_id": "openai", "model_id": ""},
    {"provider_id": "openai", "model_id": "/x"},
]


@pytest.mark.parametrize("choice", EMPTY_MODELS)
async def test_empty_or_padded_model_names_are_400_everywhere(client, choice):
    created = await client.post("/session", json=choice)
    assert created.status_code == 400
    detail = created.json()["detail"]
    assert "openai/gpt-4o-mini" in detail or "surrounding whitespace" in detail, detail
    assert (await client.get("/session")).headers["x-total-count"] == "0"

    session_id = await new_session(client)
    sent = await client.post(f"/session/{session_id}/message", json={"content": "hi", **choice})
    assert sent.status_code == 400 and sent.json()["detail"] == detail
    patched = await client.patch(f"/session/{session_id}", json=choice)
    assert patched.status_code == 400 and patched.json()["detail"] == detail
    session = (await client.get(f"/session/{session_id}")).json()
    assert session["model"] == "openai/gpt-4o-mini" and session["status"] == "idle"
    assert await message_count(client, session_id) == 0


async def test_patch_changes_the_model_like_a_message_would(client):
    session_id = await new_session(client, title="keep me")
    patched = await client.patch(f"/session/{session_id}", json={"model_id": "openai/gpt-4.1"})
    assert patched.status_code == 200
    body = patched.json()
    assert (body["model"], body["provider_id"], body["model_id"]) == (
        "openai/gpt-4.1",
        "openai",
        "gpt-4.1",
    )
    assert body["title"] == "keep me"
    assert (await client.get(f"/session/{session_id}")).json()["model"] == "openai/gpt-4.1"

    both = await client.patch(
        f"/session/{session_id}", json={"title": "renamed", "provider_id": "openai"}
    )
    assert both.json()["title"] == "renamed" and both.json()["model"] == "openai/gpt-4o-mini"

    unconfigured = await client.patch(f"/session/{session_id}", json={"provider_id": "gemini"})
    assert unconfigured.status_code == 400 and "GEMINI_API_KEY" in unconfigured.json()["detail"]
    unknown = await client.patch(f"/session/{session_id}", json={"model_id": "openai/nope-9"})
    assert unknown.status_code == 400 and "nope-9" in unknown.json()["detail"]
    assert (await client.get(f"/session/{session_id}")).json()["model"] == "openai/gpt-4o-mini"


@pytest.mark.parametrize("body", [{}, {"title": None}, {"title": ""}, {"title": "x" * 201}])
async def test_patch_needs_something_valid_to_change(client, body):
    session_id = await new_session(client, title="same")
    response = await client.patch(f"/session/{session_id}", json=body)
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    if not body or body == {"title": None}:
        assert "at least one of title, provider_id or model_id" in response.json()["detail"]
    assert (await client.get(f"/session/{session_id}")).json()["title"] == "same"


async def test_patch_unknown_session_is_404(client):
    response = await client.patch("/session/ses_missing", json={"model_id": "openai/gpt-4.1"})
    assert response.status_code == 404


async def test_money_is_rounded_to_1e_10_at_the_boundary(client):
    session_id = await new_session(client)
    store = client.app.state.services.store
    usage = {"input_tokens": 1, "output_tokens": 1}
    for cost in (0.1, 0.2, 0.000011099999999999999):
        await store.record_step_usage(
            session_id, model="openai/gpt-4o-mini", usage=usage, cost=cost
        )
    now = utc_now()
    await store.add_message(
        MessageRecord(
            id="msg_noisy",
            session_id=session_id,
            role="assistant",
            created_at=now,
            updated_at=now,
            status="completed",
            parts=[
                {
                    "type": "step-finish",
                    "step_number": 1,
                    "stop_reason": "stop",
                    "cost": 0.000011099999999999999,
                    "usage": {},
                }
            ],
            content="",
            cost=0.000011099999999999999,
        )
    )
    expected_total = round(0.1 + 0.2 + 0.000011099999999999999, 10)
    session = await client.get(f"/session/{session_id}")
    assert '"total_cost":0.3000111,' in session.text
    assert session.json()["total_cost"] == expected_total
    cost = (await client.get(f"/session/{session_id}/cost")).json()
    assert cost["total_cost"] == expected_total
    assert cost["models"][0]["cost"] == expected_total
    page = await client.get(f"/session/{session_id}/message")
    message = page.json()["messages"][0]
    assert message["cost"] == 0.0000111 and message["parts"][0]["cost"] == 0.0000111
    assert "0.000011099999" not in page.text
    assert json.loads(page.text)["messages"][0]["cost"] == 1.11e-05
