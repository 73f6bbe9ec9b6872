"""A fake LLM provider on loopback that speaks the real streaming wire formats.

One server answers three dialects, picked by the request path:

* OpenAI chat completions: ``POST {openai_base}/chat/completions`` (``openai_base`` ends in
  ``/v1``), SSE ``data:`` chunks then ``data: [DONE]``; the usage chunk (empty ``choices``) is
  sent only when ``stream_options.include_usage`` is set, as OpenAI does.
* Anthropic messages: ``POST {anthropic_base}/v1/messages`` (LiteLLM appends ``/v1/messages``,
  so ``anthropic_base`` is the bare host), SSE ``event:``/``data:`` pairs.
* Gemini: LiteLLM builds ``{api_base}/models/{model}:streamGenerateContent?alt=sse`` (or
  ``:generateContent`` without streaming) for ``gemini/<model>`` with a custom ``api_base``, so
  ``gemini_base`` is ``{base_url}/v1beta`` and the paths match Google's own.

Each request pops the next scripted :class:`Reply`, whatever its dialect. The reply's content
is cut into *chunks* (text pieces, reasoning pieces, tool-argument fragments); ``chunk_delay``,
``hang_after`` and ``fail_after`` count those chunks, not wire events, so they mean the same in
every dialect. ``hang_after == len(chunks)`` stalls just before the finish/usage events.

Faults, each scripted on the ``Reply`` and meaning the same in every dialect:

* ``cut_after=N``: after N chunks the body ends cleanly, without the finish (OpenAI's
  ``finish_reason`` chunk, usage and ``[DONE]``; Anthropic's ``message_delta`` and
  ``message_stop``; Gemini's ``finishReason``). ``cut_after=0`` sends an empty body (not even
  Anthropic's ``message_start``); ``cut_after == len(chunks)`` leaves out only the finish.
* ``body`` + ``content_type``: a 200 whose whole body is these bytes (an HTML login page from
  a proxy, an empty event stream), whatever was asked for.
* ``invalid_json_after=N``: after N chunks one ``data: {this is not json`` event, then the
  stream goes on as scripted, as from a gateway that mangled one event and kept streaming (a
  client that skipped the line would lose content without noticing).
* ``endless``: after the scripted text, text chunks (each different: LiteLLM rejects 100
  identical chunks in a row) until the client disconnects; no tool calls, no finish.
* ``huge_line=N``: after the first chunk (or before the finish, without chunks) one ``data:``
  line of N bytes, in 64 KiB writes, never terminated: the body ends after it.
* ``hang_headers``: the request is read and no response is ever started (until the client
  disconnects).
* ``echo_auth``: an error response's message quotes the request's credentials (headers
  ``Authorization``, ``x-api-key``, ``x-goog-api-key`` and a ``key=`` query value) verbatim,
  as misbehaving gateways do.

Text is rendered with ``json.dumps`` defaults, so a lone surrogate (``"\\ud83d"``, half an
emoji cut between two chunks) goes out as a ``\\uXXXX`` escape, as real providers send it.

The bytes of each dialect are rendered in ``wire.py``; this module serves them.
"""

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.loopback import ThreadedServer
from tests.fakes.wire import DIALECTS, END, INVALID_JSON_LINE, Chunk

WRITE_SIZE = 64 * 1024  # a huge line goes out in writes of this size
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")

NO_REPLY_MESSAGE = "fake provider: no scripted reply"


