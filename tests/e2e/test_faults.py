"""The provider fault matrix through the real server, on every provider path: the native OpenAI
client and LiteLLM's Anthropic and Gemini. Whatever the provider does, the message stream ends
with exactly one final event, the reply is stored with the right status and its partial text,
the session takes the next turn, ``/event`` subscribers stay connected, and no credential or
conversation text reaches a stream, the database or the (DEBUG) log."""

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import server_env
from tests.e2e.helpers import listen_bus, new_session, send, wait_until
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider, Reply

pytestmark = pytest.mark.timeout(120)

# keys shaped like real ones, so the redaction patterns meet what they will meet in production
KEYS = {
    "openai": "sk-proj-" + "Zx81Qw7Er6Ty5Ui4Op3As2DfGh1Jk",
    "anthropic": "sk-ant-api03-" + "Lm9Nb8Vc7Xz6Aq5Sw4De3Fr2Gt1",
    "gemini": "AIza" + "SyQw7Er6Ty5Ui4Op3As2Df1Gh0Jk9Lm8Nb",
}
MODELS = {
    "openai": "gpt-4o-mini",  # the native streaming client
    "anthropic": "claude-sonnet-4-5",  # LiteLLM
    "gemini": "gemini-2.5-flash",  # LiteLLM
}
IDLE = 1.0
MAX_CHARS = 5000
SECRET_WORDS = "marmalade-ocelot-quartz"  # user text that must never reach the log
MODEL_WORDS = "xylophone-zebra-umber"  # nor the model's
EMOJI = "\U0001f600"
GOOD = Reply(text="all good")


