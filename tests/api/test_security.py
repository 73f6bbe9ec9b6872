"""Auth, body limit and CORS."""

import base64

import pytest


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_password_guards_every_route_but_health(make_client):
    async with make_client(OPENCODE_SERVER_PASSWORD="s3cret") as client:
        assert (await client.get("/health")).status_code == 200
        for method, path in [
            ("get", "/session"),
            ("post", "/session"),
            ("get", "/provider"),
            ("get", "/docs"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Basic")
        assert (await client.get("/session", headers=basic("opencode", "wrong"))).status_code == 401
        assert (await client.get("/session", headers=basic("admin", "s3cret"))).status_code == 401
        bad_header = {"Authorization": "Basic !!!notbase64"}
        assert (await client.get("/session", headers=bad_header)).status_code == 401
        assert (
            await client.get("/session", headers={"Authorization": "Bearer s3cret"})
        ).status_code == 401
        ok = await client.post("/session", headers=basic("opencode", "s3cret"))
        assert ok.status_code == 201


async def test_body_over_the_limit_is_413_and_changes_nothing(make_client):
    async with make_client(OPENCODE_MAX_BODY_BYTES=1000) as client:
        session_id = (await client.post("/session")).json()["id"]
        response = await client.post(f"/session/{session_id}/message", json={"content": "x" * 5000})
        assert response.status_code == 413 and response.json()["error"] == "payload_too_large"

        async def chunked():
            for _ in range(10):
                yield b'{"content": "' + b"y" * 200

        streamed = await client.post(
            f"/session/{session_id}/message",
            content=chunked(),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert (await client.get(f"/session/{session_id}/message")).json()["total_count"] == 0


@pytest.mark.parametrize(
    ("origins", "expected_allow_origin", "expected_for_other_origin"),
    [("http://app.example", "http://app.example", None), ("*", "*", "*")],
)
async def test_cors_allows_configured_origins(
    make_client, origins, expected_allow_origin, expected_for_other_origin
):
    async with make_client(OPENCODE_CORS_ORIGINS=origins, OPENCODE_SERVER_PASSWORD="pw") as client:
        preflight = await client.options(
            "/session",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == expected_allow_origin
        other = await client.get("/health", headers={"Origin": "http://evil.example"})
        assert other.headers.get("access-control-allow-origin") == expected_for_other_origin


async def test_providers_listing(client):
    providers = {p["id"]: p for p in (await client.get("/provider")).json()}
    assert set(providers) >= {"anthropic", "openai", "gemini"}
    assert providers["openai"]["configured"] is True
    assert providers["anthropic"]["configured"] is False
    assert providers["anthropic"]["env"][0] == "ANTHROPIC_API_KEY"
    models = (await client.get("/provider/openai/model")).json()["models"]
    mini = next(m for m in models if m["id"] == "gpt-4o-mini")
    assert mini["context_window"] == 128000 and mini["supports_tools"] is True
    assert mini["input_cost_per_million"] == pytest.approx(0.15)
    detail = (await client.get("/provider/gemini")).json()
    assert detail["id"] == "gemini" and detail["configured"] is False
