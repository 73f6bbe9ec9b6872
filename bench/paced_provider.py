"""A paced fake model provider for ``bench.compare``: its own process, loopback HTTP/1.1.

``python -m bench.paced_provider [--port 0]`` prints ``PACED_PROVIDER_URL=http://127.0.0.1:<port>``
once it listens, then serves the three streaming dialects (bytes from ``tests/fakes/wire.py``):

* OpenAI chat completions SSE: ``POST /v1/chat/completions`` (always with a final usage chunk);
* Anthropic Messages SSE: ``POST /v1/messages``;
* Gemini: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``.

Every turn streams ``chunks`` text chunks, chunk ``i`` scheduled at ``t0 + i * interval`` on an
absolute schedule (``t0``: when the response headers went out; never sleep-after-send, so a late
chunk does not push the later ones back). Chunk ``i``'s text is ``[i@<scheduled µs>] `` on
``time.monotonic`` (CLOCK_MONOTONIC, one clock for every process of the machine), so whoever
receives it, directly or through a server, can tell how late it arrived. Each SSE event goes out
in its own ``send`` (asyncio writes at once when nothing is buffered) with TCP_NODELAY; the
first chunk shares its send with the events before it (Anthropic's ``message_start``...), the
last with the finish/usage events.

The fake records its own lateness, the actual send time minus the scheduled one, per chunk, so
a slow fake cannot be mistaken for a slow server. Control:

* ``GET /stats``: ``{"requests", "by_dialect", "chunks", "lateness_ms": {"p50", "p99", "max"}}``;
* ``POST /reset``: clears them;
* ``POST /config`` ``{"chunks": 200, "interval_ms": 10}``: what the next turns stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import sys
import time
from urllib.parse import urlsplit

from tests.fakes.provider import Reply
from tests.fakes.wire import DIALECTS, END, Chunk


class State:
    def __init__(self) -> None:
        self.chunks = 200
        self.interval_ns = 10_000_000
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_dialect: dict[str, int] = {}
        self.lateness_ns: list[int] = []
        self.errors: list[str] = []

    def stats(self) -> dict:
        values = sorted(self.lateness_ns)

        def rank(fraction: float) -> float | None:
            if not values:
                return None
            return values[max(0, math.ceil(fraction * len(values)) - 1)] / 1e6

        return {
            "requests": self.requests,
            "by_dialect": self.by_dialect,
            "chunks": len(values),
            "errors": self.errors[-5:],
            "config": {"chunks": self.chunks, "interval_ms": self.interval_ns / 1e6},
            "lateness_ms": {"p50": rank(0.5), "p99": rank(0.99), "max": rank(1.0)},
        }


STATE = State()


def dialect_of(path: str) -> str | None:
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith(":streamGenerateContent"):
        return "gemini"
    return None


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict, bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target, headers, body


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def send_json(writer: asyncio.StreamWriter, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    writer.write(
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def stream_turn(writer: asyncio.StreamWriter, dialect: str, payload: dict) -> None:
    chunks, interval = STATE.chunks, STATE.interval_ns
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    t0 = time.monotonic_ns()
    schedule = [t0 + i * interval for i in range(chunks)]
    reply = Reply(
        text=[f"[{i}@{at // 1000}] " for i, at in enumerate(schedule)],
        input_tokens=12,
        output_tokens=chunks,
    )
    payload = {**payload, "stream_options": {"include_usage": True}}
    events = DIALECTS[dialect][0](reply, payload)
    pending: list[bytes] = []
    index = 0
    lateness = STATE.lateness_ns
    for item in events:
        if isinstance(item, Chunk):
            if item is END:
                continue
            if index > 0 and pending:  # the previous chunk's events: one send
                writer.write(http_chunk(b"".join(pending)))
                lateness.append(time.monotonic_ns() - schedule[index - 1])
                pending = []
                await writer.drain()
            delay = schedule[index] - time.monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            elif interval == 0 and index % 16 == 0:
                await asyncio.sleep(0)  # a burst lets the other streams in now and then
            index += 1
            continue
        pending.append(item)
    writer.write(http_chunk(b"".join(pending)) + b"0\r\n\r\n")
    if index:
        lateness.append(time.monotonic_ns() - schedule[index - 1])
    await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            try:
                request = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            method, target, headers, body = request
            path = urlsplit(target).path
            if path == "/stats" and method == "GET":
                await send_json(writer, 200, STATE.stats())
            elif path == "/reset" and method == "POST":
                STATE.reset()
                await send_json(writer, 200, {"ok": True})
            elif path == "/config" and method == "POST":
                config = json.loads(body or b"{}")
                STATE.chunks = int(config.get("chunks", STATE.chunks))
                STATE.interval_ns = int(float(config.get("interval_ms", 10)) * 1e6)
                await send_json(writer, 200, STATE.stats()["config"])
            elif method == "POST" and (dialect := dialect_of(path)) is not None:
                STATE.requests += 1
                STATE.by_dialect[dialect] = STATE.by_dialect.get(dialect, 0) + 1
                await stream_turn(writer, dialect, json.loads(body or b"{}"))
            else:
                STATE.errors.append(f"{method} {target}")
                await send_json(writer, 404, {"error": {"message": f"no route {path}"}})
            if headers.get("connection", "").lower() == "close":
                return
    except ConnectionError:
        return
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PACED_PROVIDER_URL=http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415  (optional)

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