@pytest.fixture(scope="module")
def fault_server(provider_server: FakeProvider, tmp_path_factory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("fault-server")
    env = server_env(
        provider_server,
        workdir,
        OPENAI_API_KEY=KEYS["openai"],
        ANTHROPIC_API_KEY=KEYS["anthropic"],
        GEMINI_API_KEY=KEYS["gemini"],
        OPENCODE_STREAM_IDLE_TIMEOUT=str(IDLE),
        OPENCODE_MAX_STEP_OUTPUT_CHARS=str(MAX_CHARS),
        OPENCODE_MAX_RETRIES="1",
        OPENCODE_LOG_LEVEL="DEBUG",
    )
    server = ServerProcess(workdir, env).start()
    yield server
    server.stop()


@pytest.fixture(params=list(MODELS))
def dialect(request) -> str:
    return request.param


@dataclass
class Fault:
    replies: list[Reply]
    final: str  # "done" or "error"
    status: str  # the stored reply's status
    content: str | None = None  # the stored text (None: not checked exactly)
    error: str | None = None  # a piece of the error message
    retried: bool = False  # a retry event comes before the final one
    status_code: int | None = None
    dialects: set[str] = field(default_factory=lambda: set(MODELS))


FAULTS = {
    "split emoji": Fault(
        [Reply(text=["Hi \ud83d", "\ude00 there"])], "done", "completed", f"Hi {EMOJI} there"
    ),
    "lone surrogates": Fault(
        [Reply(reasoning=["Hmm \udc00"], text=["Hi \ud83d", " there \udc00", " end \ud83d"])],
        "done",
        "completed",
        "Hi \ufffd there \ufffd end \ufffd",
    ),
    "cut after a chunk": Fault(
        [Reply(text=["one ", "two"], cut_after=1)],
        "error",
        "error",
        "one ",
        "the stream ended before the model finished",
    ),
    "cut before the first chunk": Fault(
        [Reply(text="never", cut_after=0), GOOD], "done", "completed", "all good", retried=True
    ),
    "HTML page with status 200": Fault(
        [Reply(body=b"<html><body>Sign in</body></html>", content_type="text/html")] * 2,
        "error",
        "error",
        "",
        "expected an event stream, got text/html",
        retried=True,
    ),
    "empty body": Fault(
        [Reply(body=b"", content_type="text/event-stream"), GOOD],
        "done",
        "completed",
        "all good",
        retried=True,
    ),
    "a line that is not JSON": Fault(
        [Reply(text=["one ", "two"], invalid_json_after=1)],
        "error",
        "error",
        "one ",
        "not JSON",
    ),
    "endless output": Fault(
        [Reply(text="start ", endless=True)],
        "error",
        "error",
        None,
        f"passed {MAX_CHARS} characters in one step",
    ),
    "a huge line": Fault(
        [Reply(text=["first ", "second"], huge_line=2 * 2**20)],
        "error",
        "error",
        "first ",
        None,
    ),
    "a stall mid-stream": Fault(
        [Reply(text=["one ", "two"], hang_after=1)], "error", "error", "one ", "stalled"
    ),
    "no headers at all": Fault(
        [Reply(text="never", hang_headers=True)] * 2, "error", "error", "", "stalled", True
    ),
    "401 that quotes the key": Fault(
        [Reply(status=401, error_message="invalid api key", echo_auth=True)],
        "error",
        "error",
        "",
        "invalid api key",
        status_code=401,
    ),
    "429 with Retry-After": Fault(
        [Reply(status=429, error_message="slow down", retry_after="1"), GOOD],
        "done",
        "completed",
        "all good",
        retried=True,
    ),
    "503 twice": Fault(
        [Reply(status=503, error_message="overloaded")] * 2,
        "error",
        "error",
        "",
        "overloaded",
        retried=True,
        status_code=503,
    ),
}


def stored_text(server: ServerProcess) -> str:
    """Everything the database holds, as text."""
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type='table'")]
        rows = {t: db.execute(f"select * from {t}").fetchall() for t in tables}
    return json.dumps(rows, ensure_ascii=False, default=str)


@pytest.mark.parametrize("name", list(FAULTS))
async def test_a_provider_fault_ends_the_turn_cleanly(fault_server, fake, dialect, name):
    fault = FAULTS[name]
    fake.script(*fault.replies, Reply(text=[MODEL_WORDS]))
    async with (
        httpx.AsyncClient(base_url=fault_server.url, timeout=60) as client,
        listen_bus(client) as bus,
    ):
        session_id = await new_session(client, provider_id=dialect, model_id=MODELS[dialect])
        frames = await send(client, session_id, content=f"hello {SECRET_WORDS}")

        finals = [f for f in frames if f.type in ("done", "error")]
        assert len(finals) == 1 and frames[-1] is finals[0], [f.type for f in frames]
        final = finals[0]
        assert final.type == fault.final, final.data
        if fault.final == "done":
            assert final.data["stop_reason"] == "stop"
        else:
            if fault.error is not None:
                assert fault.error in final.data["error"], final.data
            assert final.data["status_code"] == fault.status_code
        assert any(f.type == "retry" for f in frames) == fault.retried

        page = (await client.get(f"/session/{session_id}/message")).json()
        reply = page["messages"][-1]
        assert reply["id"] == final.data["message_id"]
        assert reply["status"] == fault.status
        streamed = "".join(f.data["text"] for f in frames if f.type == "text")
        assert reply["content"] == streamed  # what the user saw is what was kept
        if fault.content is not None:
            assert reply["content"] == fault.content
        if fault.final == "error":
            assert reply["error"] == final.data["error"]

        # the session takes the next turn, and the subscriber saw both
        assert (await client.get(f"/session/{session_id}")).json()["status"] == "idle"
        after = await send(client, session_id, content="again")
        assert after[-1].type == "done" and after[-1].data["stop_reason"] == "stop"
        next_id = after[-1].data["message_id"]
        await wait_until(
            lambda: any(
                f.data["type"] == "message.updated"
                and f.data["properties"]["id"] == next_id
                and f.data["properties"]["status"] == "completed"
                for f in bus
            )
        )
        ended = [
            f.data["properties"]
            for f in bus
            if f.data["type"] in ("message.updated", "session.error")
            and f.data["properties"].get("id", f.data["properties"].get("message_id"))
            == final.data["message_id"]
        ]
        assert ended, "the subscriber did not hear how the faulty turn ended"
        on_bus = "".join(
            f.data["properties"]["delta"]
            for f in bus
            if f.data["type"] == "message.part.delta"
            and f.data["properties"]["message_id"] == final.data["message_id"]
            and f.data["properties"]["part_type"] == "text"
        )
        assert on_bus == streamed

    everything = json.dumps([f.data for f in frames + bus], ensure_ascii=False)
    everything += stored_text(fault_server)
    for key in KEYS.values():
        assert key[6:24] not in everything
    log = fault_server.log()
    for key in KEYS.values():
        assert key[6:24] not in log
    assert SECRET_WORDS not in log and MODEL_WORDS not in log  # no conversation text
    everything.encode()  # no lone surrogate anywhere: it could not be encoded


async def test_a_surrogate_in_tool_arguments_and_result_is_replaced(fault_server, fake, dialect):
    todos = {"todos": [{"id": "1", "content": "cut \ud800 here", "status": "pending"}]}
    fake.script(Reply(tool_calls=[("c1", "todowrite", todos)]), Reply(text="done"))
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=60) as client:
        session_id = await new_session(client, provider_id=dialect, model_id=MODELS[dialect])
        frames = await send(client, session_id, content="plan")
        assert frames[-1].type == "done", frames[-1].data
        stored = (await client.get(f"/session/{session_id}/todo")).json()
        assert [t["content"] for t in stored] == ["cut \ufffd here"]
        page = (await client.get(f"/session/{session_id}/message")).json()
        tool = next(p for m in page["messages"] for p in m["parts"] if p["type"] == "tool")
        assert tool["state"] == "completed" and "cut \ufffd here" in tool["output"]
        # what the model is told next carries no lone half either
        sent = json.dumps(fake.requests[-1].json, ensure_ascii=False)
        assert "\\ud800" not in sent and "cut \ufffd here" in sent


