"""Run ownership across processes on Redis (``run-coordination.md`` §1, §2).

- Lease: ``SET oc:{sid}:lease run_id|instance|nonce NX PX ttl``; renew and release are Lua
  scripts that compare the whole value (the token), so a stale holder cannot extend or drop
  a newer lease (§4 pitfall 4). ``oc:live`` (zset, score = expiry in Redis's clock) lists
  sessions for ``live_runs``; it is advisory, the lease key is the truth.
- Abort and answers: a durable key first (``abort:{rid}`` with ``EX``, ``answers:{rid}``
  hash written with ``HSETNX`` so one answer wins), checked by the renew script, then a
  wake-up on the owner's control stream ``oc:inst:{instance}:ctl``. One reader per
  instance follows it with ``XREAD BLOCK`` from the last id it received (never ``$`` twice,
  §1 follow); a lost wake-up costs one heartbeat, not the abort (§4 pitfall 10: no pub/sub).
- Not here yet: the PostgreSQL ``run_epoch`` fence (§1), which the wiring adds with the store.
"""

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable

from redis.exceptions import RedisError

from opencode.coordination.base import Answers, Beat, Lease, LiveRun
from opencode.coordination.redis_clients import Keys, RedisClients
from opencode.core.ids import new_id

log = logging.getLogger(__name__)

DEFAULT_TTL_MS = 20_000
SIGNAL_TTL_S = 600  # an abort or answers nobody collects go away (§1: abort key EX 600)
CONTROL_MAXLEN = 1_000
CONTROL_REPLAY_S = 5

_LIVE_SCORE = (
    "local t = redis.call('TIME') local score = t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2]\n"
)

# KEYS: lease, live; ARGV: token, ttl_ms, session_id
_CLAIM = (
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end\n"
    + _LIVE_SCORE
    + "redis.call('ZADD', KEYS[2], score, ARGV[3]) return 1"
)
# KEYS: lease, live, abort, answers; ARGV: token, ttl_ms, session_id. A lapsed lease nobody
# claimed is re-asserted with the same value (§1 heartbeat: survives a Redis restart).
_RENEW = (
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "elseif v ~= ARGV[1] then return false\n"
    "else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    + _LIVE_SCORE
    + "redis.call('ZADD', KEYS[2], score, ARGV[3])\n"
    "return {redis.call('EXISTS', KEYS[3]), redis.call('HGETALL', KEYS[4])}"
)
# KEYS: lease, live, abort, answers; ARGV: token, session_id
_RELEASE = (
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1], KEYS[3], KEYS[4]) redis.call('ZREM', KEYS[2], ARGV[2]) return 1"
)
# Only for the session's live run (never a newer turn, §4 pitfall 3); returns its instance.
_OWNER = (
    "local v = redis.call('GET', KEYS[1]) if not v then return false end\n"
    "local rid, inst = string.match(v, '^([^|]*)|([^|]*)|') if rid ~= ARGV[1] then return false end\n"
)
# KEYS: lease, abort; ARGV: run_id, ttl_s
_ABORT = _OWNER + "redis.call('SET', KEYS[2], '1', 'EX', ARGV[2]) return inst"
# KEYS: lease, answers; ARGV: run_id, ttl_s, question_id, answers JSON
_ANSWER = (
    _OWNER + "if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) == 0 then return false end\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[2]) return inst"
)


