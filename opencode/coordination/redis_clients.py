"""The Redis connections and key names shared by ``RedisCoordinator`` and ``RedisEventLog``.

Two clients per process (``run-coordination.md`` §4 pitfalls 7-9): ``commands`` for short
requests, and ``blocking`` for ``XREAD BLOCK`` only, on a ``BlockingConnectionPool`` (a
full pool waits instead of raising ``Too many connections``) whose ``socket_timeout`` is
above the block time, so a quiet stream is a nil reply, never a ``TimeoutError``.

Keys follow §1: every per-session key carries the hash tag ``{sid}`` so one session's
scripts stay in one Cluster slot; ``prefix`` (default ``oc``) keeps deployments and tests apart.
"""

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

BLOCK_MS = 5_000  # one XREAD BLOCK; loops re-issue it, nothing cancels a read to stop waiting


@dataclass(frozen=True)
class Keys:
    prefix: str = "oc"

    def lease(self, session_id: str) -> str:
        return f"{self.prefix}:{{{session_id}}}:lease"

    def abort(self, session_id: str, run_id: str) -> str:
        return f"{self.prefix}:{{{session_id}}}:abort:{run_id}"

    def answers(self, session_id: str, run_id: str) -> str:
        return f"{self.prefix}:{{{session_id}}}:answers:{run_id}"

    def events(self, session_id: str) -> str:
        return f"{self.prefix}:{{{session_id}}}:ev"

    def events_meta(self, session_id: str) -> str:
        """Hash: ``cur`` (first id of the current turn), ``open`` (1 until its final event)."""
        return f"{self.prefix}:{{{session_id}}}:evmeta"

    def control(self, instance_id: str) -> str:
        return f"{self.prefix}:inst:{instance_id}:ctl"

    @property
    def live(self) -> str:
        return f"{self.prefix}:live"

    @property
    def bus(self) -> str:
        return f"{self.prefix}:bus"


@dataclass(frozen=True)
class RedisClients:
    commands: Redis
    blocking: Redis
    block_ms: int = BLOCK_MS

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_blocking: int = 200,
        block_ms: int = BLOCK_MS,
        client_name: str | None = None,
    ) -> "RedisClients":
        """``max_blocking`` bounds the concurrent follows of this process (each pins one
        connection while it waits); past it a follow waits up to 5 s for a free one."""
        commands = Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, client_name=client_name
        )
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_blocking,
            timeout=5,
            socket_timeout=block_ms / 1000 + 5,
            socket_connect_timeout=5,
            client_name=client_name,
        )
        return cls(commands, Redis.from_pool(pool), block_ms)

    async def aclose(self) -> None:
        await self.commands.aclose()
        await self.blocking.aclose()
