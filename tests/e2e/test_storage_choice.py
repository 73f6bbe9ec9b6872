"""The launcher and the store: which one `/health` reports, and a store that cannot be opened
stopping `python app.py` with one line (the variable, the host, never the password)."""

import os
import subprocess
import sys

import httpx
import pytest

from tests.e2e.server import ROOT, free_port
from tests.pg import create_database_sync, drop_database_sync

pytestmark = pytest.mark.timeout(60)


def launch(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENCODE_", "SUPABASE_")) and k != "DATABASE_URL"
    }
    clean.update(env, PYTHONPATH=str(ROOT), PORT=str(free_port()))
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=45,
    )


async def test_health_names_the_store(server):
    async with httpx.AsyncClient(base_url=server.url) as client:
        health = (await client.get("/health")).json()
    assert health == {"status": "ok", "version": health["version"], "store": "sqlite", "ok": True}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"DATABASE_URL": "postgresql://app:pa55-word@127.0.0.1:9/opencode"},
            "DATABASE_URL: cannot open PostgreSQL at 127.0.0.1:9",
        ),
        ({"DATABASE_URL": "mysql://app:pa55-word@db/x"}, "DATABASE_URL has scheme 'mysql'"),
        ({"SUPABASE_URL": "https://project.supabase.co"}, "SUPABASE_KEY is not"),
        (
            {"SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_KEY": "pa55-word"},
            "SUPABASE_URL: cannot open Supabase at 127.0.0.1:9",
        ),
    ],
)
def test_a_store_that_cannot_be_opened_stops_the_launch_with_one_line(tmp_path, env, expected):
    done = launch(tmp_path, **env)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("opencode: ")]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "pa55-word" not in done.stderr + done.stdout


def test_the_startup_log_names_the_store_with_the_password_masked(start_server):
    url = create_database_sync()
    try:
        # trust auth: the server ignores the password, but the URL carries one
        with_password = url.replace("postgres@", "postgres:hunter2-pw@", 1)
        server = start_server(DATABASE_URL=with_password, OPENCODE_LOG_LEVEL="INFO")
        health = httpx.get(f"{server.url}/health").json()
        assert (health["store"], health["ok"]) == ("postgres", True)
        server.stop()
        log = server.log()
        assert "storage: postgres (postgresql://postgres:***@127.0.0.1" in log, log
        assert "hunter2-pw" not in log
    finally:
        drop_database_sync(url)