@dataclass
class Reply:
    text: str | list[str] = ""  # a list = explicit chunks; a str is cut after each word
    reasoning: str | list[str] = ""  # reasoning_content / thinking / thought parts
    signature: str = "sig-fake"  # Anthropic thinking signature (Gemini: thoughtSignature)
    tool_calls: list[tuple[str, str, dict | str]] = ()  # (call_id, name, args dict or raw JSON)
    input_tokens: int = 10
    output_tokens: int = 5  # reasoning included (Gemini's candidatesTokenCount excludes it)
    reasoning_tokens: int = 0
    finish_reason: str | None = None  # default: tool calls -> tool_calls/tool_use, else stop
    chunk_delay: float = 0.0  # seconds between chunks (slow streams)
    hang_after: int | None = None  # after N chunks, stall until the client disconnects
    status: int = 200  # non-200 -> error response in the dialect's JSON error format
    error_message: str = "fake error"
    retry_after: str | None = None  # Retry-After header value for error responses
    fail_after: int | None = None  # after N chunks, abort the connection mid-stream
    redacted_thinking: str | None = None  # Anthropic only: a redacted_thinking block's data
    # faults (see the module docstring for what each does in every dialect)
    cut_after: int | None = None  # after N chunks, end the body without the finish
    body: bytes | None = None  # a 200 with exactly this body ...
    content_type: str = "text/event-stream"  # ... and this content-type
    invalid_json_after: int | None = None  # after N chunks, one data: line that is not JSON
    endless: bool = False  # text chunks until the client disconnects
    huge_line: int | None = None  # after the first chunk, one data: line of N bytes, then EOF
    hang_headers: bool = False  # never start the response
    echo_auth: bool = False  # error messages quote the request's credentials


@dataclass(frozen=True)
class RecordedRequest:
    dialect: str  # "openai" | "anthropic" | "gemini"
    path: str
    query: str
    headers: dict[str, str]
    json: Any

    def tool_messages(self) -> list[dict]:
        """The tool results an OpenAI chat request carries, in order."""
        return [m for m in self.json["messages"] if m["role"] == "tool"]


class _Abort(Exception):
    """A scripted transport failure: the app returns without finishing the response, and
    uvicorn closes the socket (logging one "returned without completing response" line)."""


def _dialect(path: str) -> tuple[str, bool | None]:
    """(dialect, streaming); streaming None means 'read it from the body'."""
    if path.endswith("/chat/completions"):
        return "openai", None
    if path.endswith("/messages"):
        return "anthropic", None
    if path.endswith(":streamGenerateContent"):
        return "gemini", True
    if path.endswith(":generateContent"):
        return "gemini", False
    return "unknown", None


