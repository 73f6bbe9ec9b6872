"""Host and Origin guards, security headers, HEAD and OPTIONS through the real server."""

import asyncio

import httpx
import pytest

from tests.e2e.helpers import new_session
from tests.fakes.provider import Reply
from tests.sse import FrameReader

pytestmark = pytest.mark.timeout(60)


async def test_a_rebinding_host_is_refused_but_health_answers(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        before = (await client.get("/session")).headers["x-total-count"]
        refused = await client.post("/session", headers={"Host": f"evil.example:{server.port}"})
        assert refused.status_code == 400 and refused.json()["error"] == "bad_host"
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/session")).headers["x-total-count"] == before
        probe = await client.get("/health", headers={"Host": f"10.0.0.9:{server.port}"})
        assert probe.status_code == 200
        local = await client.get("/session", headers={"Host": f"localhost:{server.port}"})
        assert local.status_code == 200


async def test_cross_site_post_is_403_and_same_origin_passes(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        before = int((await client.get("/session")).headers["x-total-count"])
        for origin in ("http://evil.example", "null"):
            refused = await client.post("/session", headers={"Origin": origin})
            assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert int((await client.get("/session")).headers["x-total-count"]) == before
        own = await client.post("/session", headers={"Origin": server.url})
        assert own.status_code == 201


async def test_head_on_sse_routes_and_options_on_the_real_server(fake, server):
    fake.script(
        Reply(
            tool_calls=[
                (
                    "call_q",
                    "question",
                    {
                        "questions": [
                            {
                                "question": "Wait?",
                                "header": "Wait",
                                "options": [{"label": "yes", "description": ""}],
                                "multiple": False,
                            }
                        ]
                    },
                )
            ]
        )
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        event = await asyncio.wait_for(client.head("/event"), 5)
        assert event.status_code == 200 and event.content == b""
        assert event.headers["content-type"].startswith("text/event-stream")
        assert (
            event.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        )

        session_id = await new_session(client)
        async with client.stream(
            "POST", f"/session/{session_id}/message", json={"content": "ask"}
        ) as response:
            assert response.headers["x-frame-options"] == "DENY"  # on the SSE answer too
            reader = FrameReader(response)
            await reader.until(lambda frames: frames[-1].type == "question")
            head = await asyncio.wait_for(client.head(f"/session/{session_id}/stream"), 5)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-type"].startswith("text/event-stream")
            assert (await client.get(f"/session/{session_id}")).json()["status"] == "busy"
            await client.post(f"/session/{session_id}/abort")
            frames = await reader.rest()
        assert frames[-1].type == "done" and frames[-1].data["stop_reason"] == "aborted"

        options = await client.options(f"/session/{session_id}")
        assert options.status_code == 204
        assert options.headers["allow"] == "GET, HEAD, PATCH, DELETE, OPTIONS"
        wrong = await client.put(f"/session/{session_id}")
        assert wrong.status_code == 405 and wrong.headers["allow"] == options.headers["allow"]
        head = await client.head(f"/session/{session_id}")
        get = await client.get(f"/session/{session_id}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(get.content))
