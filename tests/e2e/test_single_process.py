"""One SQLite database, one server process: a second one (another ``python app.py``, or the
workers of ``uvicorn app:app --workers 2``) refuses to start, saying why, and the first one's
turns go on untouched. Running turns are coordinated in each process's memory."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import server_env
from tests.e2e.helpers import new_session, send
from tests.e2e.server import ROOT, ServerProcess, free_port
from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(120)
REFUSAL = "Another OpenCode server process already uses the SQLite database"


async def test_a_second_server_on_the_same_sqlite_file_refuses_to_start(fake, tmp_path):
    env = server_env(fake, tmp_path)
    first = ServerProcess(tmp_path, env).start()
    try:
        second = ServerProcess(tmp_path, env)
        with pytest.raises(RuntimeError, match="exited early") as refused:
            second.start()
        assert REFUSAL in str(refused.value) and "--workers" in str(refused.value)
        fake.script(Reply(text="still here"))
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            session_id = await new_session(client)
            frames = await send(client, session_id, content="hi")
        assert frames[-1].type == "done"
        assert "".join(f.data["text"] for f in frames if f.type == "text") == "still here"
    finally:
        first.stop()
    ServerProcess(tmp_path, env).start().stop()  # the lock went with the first process


def test_uvicorn_workers_on_one_sqlite_file_are_refused_as_a_whole(fake, tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_API_KEY", "_API_BASE")) and not key.startswith("OPENCODE_")
    }
    env.update(server_env(fake, tmp_path), PYTHONPATH=str(ROOT))
    port = free_port()
    log = tmp_path / "workers.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        proc.wait(60)  # the refused worker stops the supervisor, and so every worker
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert REFUSAL in text, text[-3000:]
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
