"""LiteLLM is imported only when a request needs it, and then off the event loop, once.

Each test runs a fresh interpreter (this one imported LiteLLM long ago). What it imports is
watched with an audit hook (``sys.addaudithook``: the ``import`` event fires when a module is
actually loaded, in the thread that loads it), installed before anything else, so the check
does not depend on our own code telling the truth about itself.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import server_env
from tests.e2e.helpers import by_type, new_session, send
from tests.e2e.server import free_port
from tests.fakes.provider import FakeProvider, Reply

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

# Records every load of ``litellm`` (thread name, time); at exit, writes what it saw to $REPORT.
WATCH = textwrap.dedent(
    """
    import atexit, json, os, sys, threading, time

    LOADS = []

    def _hook(event, args):
        if event == "import" and args[0] == "litellm":
            LOADS.append({"thread": threading.current_thread().name, "at": time.monotonic()})

    sys.addaudithook(_hook)

    def _report():
        with open(os.environ["REPORT"], "w") as out:
            json.dump(
                {
                    "loads": LOADS,
                    "in_sys_modules": "litellm" in sys.modules,
                    "main_thread": threading.main_thread().name,
                },
                out,
            )

    atexit.register(_report)
    """
)

# The real server (``python app.py``), watched.
SERVE = WATCH + textwrap.dedent(
    """
    import runpy
    sys.argv = [os.environ["APP"]]
    runpy.run_path(os.environ["APP"], run_name="__main__")
    """
)


class WatchedServer:
    """``python app.py`` on a free loopback port, under the import watch."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.report = workdir / f"report-{self.port}.json"
        self.log = workdir / f"server-{self.port}.log"
        script = workdir / "serve_watched.py"
        script.write_text(SERVE)
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_API_KEY", "_API_BASE", "_BASE_URL"))
            and not k.startswith("OPENCODE_")
        }
        full_env = {
            **base,
            **env,
            "PYTHONPATH": str(ROOT),
            "PORT": str(self.port),
            "OPENCODE_HOST": "127.0.0.1",
            "REPORT": str(self.report),
            "APP": str(ROOT / "app.py"),
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(script)],
                cwd=workdir,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Seconds from launch until ``/health`` answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> dict:
        """Ctrl+C, and what the watch saw. (After a SIGTERM uvicorn re-raises it with the
        default handler, which ends the process without running ``atexit``; a SIGINT becomes a
        ``KeyboardInterrupt``, and the interpreter exits through its ``atexit`` handlers.)"""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        assert self.report.exists(), self.log.read_text()
        return json.loads(self.report.read_text())


async def one_turn(url: str, text: str) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        session_id = await new_session(client)
        frames = by_type(await send(client, session_id, content="Hi"))
    assert frames["done"][0]["stop_reason"] == "stop", frames
    assert "".join(t["text"] for t in frames["text"]) == text
    return frames["done"][0]


async def test_a_native_openai_turn_never_imports_litellm(fake: FakeProvider, tmp_path: Path):
    fake.default = Reply(text="Native answer.", input_tokens=1200, output_tokens=30)
    try:
        server = WatchedServer(tmp_path, server_env(fake, tmp_path))
        try:
            await asyncio.to_thread(server.wait_healthy)
            done = await one_turn(server.url, "Native answer.")
            providers = (await asyncio.to_thread(httpx.get, f"{server.url}/provider")).json()
        finally:
            report = await asyncio.to_thread(server.stop)
    finally:
        fake.default = None

    assert done["cost"] > 0  # priced from the map without LiteLLM
    assert {p["id"] for p in providers} == {"openai", "anthropic", "gemini"}
    assert report == {"loads": [], "in_sys_modules": False, "main_thread": "MainThread"}