class RedisCoordinator:
    def __init__(
        self,
        clients: RedisClients,
        *,
        instance_id: str | None = None,
        prefix: str = "oc",
        ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        self._clients = clients
        self._redis = clients.commands
        self._keys = Keys(prefix)
        self._instance_id = instance_id or new_id("inst")
        self._ttl_ms = ttl_ms
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._abort = self._redis.register_script(_ABORT)
        self._answer = self._redis.register_script(_ANSWER)
        self._watchers: defaultdict[tuple[str, str], list[Callable[[], None]]] = defaultdict(list)
        self._reader: asyncio.Task[None] | None = None

    @property
    def instance_id(self) -> str:
        return self._instance_id

    async def claim(self, session_id: str, run_id: str) -> Lease | None:
        if "|" in run_id or "|" in self._instance_id:
            raise ValueError(f"run and instance ids must not contain '|': {run_id!r}")
        token = f"{run_id}|{self._instance_id}|{new_id('lease')}"
        keys = [self._keys.lease(session_id), self._keys.live]
        if not await self._claim(keys=keys, args=[token, self._ttl_ms, session_id]):
            return None
        return Lease(session_id, run_id, self._instance_id, token, self._ttl_ms)

    async def renew(self, lease: Lease) -> Beat | None:
        reply = await self._renew(
            keys=self._run_keys(lease), args=[lease.token, lease.ttl_ms, lease.session_id]
        )
        if reply is None:
            return None
        aborted, flat = reply
        answers = {flat[i].decode(): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        return Beat(abort_requested=bool(aborted), answers=answers)

    async def release(self, lease: Lease) -> bool:
        reply = await self._release(
            keys=self._run_keys(lease), args=[lease.token, lease.session_id]
        )
        return bool(reply)

    async def request_abort(self, session_id: str, run_id: str) -> bool:
        keys = [self._keys.lease(session_id), self._keys.abort(session_id, run_id)]
        owner = await self._abort(keys=keys, args=[run_id, SIGNAL_TTL_S])
        return await self._signal(owner, "abort", session_id, run_id)

    async def deliver_answer(
        self, session_id: str, run_id: str, question_id: str, answers: Answers
    ) -> bool:
        keys = [self._keys.lease(session_id), self._keys.answers(session_id, run_id)]
        args = [run_id, SIGNAL_TTL_S, question_id, json.dumps(answers)]
        owner = await self._answer(keys=keys, args=args)
        return await self._signal(owner, "answer", session_id, run_id)

    def watch(self, lease: Lease, wake: Callable[[], None]) -> Callable[[], None]:
        run = (lease.session_id, lease.run_id)
        self._watchers[run].append(wake)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_control(), name="coordination:ctl")

        def unwatch() -> None:
            wakes = self._watchers.get(run, [])
            if wake in wakes:
                wakes.remove(wake)
            if not wakes:
                self._watchers.pop(run, None)

        return unwatch

    async def live_runs(self) -> list[LiveRun]:
        seconds, micros = await self._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._keys.live, "-inf", now_ms)  # lapsed leases
            pipe.zrangebyscore(self._keys.live, now_ms, "+inf")
            _, members = await pipe.execute()
        sessions = [member.decode() for member in members]
        if not sessions:
            return []
        values = await self._redis.mget([self._keys.lease(sid) for sid in sessions])
        return [
            LiveRun(sid, *value.decode().split("|")[:2])
            for sid, value in zip(sessions, values, strict=True)
            if value is not None
        ]

    async def is_live(self, session_id: str, run_id: str) -> bool:
        value = await self._redis.get(self._keys.lease(session_id))
        return value is not None and value.decode().split("|")[0] == run_id

    async def aclose(self) -> None:
        """Stop the control reader; the clients belong to whoever made them."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._watchers.clear()

    def _run_keys(self, lease: Lease) -> list[str]:
        sid, rid = lease.session_id, lease.run_id
        return [
            self._keys.lease(sid),
            self._keys.live,
            self._keys.abort(sid, rid),
            self._keys.answers(sid, rid),
        ]

    async def _signal(self, owner: bytes | None, kind: str, session_id: str, run_id: str) -> bool:
        """Wake the owner after the durable record is written; the record alone is enough."""
        if owner is None:
            return False
        fields = {"k": kind, "s": session_id, "r": run_id}
        try:
            await self._redis.xadd(
                self._keys.control(owner.decode()), fields, maxlen=CONTROL_MAXLEN, approximate=True
            )
        except RedisError as error:  # the owner's next heartbeat sees the record anyway
            log.warning("could not wake the owner of session %s: %s", session_id, error)
        return True

    async def _read_control(self) -> None:
        """Follow this instance's control stream, waking watchers. It starts a few seconds in
        the past (ids are Redis's clock), so a wake-up sent while the reader was starting is
        not lost; replaying an old one only costs a needless re-check."""
        key = self._keys.control(self._instance_id)
        cursor: bytes | str | None = None
        while True:
            try:
                if cursor is None:
                    seconds, _ = await self._redis.time()
                    cursor = f"{(seconds - CONTROL_REPLAY_S) * 1000}-0"
                reply = await self._clients.blocking.xread(
                    {key: cursor}, count=100, block=self._clients.block_ms
                )
            except RedisError as error:
                log.warning("reading the control stream failed (retrying in 1 s): %s", error)
                await asyncio.sleep(1)
                continue
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    cursor = entry_id
                    run = (fields[b"s"].decode(), fields[b"r"].decode())
                    for wake in list(self._watchers.get(run, ())):
                        wake()
