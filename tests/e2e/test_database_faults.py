"""PostgreSQL going away under the real server: the turn in flight ends with an ``error`` event,
nothing is left half-written, requests meanwhile get 503 (never a 500), and the server serves
again as soon as the database is back, without a restart."""

from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.helpers import new_session, open_turn, send, wait_until
from tests.fakes.provider import Reply
from tests.pg import admin_connection

pytestmark = pytest.mark.timeout(120)
E2E_STORES = ("postgres",)  # tests/conftest.py


@asynccontextmanager
async def database_down(database_url: str):
    """Refuse new connections to the server's database and cut the ones it has; on exit, let
    it connect again."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await admin_connection()
    try:
        await admin.execute(f'alter database "{name}" allow_connections false')
        await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = $1 and pid <> pg_backend_pid()",
            name,
        )
        yield
    finally:
        await admin.execute(f'alter database "{name}" allow_connections true')
        await admin.close()


async def test_a_database_outage_mid_turn_ends_the_turn_and_the_server_recovers(fake, start_server):
    server = start_server()
    fake.script(Reply(text=[f"w{n} " for n in range(40)], chunk_delay=0.1))
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session_id = await new_session(client)
        async with open_turn(client, session_id, content="write a lot") as reader:
            await reader.until(lambda frames: len(reader.text()) > 20)
            async with database_down(server.env["DATABASE_URL"]):
                frames = await reader.rest()
                finals = [f for f in frames if f.type in ("done", "error")]
                assert len(finals) == 1 and frames[-1] is finals[0]
                assert finals[0].type == "error", finals[0].data
                assert "PostgreSQL" in finals[0].data["error"]
                assert finals[0].data["status_code"] == 503

                # meanwhile: 503 with a JSON body, never a 500
                health = await client.get("/health")
                assert health.status_code == 503 and health.json()["ok"] is False
                listing = await client.get("/session")
                assert listing.status_code == 503, listing.text
                assert listing.json()["error"] == "store_unavailable"
                assert "Traceback" not in listing.text
            streamed = reader.text()

        # back: the reply was stored (retried after its final event), whole and final
        await wait_until(lambda: _idle(client, session_id), timeout=30)
        page = (await client.get(f"/session/{session_id}/message")).json()
        reply = page["messages"][-1]
        assert reply["status"] == "error" and reply["content"] == streamed
        health = (await client.get("/health")).json()
        assert (health["status"], health["store"], health["ok"]) == ("ok", "postgres", True)
        fake.script(Reply(text="after the outage"))
        again = await send(client, session_id, content="still there?")
        assert again[-1].type == "done" and again[-1].data["stop_reason"] == "stop"
    assert "Traceback" not in server.log()


async def _idle(client: httpx.AsyncClient, session_id: str) -> bool:
    session = await client.get(f"/session/{session_id}")
    return session.status_code == 200 and session.json()["status"] == "idle"