async def test_litellm_only_turns_import_it_once_off_the_event_loop(
    fake: FakeProvider, tmp_path: Path
):
    """OpenAI through LiteLLM (its native switch off): the server starts without waiting for
    the import (it warms up in the background), concurrent first turns all go through the one
    import, which ran in a worker thread, not in the event loop's (the main thread)."""
    fake.default = Reply(text="Through LiteLLM.", input_tokens=1200, output_tokens=30)
    env = server_env(fake, tmp_path, OPENCODE_NATIVE_OPENAI="false")
    try:
        server = WatchedServer(tmp_path, env)
        try:
            await asyncio.to_thread(server.wait_healthy)
            dones = await asyncio.gather(
                *(one_turn(server.url, "Through LiteLLM.") for _ in range(4))
            )
        finally:
            report = await asyncio.to_thread(server.stop)
    finally:
        fake.default = None

    assert all(done["cost"] > 0 for done in dones)
    assert [load["thread"] for load in report["loads"]] == ["litellm-import"]
    assert report["main_thread"] == "MainThread" and report["in_sys_modules"] is True


# LazyLiteLLMClient alone, first used by several streams at once, with the event loop watched.
CONCURRENT_FIRST_USE = WATCH + textwrap.dedent(
    """
    import asyncio
    from opencode.llm.lazy_litellm import LazyLiteLLMClient
    from opencode.llm.types import ChatMessage, ModelRequest, StepOutput

    async def main():
        client = LazyLiteLLMClient(idle_timeout=60)
        request = ModelRequest(
            "openai/gpt-4o-mini",
            (ChatMessage("user", "hi"),),
            api_key="test-key",
            api_base=os.environ["OPENAI_API_BASE"],
        )
        gaps = []
        stop = asyncio.Event()

        async def ticker():
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        async def one():
            return [chunk async for chunk in client.stream(request)]

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(*(one() for _ in range(5)))
        stop.set()
        await tick
        outputs = [r[-1] for r in results]
        print(json.dumps({
            "outputs": [isinstance(o, StepOutput) and o.text for o in outputs],
            "max_gap": max(gaps),
            "first_use": time.monotonic() - started,
            "loop_thread": threading.current_thread().name,
            "frozen": __import__("gc").get_freeze_count(),
        }))

    asyncio.run(main())
    """
)


def test_concurrent_first_streams_share_one_import_in_a_thread(fake: FakeProvider, tmp_path: Path):
    fake.default = Reply(text="Lazy.", input_tokens=10, output_tokens=2)
    script = tmp_path / "first_use.py"
    script.write_text(CONCURRENT_FIRST_USE)
    report_path = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPORT": str(report_path)}
    env["OPENAI_API_BASE"] = fake.openai_base
    try:
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=100
        )
    finally:
        fake.default = None
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    report = json.loads(report_path.read_text())

    assert result["outputs"] == ["Lazy."] * 5
    assert [load["thread"] for load in report["loads"]] == ["litellm-import"]
    assert result["loop_thread"] == "MainThread"
    assert result["frozen"] > 200_000  # LiteLLM's objects, out of the collector's walks
    # The import takes seconds; the loop kept running meanwhile (a blocked loop would show
    # one gap as long as the import).
    assert result["max_gap"] < result["first_use"] / 3, result


@pytest.mark.parametrize(
    ("settings", "native", "needed"),
    [
        ({"OPENAI_API_KEY": "k"}, {"openai", "anthropic", "gemini"}, False),
        ({"OPENAI_API_KEY": "k"}, {"openai"}, False),  # the others cannot be used without a key
        ({"OPENAI_API_KEY": "k", "GEMINI_API_KEY": "k"}, {"openai"}, True),
        ({"OPENAI_API_KEY": "k"}, {"anthropic", "gemini"}, True),
        ({"OPENCODE_MODEL": "anthropic/claude-sonnet-4-5"}, {"openai", "gemini"}, True),
        ({"OPENCODE_TITLE_MODEL": "gemini/gemini-2.5-flash"}, {"openai", "anthropic"}, True),
        ({"OPENCODE_MODEL": "openai/gpt-4o-mini"}, {"openai"}, False),
    ],
)
def test_litellm_is_warmed_up_only_for_a_provider_without_a_native_client(
    monkeypatch: pytest.MonkeyPatch, settings: dict, native: set, needed: bool
) -> None:
    from opencode.api.lifecycle import litellm_needed
    from opencode.core.settings import Settings

    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("OPENCODE_MODEL", "OPENCODE_TITLE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    clients = dict.fromkeys(native, object())
    assert litellm_needed(Settings(_env_file=None, **settings), clients) is needed
