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
"""

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

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


@dataclass(frozen=True)
class RecordedRequest:
    dialect: str  # "openai" | "anthropic" | "gemini"
    path: str
    query: str
    headers: dict[str, str]
    json: Any


@dataclass(frozen=True)
class _Chunk:
    kind: str  # "reasoning" | "text" | "tool"
    text: str
    tool_index: int = -1
    last: bool = False  # the last fragment of a tool call's arguments


_END = _Chunk("end", "")  # marks where the finish/usage events start


class _Abort(Exception):
    """A scripted transport failure: the app returns without finishing the response, and
    uvicorn closes the socket (logging one "returned without completing response" line)."""


def split_text(text: str | list[str]) -> list[str]:
    """A list is taken as explicit chunks; a string is cut after each word."""
    if isinstance(text, list):
        return [piece for piece in text if piece]
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _arguments_text(arguments: dict | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _fragments(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chunks(reply: Reply) -> list[_Chunk]:
    chunks = [_Chunk("reasoning", piece) for piece in split_text(reply.reasoning)]
    chunks += [_Chunk("text", piece) for piece in split_text(reply.text)]
    for index, (_, _, arguments) in enumerate(reply.tool_calls):
        frags = _fragments(_arguments_text(arguments))
        chunks += [_Chunk("tool", frag, index, n == len(frags) - 1) for n, frag in enumerate(frags)]
    return chunks


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


# ---- OpenAI ----


def _openai_finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _openai_usage(reply: Reply) -> dict:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
    }


def _openai_chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _sse(_openai_envelope(model, "chat.completion.chunk", choices=[choice]))


def _openai_envelope(model: str, obj: str, **fields: Any) -> dict:
    now = int(time.time())
    return {"id": "chatcmpl-fake", "object": obj, "created": now, "model": model, **fields}


def _openai_stream(reply: Reply, body: dict) -> Iterator[bytes | _Chunk]:
    model = body.get("model", "fake")
    started: set[int] = set()
    for chunk in _chunks(reply):
        yield chunk
        if chunk.kind == "reasoning":
            yield _openai_chunk(model, {"role": "assistant", "reasoning_content": chunk.text})
        elif chunk.kind == "text":
            yield _openai_chunk(model, {"role": "assistant", "content": chunk.text})
        else:
            call: dict[str, Any] = {
                "index": chunk.tool_index,
                "function": {"arguments": chunk.text},
            }
            if chunk.tool_index not in started:
                started.add(chunk.tool_index)
                call_id, name, _ = reply.tool_calls[chunk.tool_index]
                call.update(id=call_id, type="function")
                call["function"]["name"] = name
            yield _openai_chunk(model, {"tool_calls": [call]})
    yield _END
    yield _openai_chunk(model, {}, _openai_finish(reply))
    if (body.get("stream_options") or {}).get("include_usage"):
        envelope = _openai_envelope(model, "chat.completion.chunk", choices=[])
        yield _sse({**envelope, "usage": _openai_usage(reply)})
    yield _sse("[DONE]")


def _openai_json(reply: Reply, body: dict) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(split_text(reply.text))}
    if reply.reasoning:
        message["reasoning_content"] = "".join(split_text(reply.reasoning))
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": _arguments_text(a)},
            }
            for cid, name, a in reply.tool_calls
        ]
    choice = {"index": 0, "message": message, "finish_reason": _openai_finish(reply)}
    return _openai_envelope(
        body.get("model", "fake"), "chat.completion", choices=[choice], usage=_openai_usage(reply)
    )


def _openai_error(reply: Reply) -> dict:
    error = {"message": reply.error_message, "type": "fake_error", "code": str(reply.status)}
    return {"error": {**error, "param": None}}


# ---- Anthropic ----


def _anthropic_stop(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")


def _anthropic_event(kind: str, **fields: Any) -> bytes:
    return _sse({"type": kind, **fields}, kind)


def _anthropic_stream(reply: Reply, body: dict) -> Iterator[bytes | _Chunk]:
    message = _anthropic_message(reply, body, content=[], stop_reason=None)
    message["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": 1}
    yield _anthropic_event("message_start", message=message)
    index, current = -1, None
    if reply.redacted_thinking:
        index += 1
        block = {"type": "redacted_thinking", "data": reply.redacted_thinking}
        yield _anthropic_event("content_block_start", index=index, content_block=block)
        yield _anthropic_event("content_block_stop", index=index)
    for chunk in _chunks(reply):
        if (chunk.kind, chunk.tool_index) != current:
            if current is not None:
                yield from _anthropic_block_end(index, current[0], reply)
            index, current = index + 1, (chunk.kind, chunk.tool_index)
            block = _anthropic_start_block(chunk, reply)
            yield _anthropic_event("content_block_start", index=index, content_block=block)
        yield chunk
        yield _anthropic_event("content_block_delta", index=index, delta=_anthropic_delta(chunk))
    if current is not None:
        yield from _anthropic_block_end(index, current[0], reply)
    yield _END
    delta = {"stop_reason": _anthropic_stop(reply), "stop_sequence": None}
    usage = {"output_tokens": reply.output_tokens}
    yield _anthropic_event("message_delta", delta=delta, usage=usage)
    yield _anthropic_event("message_stop")


def _anthropic_start_block(chunk: _Chunk, reply: Reply) -> dict:
    if chunk.kind == "reasoning":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if chunk.kind == "text":
        return {"type": "text", "text": ""}
    call_id, name, _ = reply.tool_calls[chunk.tool_index]
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def _anthropic_delta(chunk: _Chunk) -> dict:
    if chunk.kind == "reasoning":
        return {"type": "thinking_delta", "thinking": chunk.text}
    if chunk.kind == "text":
        return {"type": "text_delta", "text": chunk.text}
    return {"type": "input_json_delta", "partial_json": chunk.text}


def _anthropic_block_end(index: int, kind: str, reply: Reply) -> Iterator[bytes]:
    """A thinking block's signature arrives as its last delta, as Anthropic sends it."""
    if kind == "reasoning":
        delta = {"type": "signature_delta", "signature": reply.signature}
        yield _anthropic_event("content_block_delta", index=index, delta=delta)
    yield _anthropic_event("content_block_stop", index=index)


