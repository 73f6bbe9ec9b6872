"""Requests: ``ChatMessage`` and ``ToolSpec`` as the OpenAI-format dicts LiteLLM takes.

Replaying an assistant turn is where providers differ (what happens to its reasoning); each
difference is a named helper below.
"""

import copy
from collections.abc import Mapping
from typing import Any

from opencode.llm.types import ChatMessage, ModelRequest, Reasoning, ToolSpec


def chat_fields(request: ModelRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completions fields both clients send: messages and tools, then ``options`` (the
    client's own and ``request.extra``, which may override them), then streaming with usage,
    which nothing can switch off."""
    fields: dict[str, Any] = {"messages": to_litellm_messages(request)}
    if request.tools:
        fields["tools"] = [to_litellm_tool(spec) for spec in request.tools]
    fields.update(options)
    # Without include_usage OpenAI sends no usage chunk, so tokens and cost would read 0.
    fields.update(stream=True, stream_options={"include_usage": True})
    return fields


def to_litellm_messages(request: ModelRequest) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    for message in request.messages:
        messages.append(_message(message, request.model))
    return messages


def to_litellm_tool(spec: ToolSpec) -> dict[str, Any]:
    """A copy of the schema: LiteLLM's Gemini conversion rewrites the dict it is given in
    place, which would change the registry's shared specs for every later request."""
    parameters = copy.deepcopy(spec.parameters)
    function = {"name": spec.name, "description": spec.description, "parameters": parameters}
    return {"type": "function", "function": function}


def _message(message: ChatMessage, model: str) -> dict[str, Any]:
    if message.role == "tool":
        content = f"Error: {message.text}" if message.is_error else message.text
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.role != "assistant":
        return {"role": message.role, "content": message.text}
    out: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if model.startswith("anthropic/"):
        out.update(anthropic_thinking_replay(message.reasoning))
    else:
        out.update(drop_reasoning_replay(message.reasoning))
    return out


def anthropic_thinking_replay(reasoning: tuple[Reasoning, ...]) -> dict[str, Any]:
    """Anthropic: with extended thinking and tool use, an assistant turn must be replayed with
    its thinking blocks, signatures intact, or the API rejects the next request (and LiteLLM
    silently drops ``thinking`` when the last tool-calling turn has none). LiteLLM turns
    ``thinking_blocks`` into those content blocks. A block without a signature (from another
    provider earlier in the session) would fail Anthropic's verification, so it is left out."""
    blocks: list[dict[str, str]] = []
    for block in reasoning:
        if block.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": block.redacted})
        elif block.signature:
            thinking = {"type": "thinking", "thinking": block.text, "signature": block.signature}
            blocks.append(thinking)
    return {"thinking_blocks": blocks} if blocks else {}


def drop_reasoning_replay(reasoning: tuple[Reasoning, ...]) -> dict[str, Any]:
    """OpenAI and Gemini (every provider but Anthropic): reasoning is not sent back. OpenAI chat
    completions has no input field for it, and Gemini's thought signatures, which it does need
    back on function calls, travel inside the tool-call id (LiteLLM encodes them as
    ``<id>__thought__<signature>`` and decodes them on replay)."""
    return {}
