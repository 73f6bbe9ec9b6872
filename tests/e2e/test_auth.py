"""Basic auth and error shapes through the real server."""

import httpx
import pytest

from tests.e2e.helpers import new_session, send
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(60)


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
