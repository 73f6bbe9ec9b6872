"""Turn logs and the ``/event`` bus in Redis Streams (``run-coordination.md`` §1, §3).

Ids: each entry's stream id is ``{n}-0``, where ``n`` is the public int id, chosen inside the
append script as ``max(Redis TIME in µs, last id + 1)``: the same scale as
``opencode.core.ids.EventIds`` (so ids from before the switch stay smaller), one clock for all
instances, growing across turns, owners and Redis restarts (see ``base``). An explicit id
also makes ``XADD`` refuse anything out of order.

Replay and live are one primitive (§3): ``XREAD BLOCK`` from the last id *received*, never
``$`` (§1 follow), on the blocking client. A turn log is trimmed once per turn, by the first
append of the next one: ``XTRIM MINID ~`` at the previous turn's first id keeps that turn for
late reconnects (§1 trimming, pitfall 12). The bus is capped with ``MAXLEN ~``.
"""

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from opencode.coordination.base import BusEntry, Entry, Gap, resume_point
from opencode.coordination.redis_clients import Keys, RedisClients

RUNNING_TTL_MS = 86_400_000  # §1: a turn log lives a day while its turn runs,
ENDED_TTL_MS = 3_600_000  # and an hour after its final event
BUS_MAXLEN = 10_000
READ_COUNT = 500

_NEXT_ID = (
    "local t = redis.call('TIME')\n"
    "local id = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
    "if top[1] then local last = tonumber(string.match(top[1][1], '^(%d+)'))\n"
    "  if last >= id then id = last + 1 end end\n"
    "id = string.format('%.0f', id)\n"
)
# KEYS: events, meta; ARGV: data, final ('1'/'0'), running ttl ms, ended ttl ms
_APPEND = (
    _NEXT_ID + "if redis.call('HGET', KEYS[2], 'open') ~= '1' then\n"
    "  local cur = redis.call('HGET', KEYS[2], 'cur')\n"
    "  if cur then redis.call('XTRIM', KEYS[1], 'MINID', '~', cur .. '-0') end\n"
    "  redis.call('HSET', KEYS[2], 'cur', id, 'open', '1') end\n"
    "redis.call('XADD', KEYS[1], id .. '-0', 'd', ARGV[1], 'f', ARGV[2])\n"
    "local ttl = ARGV[3]\n"
    "if ARGV[2] == '1' then redis.call('HSET', KEYS[2], 'open', '0') ttl = ARGV[4] end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl) redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "return id"
)
# KEYS: bus; ARGV: data, maxlen
_PUBLISH = _NEXT_ID + (
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id .. '-0', 'd', ARGV[1]) return id"
)


class RedisEventLog:
    def __init__(
        self,
        clients: RedisClients,
        *,
        prefix: str = "oc",
        bus_maxlen: int = BUS_MAXLEN,
        running_ttl_ms: int = RUNNING_TTL_MS,
        ended_ttl_ms: int = ENDED_TTL_MS,
    ) -> None:
        self._clients = clients
        self._redis = clients.commands
        self._keys = Keys(prefix)
        self._bus_maxlen = bus_maxlen
        self._ttls = (running_ttl_ms, ended_ttl_ms)
        self._append = self._redis.register_script(_APPEND)
        self._publish = self._redis.register_script(_PUBLISH)

    async def append(self, session_id: str, data: bytes | str, *, final: bool = False) -> int:
        keys = [self._keys.events(session_id), self._keys.events_meta(session_id)]
        reply = await self._append(keys=keys, args=[data, "1" if final else "0", *self._ttls])
        return int(reply)

    async def read(self, session_id: str, after_id: int = 0, *, limit: int = 500) -> list[Entry]:
        raw = await self._redis.xrange(
            self._keys.events(session_id), min=f"({after_id}-0", max="+", count=limit
        )
        return [_entry(entry_id, fields) for entry_id, fields in raw]

    async def follow(
        self, session_id: str, after_id: int | None = None
    ) -> AsyncIterator[Entry | Gap]:
        key = self._keys.events(session_id)
        start = await self.turn_start(session_id)
        oldest = newest = None
        if after_id is not None:  # the log's ends only matter to a reader that resumes
            oldest, newest = await self._ends(key)
        # Never issued: the current turn, from its start.
        gap, cursor = resume_point(after_id, oldest, newest, default=(start or 1) - 1)
        if gap is not None:
            yield gap
        async for entry_id, fields in self._tail(key, cursor):
            entry = _entry(entry_id, fields)
            yield entry
            if entry.final:
                return

    async def turn_start(self, session_id: str) -> int | None:
        start = await self._redis.hget(self._keys.events_meta(session_id), "cur")
        return int(start) if start is not None else None

    async def publish(
        self,
        type: str,
        properties: Mapping[str, Any],
        *,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> int:
        data = json.dumps(
            {"type": type, "properties": properties, "owner": owner, "session_id": session_id},
            separators=(",", ":"),
        )
        return int(await self._publish(keys=[self._keys.bus], args=[data, self._bus_maxlen]))

    async def subscribe(self, after_id: int | None = None) -> AsyncIterator[BusEntry | Gap]:
        oldest, newest = await self._ends(self._keys.bus)
        # Never issued: only new events.
        gap, cursor = resume_point(after_id, oldest, newest, default=newest or 0)
        if gap is not None:
            yield gap
        async for entry_id, fields in self._tail(self._keys.bus, cursor):
            body = json.loads(fields[b"d"])
            yield BusEntry(
                _id(entry_id),
                body["type"],
                body["properties"],
                body.get("owner"),
                body.get("session_id"),
            )

    async def aclose(self) -> None:
        """Nothing of its own to close: the clients belong to whoever made them."""

    async def _ends(self, key: str) -> tuple[int | None, int | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, count=1)
            pipe.xrevrange(key, count=1)
            first, last = await pipe.execute()
        return (_id(first[0][0]) if first else None, _id(last[0][0]) if last else None)

    async def _tail(self, key: str, after_id: int) -> AsyncIterator[tuple[bytes, dict]]:
        """Entries after ``after_id``, replayed and then live, from one ``XREAD`` loop."""
        cursor: bytes | str = f"{after_id}-0"
        while True:
            reply = await self._clients.blocking.xread(
                {key: cursor}, count=READ_COUNT, block=self._clients.block_ms
            )
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    cursor = entry_id
                    yield entry_id, fields


def _id(stream_id: bytes) -> int:
    return int(stream_id.split(b"-", 1)[0])


def _entry(stream_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    return Entry(_id(stream_id), fields[b"d"], fields.get(b"f") == b"1")