def _anthropic_message(reply: Reply, body: dict, content: list, stop_reason: str | None) -> dict:
    usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "content": content}
    stop = {"stop_reason": stop_reason, "stop_sequence": None}
    return {**message, "model": body.get("model", "fake"), **stop, "usage": usage}


def _anthropic_json(reply: Reply, body: dict) -> dict:
    content: list[dict] = []
    if reply.redacted_thinking:
        content.append({"type": "redacted_thinking", "data": reply.redacted_thinking})
    if reply.reasoning:
        thinking = "".join(split_text(reply.reasoning))
        content.append({"type": "thinking", "thinking": thinking, "signature": reply.signature})
    if reply.text:
        content.append({"type": "text", "text": "".join(split_text(reply.text))})
    for call_id, name, arguments in reply.tool_calls:
        args = json.loads(_arguments_text(arguments))
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
    return _anthropic_message(reply, body, content, _anthropic_stop(reply))


def _anthropic_error(reply: Reply) -> dict:
    kind = "rate_limit_error" if reply.status == 429 else "api_error"
    return {"type": "error", "error": {"type": kind, "message": reply.error_message}}


# ---- Gemini ----


def _gemini_finish(reply: Reply) -> str:
    return reply.finish_reason or "STOP"


def _gemini_usage(reply: Reply) -> dict:
    """Gemini counts thoughts apart from candidates; ``Reply.output_tokens`` includes them, as
    OpenAI's completion_tokens and Anthropic's output_tokens do."""
    return {
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": reply.output_tokens - reply.reasoning_tokens,
        "thoughtsTokenCount": reply.reasoning_tokens,
        "totalTokenCount": reply.input_tokens + reply.output_tokens,
    }


def _gemini_call_parts(reply: Reply) -> list[dict]:
    """Gemini sends a whole functionCall at once; a thoughtSignature rides on the first call
    when the model was thinking (Gemini 2.5+), and a native ``id`` (Gemini 3.5+)."""
    parts = []
    for index, (call_id, name, arguments) in enumerate(reply.tool_calls):
        call = {"id": call_id, "name": name, "args": json.loads(_arguments_text(arguments))}
        part: dict[str, Any] = {"functionCall": call}
        if index == 0 and reply.reasoning:
            part["thoughtSignature"] = reply.signature
        parts.append(part)
    return parts


def _gemini_response(parts: list[dict], finish: str | None = None, usage: dict | None = None):
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    response: dict[str, Any] = {"candidates": [candidate], "modelVersion": "fake"}
    if usage:
        response["usageMetadata"] = usage
    return response


def _gemini_stream(reply: Reply, body: dict) -> Iterator[bytes | _Chunk]:
    call_parts = _gemini_call_parts(reply)
    for chunk in _chunks(reply):
        yield chunk
        if chunk.kind == "reasoning":
            yield _sse(_gemini_response([{"text": chunk.text, "thought": True}]))
        elif chunk.kind == "text":
            yield _sse(_gemini_response([{"text": chunk.text}]))
        elif chunk.last:
            yield _sse(_gemini_response([call_parts[chunk.tool_index]]))
    yield _END
    yield _sse(_gemini_response([], _gemini_finish(reply), _gemini_usage(reply)))


def _gemini_json(reply: Reply, body: dict) -> dict:
    parts: list[dict] = []
    if reply.reasoning:
        parts.append({"text": "".join(split_text(reply.reasoning)), "thought": True})
    if reply.text:
        parts.append({"text": "".join(split_text(reply.text))})
    parts += _gemini_call_parts(reply)
    return _gemini_response(parts, _gemini_finish(reply), _gemini_usage(reply))


def _gemini_error(reply: Reply) -> dict:
    status = "RESOURCE_EXHAUSTED" if reply.status == 429 else "INTERNAL"
    return {"error": {"code": reply.status, "message": reply.error_message, "status": status}}


_DIALECTS = {
    "openai": (_openai_stream, _openai_json, _openai_error),
    "anthropic": (_anthropic_stream, _anthropic_json, _anthropic_error),
    "gemini": (_gemini_stream, _gemini_json, _gemini_error),
}


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

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._replies: deque[Reply] = deque()
        self._lock = threading.Condition()
        self._open_streams = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

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
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self._app,
            http="h11",
            interface="asgi3",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake provider did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

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
        stream_events, whole, error = _DIALECTS.get(dialect, _DIALECTS["openai"])
        if reply.status != 200:
            extra = [(b"retry-after", reply.retry_after.encode())] if reply.retry_after else []
            await _send_json(send, reply.status, error(reply), extra)
            return
        payload = payload if isinstance(payload, dict) else {}
        if streaming is None:
            streaming = bool(payload.get("stream"))
        self._track(+1)
        try:
            if streaming:
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


async def _write_stream(send: Any, events: Iterator[bytes | _Chunk], reply: Reply) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    sent = 0
    for item in events:
        if isinstance(item, _Chunk):
            await _pace(reply, sent)
            sent += item is not _END
            continue
        await send({"type": "http.response.body", "body": item, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


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