class FakeProvider:
    """The server: uvicorn on ``127.0.0.1:<free port>`` in a daemon thread.

    ``script()`` and ``requests`` are used from the test thread while the server thread
    serves; both sides go through one lock. Use as ``with FakeProvider() as fake:``.
    """

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default  # what an unscripted request gets (else a 500)
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._replies: deque[Reply] = deque()
        self._lock = threading.Condition()
        self._open_streams = 0
        self._loopback = ThreadedServer(self._app, "fake provider")

    @property
    def openai_base(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base(self) -> str:
        return self.base_url

    @property
    def gemini_base(self) -> str:
        return f"{self.base_url}/v1beta"

    @property
    def open_streams(self) -> int:
        with self._lock:
            return self._open_streams

    def start(self) -> "FakeProvider":
        port = self._loopback.start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._loopback.stop()

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    def wait_closed(self, timeout: float = 2.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._open_streams == 0, timeout)

    # ---- server side ----

    def _next(self, recorded: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if recorded.dialect == "unknown":
                return Reply(status=404, error_message=f"fake provider: no route {recorded.path}")
            if self._replies:
                return self._replies.popleft()
            if self.default is not None:
                return self.default
        return Reply(status=500, error_message=NO_REPLY_MESSAGE)

    def _track(self, change: int) -> None:
        with self._lock:
            self._open_streams += change
            self._lock.notify_all()

    async def _app(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        dialect, streaming = _dialect(scope["path"])
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode()
        reply = self._next(RecordedRequest(dialect, scope["path"], query, headers, payload))
        stream_events, whole, error = DIALECTS.get(dialect, DIALECTS["openai"])
        if reply.status != 200 and not reply.hang_headers:
            if reply.echo_auth:
                reply = replace(reply, error_message=_echo_credentials(reply, headers, query))
            extra = [(b"retry-after", reply.retry_after.encode())] if reply.retry_after else []
            await _send_json(send, reply.status, error(reply), extra)
            return
        payload = payload if isinstance(payload, dict) else {}
        if streaming is None:
            streaming = bool(payload.get("stream"))
        self._track(+1)
        try:
            if reply.hang_headers:
                writer = asyncio.Event().wait()  # until the client disconnects
            elif reply.body is not None:
                writer = _send_body(send, reply.body, reply.content_type)
            elif streaming:
                writer = _write_stream(send, stream_events(reply, payload), reply)
            else:
                writer = _write_whole(send, whole(reply, payload), reply)
            await _until_disconnect(writer, receive)
        except _Abort:
            pass  # returning with the response unfinished makes uvicorn drop the connection
        finally:
            self._track(-1)


async def _send_json(send: Any, status: int, body: dict, extra: list | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _send_body(send: Any, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _echo_credentials(reply: Reply, headers: dict[str, str], query: str) -> str:
    """The error message with the request's credentials in it, verbatim."""
    echoed = [f"{name}: {headers[name]}" for name in CREDENTIAL_HEADERS if name in headers]
    echoed += [f"key={value}" for name, value in parse_qsl(query) if name == "key"]
    return f"{reply.error_message} (request had {', '.join(echoed) or 'no credentials'})"


async def _until_disconnect(writer: Any, receive: Any) -> None:
    """Run the writer until it finishes or the client goes away, whichever comes first."""

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(writer), asyncio.ensure_future(client_gone())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done:
            tasks[0].result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pace(reply: Reply, sent: int) -> None:
    """Before chunk number ``sent + 1`` (or the finish): stall, abort or wait as scripted."""
    if reply.hang_after is not None and sent >= reply.hang_after:
        await asyncio.Event().wait()  # until the client disconnects (the task is cancelled)
    if reply.fail_after is not None and sent >= reply.fail_after:
        raise _Abort(f"fake provider: scripted abort after {sent} chunks")
    if sent and reply.chunk_delay:
        await asyncio.sleep(reply.chunk_delay)
    elif reply.endless:
        await asyncio.sleep(0)  # else an endless writer never lets the disconnect be noticed


async def _write_stream(send: Any, events: Iterator[bytes | Chunk], reply: Reply) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    sent = 0
    for item in events if reply.cut_after != 0 else ():
        if isinstance(item, Chunk):
            if reply.cut_after is not None and sent >= reply.cut_after:
                break
            await _pace(reply, sent)
            if sent == reply.invalid_json_after:
                await _write(send, INVALID_JSON_LINE)
            if reply.huge_line is not None and (sent == 1 or (item is END and sent == 0)):
                await _write_huge_line(send, reply.huge_line)
                break
            sent += item is not END
            continue
        await _write(send, item)
    await send({"type": "http.response.body", "body": b""})


async def _write(send: Any, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _write_huge_line(send: Any, size: int) -> None:
    await _write(send, b"data: ")
    for start in range(6, size, WRITE_SIZE):
        await _write(send, b"x" * min(WRITE_SIZE, size - start))
        await asyncio.sleep(0)  # let a client that hung up be noticed


async def _write_whole(send: Any, body: dict, reply: Reply) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if reply.hang_after is not None:
        await asyncio.Event().wait()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if reply.fail_after is not None:
        await send(
            {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
        )
        raise _Abort("fake provider: scripted abort mid-body")
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    """``python -m tests.fakes.provider``: serve a fixed reply to every request until Ctrl-C,
    e.g. as the provider of a server being fuzzed (``bench/README.md``)."""
    import time

    fake = FakeProvider(default=Reply(text="A fake answer.", input_tokens=10, output_tokens=4))
    fake.start()
    print(f"fake provider: OPENAI_API_BASE={fake.openai_base}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
