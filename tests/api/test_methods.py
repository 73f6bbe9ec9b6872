"""OPTIONS, 405 and HEAD answer for every route on a path, SSE routes included."""

import asyncio

import pytest

from tests.api.test_security import basic


def allow(response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/session", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/session/{id}", {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}),
        ("/session/{id}/message", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/session/{id}/abort", {"POST", "OPTIONS"}),
        ("/event", {"GET", "HEAD", "OPTIONS"}),
        ("/health", {"GET", "HEAD", "OPTIONS"}),
        ("/docs", {"GET", "HEAD", "OPTIONS"}),
    ],
)
async def test_options_lists_every_method_of_the_path(client, path, methods):
    session_id = (await client.post("/session")).json()["id"]
    response = await client.options(path.format(id=session_id))
    assert response.status_code == 204 and response.content == b""
    assert allow(response) == methods


async def test_wrong_method_is_a_json_405_with_the_whole_allow_list(client):
    session_id = (await client.post("/session")).json()["id"]
    response = await client.put(f"/session/{session_id}", json={"title": "x"})
    assert response.status_code == 405
    body = response.json()
    assert body["error"] == "method_not_allowed"
    assert body["detail"].startswith("PUT is not allowed on /session/")
    assert allow(response) == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
    assert (await client.get(f"/session/{session_id}")).json()["title"] == "New session"
    post = await client.post(f"/session/{session_id}")
    assert post.status_code == 405 and "PATCH" in allow(post)


async def test_unknown_paths_stay_404_for_every_method(client):
    for method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        response = await client.request(method, "/no/such/route")
        assert response.status_code == 404, method


async def test_head_answers_the_get_headers_without_a_body(client):
    session_id = (await client.post("/session")).json()["id"]
    for path in (
        "/session",
        f"/session/{session_id}",
        f"/session/{session_id}/message",
        f"/session/{session_id}/cost",
        "/provider/openai/model",
        "/tool",
        "/health",
        "/openapi.json",
        "/docs",
    ):
        get = await client.get(path)
        head = await client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers["content-length"] == str(len(get.content)), path
    assert (await client.head("/session")).headers["x-total-count"] == "1"
    missing = await client.head("/session/ses_missing")
    assert missing.status_code == 404 and missing.content == b""


async def test_head_on_sse_routes_returns_at_once(client):
    event = await asyncio.wait_for(client.head("/event"), 5)
    assert event.status_code == 200 and event.content == b""
    assert event.headers["content-type"].startswith("text/event-stream")
    session_id = (await client.post("/session")).json()["id"]
    idle = await asyncio.wait_for(client.head(f"/session/{session_id}/stream"), 5)
    assert idle.status_code == 404  # nothing runs: the same answer a GET gets


async def test_head_and_options_need_the_password_like_get(make_client):
    async with make_client(OPENCODE_SERVER_PASSWORD="pw") as client:
        assert (await client.head("/session")).status_code == 401
        assert (await client.options("/session")).status_code == 401
        assert (await client.head("/session", headers=basic("opencode", "pw"))).status_code == 200
        assert (await client.head("/health")).status_code == 200


async def test_openapi_has_no_head_or_options_operations(client):
    spec = (await client.get("/openapi.json")).json()
    methods = {method for operations in spec["paths"].values() for method in operations}
    assert methods == {"get", "post", "put", "patch", "delete"}
