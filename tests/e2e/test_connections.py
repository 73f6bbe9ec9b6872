"""Connections that never finish a request cannot lock clients out (``opencode/api/server.py``).

Through the real launcher (``python app.py``) with raw sockets, since HTTP clients cannot
stop half-way through a request head on purpose.
"""

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import server_env
from tests.e2e.helpers import listen_bus, new_session, wait_until
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.timeout(90)

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.0
KEPT_ALIVE_HEADER_TIMEOUT = 1.5
SLACK = 2.0  # how late a close may come on a loaded machine


class RawConnection:
    """One client socket, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.opened = time.monotonic()
        self.closed_at: float | None = None
        self.received = bytearray()

    @classmethod
    async def open(cls, server: ServerProcess, data: bytes = b"") -> "RawConnection":
        connect = asyncio.open_connection("127.0.0.1", server.port)
        connection = cls(*await asyncio.wait_for(connect, 5))
        connection.writer.write(data)
        await connection.writer.drain()
        return connection

    async def closed_by_server(self, within: float) -> bool:
        """Read until the server closes (True) or ``within`` seconds pass (False)."""
        deadline = time.monotonic() + within
        while self.closed_at is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), remaining)
            except TimeoutError:
                return False
            except ConnectionResetError:  # closed before it read what we sent
                chunk = b""
            if chunk:
                self.received += chunk
            else:
                self.closed_at = time.monotonic()
        return True

    @property
    def lifetime(self) -> float:
        assert self.closed_at is not None
        return self.closed_at - self.opened

    @property
    def status(self) -> int | None:
        head = bytes(self.received).split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) > 1 else None

    def json(self) -> dict:
        return json.loads(bytes(self.received).split(b"\r\n\r\n", 1)[1])

    def close(self) -> None:
        self.writer.close()


async def open_many(server: ServerProcess, count: int, data: bytes) -> list[RawConnection]:
    opening = [RawConnection.open(server, data) for _ in range(count)]
    return list(await asyncio.gather(*opening))


def request_head(server: ServerProcess, method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_post_head(server: ServerProcess, path: str, length: int) -> bytes:
    return request_head(
        server,
        "POST",
        path,
        "Content-Type: application/json",
        f"Content-Length: {length}",
        "Connection: close",
    )


async def health_latency(server: ServerProcess) -> float:
    """Seconds for ``GET /health`` on a new connection, connect included (inf: no answer)."""
    started = time.monotonic()
    try:
        health = await RawConnection.open(
            server, request_head(server, "GET", "/health", "Connection: close")
        )
    except TimeoutError:
        return float("inf")
    try:
        if not await health.closed_by_server(5) or health.status != 200:
            return float("inf")
        return health.closed_at - started
    finally:
        health.close()


async def trickle_head(server: ServerProcess, every: float = 0.25) -> RawConnection:
    """A request head sent one byte every ``every`` seconds, until the server closes."""
    slow = await RawConnection.open(server, b"GET /health HTTP/1.1\r\nX-Slow: ")
    while not await slow.closed_by_server(every):
        slow.writer.write(b"a")
    return slow


async def post_slowly(
    server: ServerProcess, path: str, body: bytes, pieces: int, every: float
) -> RawConnection:
    """A body sent in ``pieces`` with ``every`` seconds between them; the answer is read."""
    post = await RawConnection.open(server, json_post_head(server, path, len(body)))
    step = -(-len(body) // pieces)
    for start in range(0, len(body), step):
        await asyncio.sleep(every)
        post.writer.write(body[start : start + step])
    await post.closed_by_server(10)
    return post


async def stall_a_second_request(server: ServerProcess, idle: float) -> tuple[RawConnection, float]:
    """One request answered on a kept-alive connection, ``idle`` seconds of quiet, then part
    of a second request head; the connection and how long it lived after that part."""
    kept = await RawConnection.open(server, request_head(server, "GET", "/health"))
    while not kept.received.endswith(b"}"):
        kept.received += await asyncio.wait_for(kept.reader.read(65536), 5)
    assert kept.status == 200
    await asyncio.sleep(idle)
    kept.received.clear()
    kept.writer.write(b"GET /health HTTP/1.1\r\nHo")
    stalled_at = time.monotonic()
    assert await kept.closed_by_server(KEPT_ALIVE_HEADER_TIMEOUT + SLACK)
    return kept, kept.closed_at - stalled_at


async def session_total(client: httpx.AsyncClient) -> int:
    response = await client.get("/session")
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total-Count"])


def created(frames, session_id: str) -> bool:
    return any(f.type == "session.created" and session_id in json.dumps(f.data) for f in frames)


@pytest.fixture
def launch(fake, tmp_path) -> Iterator:
    servers: list[ServerProcess] = []

    def start(rlimit_nofile: int | None = None, **overrides: str) -> ServerProcess:
        env = server_env(fake, tmp_path, **overrides)
        server = ServerProcess(tmp_path, env, rlimit_nofile=rlimit_nofile).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def test_stuck_connections_do_not_lock_out_clients(launch):
    server = launch(rlimit_nofile=256, OPENCODE_HEADER_TIMEOUT=str(HEADER_TIMEOUT))
    stuck_heads: list[RawConnection] = []
    stuck_bodies: list[RawConnection] = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        listen_bus(client) as frames,
    ):
        try:
            # in waves that arrive at once, as an attack would: more than the server's fds
            for _ in range(3):
                stuck_heads += await open_many(server, 100, b"GET /health HTTP/1.1\r\nHo")
            body_start = json_post_head(server, "/session", 100_000) + b'{"ti'
            stuck_bodies += await open_many(server, 50, body_start)
            trickler = asyncio.create_task(trickle_head(server))
            await asyncio.sleep(0.2)

            latencies = [await health_latency(server) for _ in range(5)]
            print(f"GET /health under 350 stuck connections: max {max(latencies) * 1000:.1f} ms")
            assert max(latencies) < 0.1, latencies

            session_id = await new_session(client)
            await wait_until(lambda: created(frames, session_id), timeout=5)

            for head in stuck_heads:
                assert await head.closed_by_server(
                    head.opened + HEADER_TIMEOUT + SLACK - time.monotonic()
                )
            assert any(head.status == 408 for head in stuck_heads)
            timeout = stuck_heads[-1].json()  # the newest: not evicted by the cap, timed out
            assert stuck_heads[-1].status == 408 and timeout["error"] == "request_timeout"
            assert stuck_heads[-1].lifetime > HEADER_TIMEOUT - 0.3

            # trickling bytes does not extend the deadline
            slow = await asyncio.wait_for(trickler, SLACK + 3)
            assert slow.status == 408
            assert HEADER_TIMEOUT - 0.3 < slow.lifetime < HEADER_TIMEOUT + SLACK

            # requests still in their body are neither evicted nor cut by the header deadline
            assert not any(body.reader.at_eof() for body in stuck_bodies)

            # the event stream opened before lived through all of it
            again = await new_session(client)
            await wait_until(lambda: created(frames, again), timeout=5)
        finally:
            for connection in stuck_heads + stuck_bodies:
                connection.close()
    assert "out of system resource" not in server.log()


async def test_a_stalled_body_is_cut_and_a_slow_one_is_not(launch):
    server = launch(
        OPENCODE_BODY_TIMEOUT=str(BODY_TIMEOUT),
        OPENCODE_HEADER_TIMEOUT=str(KEPT_ALIVE_HEADER_TIMEOUT),
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        listen_bus(client) as frames,
    ):
        before = await session_total(client)
        body = b'{"title": "a title that takes a while"}'
        stalled = await RawConnection.open(
            server, json_post_head(server, "/session", len(body)) + body[:10]
        )
        slow = asyncio.create_task(post_slowly(server, "/session", body, pieces=6, every=0.4))
        kept_alive = asyncio.create_task(stall_a_second_request(server, idle=1.0))

        assert await stalled.closed_by_server(BODY_TIMEOUT + SLACK)
        assert stalled.lifetime > BODY_TIMEOUT - 0.1
        assert stalled.received == b""  # cut, not answered: the app saw a disconnect

        # 2.4 s in all, but never 1 s without data: it goes through
        slowly = await slow
        assert slowly.status == 201, slowly.received
        assert slowly.lifetime > 2 * BODY_TIMEOUT
        session_id = slowly.json()["id"]
        # the event stream (a response, 2.4 s long by now) is not cut by the body timeout
        await wait_until(lambda: created(frames, session_id), timeout=5)
        assert await session_total(client) == before + 1  # the stalled POST stored nothing

        # on a kept-alive connection the head deadline runs from the next request's first
        # byte (1.5 s), not from the opening (which was 1 s before it)
        kept, after_first_byte = await kept_alive
        assert kept.status == 408
        assert after_first_byte > KEPT_ALIVE_HEADER_TIMEOUT - 0.3