async def test_titles_and_summaries_with_surrogates_are_stored(fault_server, fake):
    fake.script(Reply(text="first answer"), Reply(text="second answer"))
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=60) as client:
        session_id = await new_session(client)
        await send(client, session_id, content="one")
        await send(client, session_id, content="two")

        fake.script(Reply(text=["Title \ud83d", "\ude00 \udc00"]))
        title = await client.post(f"/session/{session_id}/generate-title")
        assert title.status_code == 200, title.text
        assert title.json()["title"] == f"Title {EMOJI} \ufffd"

        fake.script(Reply(text=["Summary \ud800 of it"]))
        compacted = await client.post(f"/session/{session_id}/compact")
        assert compacted.status_code == 200, compacted.text
        assert compacted.json()["status"] == "completed"
        status = (await client.get(f"/session/{session_id}/compaction-status")).json()
        assert status["status"] == "completed"
        page = (await client.get(f"/session/{session_id}/message")).json()
        summary = page["messages"][-1]["parts"][0]
        assert summary["type"] == "compaction" and "Summary \ufffd of it" in summary["summary"]

        # a summary that breaks off is a failed compaction, not a stuck one
        fake.script(Reply(text="third"), Reply(text="fourth"))
        await send(client, session_id, content="three")
        await send(client, session_id, content="four")
        fake.script(Reply(text=["half a summ"], cut_after=1))  # not retried: it had begun
        failed = await client.post(f"/session/{session_id}/compact")
        assert failed.status_code == 502, failed.text
        assert "ended before the model finished" in failed.json()["detail"]
        status = (await client.get(f"/session/{session_id}/compaction-status")).json()
        assert status["status"] == "failed"
        fake.script(Reply(text="still here"))
        assert (await send(client, session_id, content="five"))[-1].type == "done"
