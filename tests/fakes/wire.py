"""The fake provider's wire formats: a scripted ``Reply`` as each dialect's bytes.

Every dialect renders a reply three ways: a streaming body (SSE events, with the ``Chunk`` it
carries yielded just before its events, so the server can pace, stall or abort by chunk), a
whole JSON completion, and a JSON error body. The shapes follow what each provider sends and
what LiteLLM 1.106 parses; ``provider.py`` only serves them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # provider.py imports this module, so Reply is only a type here
    from tests.fakes.provider import Reply


@dataclass(frozen=True)
class Chunk:
    kind: str  # "reasoning" | "text" | "tool"
    text: str
    tool_index: int = -1
    last: bool = False  # the last fragment of a tool call's arguments


END = Chunk("end", "")  # marks where the finish/usage events start
INVALID_JSON_LINE = b"data: {this is not json\n\n"


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


def _chunks(reply: Reply) -> Iterator[Chunk]:
    yield from (Chunk("reasoning", piece) for piece in split_text(reply.reasoning))
    yield from (Chunk("text", piece) for piece in split_text(reply.text))
    if reply.endless:
        yield from _endless_text()
    for index, (_, _, arguments) in enumerate(reply.tool_calls):
        frags = _fragments(_arguments_text(arguments))
        yield from (Chunk("tool", frag, index, n == len(frags) - 1) for n, frag in enumerate(frags))


def _endless_text() -> Iterator[Chunk]:
    """Numbered words: LiteLLM fails a stream that repeats one chunk 100 times in a row."""
    number = 0
    while True:
        number += 1
        yield Chunk("text", f"w{number} ")


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


def _openai_stream(reply: Reply, body: dict) -> Iterator[bytes | Chunk]:
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
    yield END
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


def _anthropic_stream(reply: Reply, body: dict) -> Iterator[bytes | Chunk]:
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
    yield END
    delta = {"stop_reason": _anthropic_stop(reply), "stop_sequence": None}
    usage = {"output_tokens": reply.output_tokens}
    yield _anthropic_event("message_delta", delta=delta, usage=usage)
    yield _anthropic_event("message_stop")


def _anthropic_start_block(chunk: Chunk, reply: Reply) -> dict:
    if chunk.kind == "reasoning":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if chunk.kind == "text":
        return {"type": "text", "text": ""}
    call_id, name, _ = reply.tool_calls[chunk.tool_index]
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def _anthropic_delta(chunk: Chunk) -> dict:
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


def _gemini_stream(reply: Reply, body: dict) -> Iterator[bytes | Chunk]:
    call_parts = _gemini_call_parts(reply)
    for chunk in _chunks(reply):
        yield chunk
        if chunk.kind == "reasoning":
            yield _sse(_gemini_response([{"text": chunk.text, "thought": True}]))
        elif chunk.kind == "text":
            yield _sse(_gemini_response([{"text": chunk.text}]))
        elif chunk.last:
            yield _sse(_gemini_response([call_parts[chunk.tool_index]]))
    yield END
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


# dialect -> (streaming body, whole JSON completion, error body)
DIALECTS = {
    "openai": (_openai_stream, _openai_json, _openai_error),
    "anthropic": (_anthropic_stream, _anthropic_json, _anthropic_error),
    "gemini": (_gemini_stream, _gemini_json, _gemini_error),
}
