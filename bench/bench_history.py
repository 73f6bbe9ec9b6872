"""What a turn reads before its first model call, in a long session, with and without a summary.

Run from the repo root: ``python -m bench.bench_history [--messages 20000] [--repeat 30]``.
It fills a fresh SQLite database through the ``Store`` API, then times

- ``full``: every stored message turned into the model's history (what a turn read before
  compaction existed, and still reads in a session that was never compacted);
- ``compacted``: ``Compactor.load`` plus the model's view after a summary that folded all but
  the last ``--kept`` messages (what a turn reads once the session has been compacted).
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.bench_pagination import fill, timed
from opencode.agent.history import build_history
from opencode.core.ids import new_id, utc_now
from opencode.core.settings import Settings
from opencode.events.bus import EventBus
from opencode.services.compaction import CompactionPolicy, Compactor
from opencode.services.providers import ProviderCatalog
from opencode.services.quota import QuotaService
from opencode.storage.base import CompactionRecord, MessageRecord
from opencode.storage.sqlite import SqliteStore


async def summarise(store: SqliteStore, session_id: str, *, through: int) -> None:
    """Store a summary message and a compaction state that folds messages 1..``through``."""
    now = utc_now()
    part = {
        "type": "compaction",
        "summary": "## Goal\nA long task. " * 50,
        "trigger": "messages",
        "messages_folded": through,
        "folded_through_seq": through,
        "tokens_before": 0,
        "tokens_after": 0,
    }
    record = MessageRecord(
        new_id("msg"), session_id, "assistant", now, now, "completed", [part], part["summary"]
    )
    stored = await store.add_message(record)
    await store.save_compaction(
        CompactionRecord(
            session_id,
            "completed",
            "messages",
            now,
            finished_at=now,
            summary_message_id=stored.id,
            folded_through_seq=through,
            compactions=1,
        )
    )


async def main(messages: int, kept: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(str(Path(directory) / "bench.db"))
        await store.initialize()
        started = time.perf_counter()
        session_id = await fill(store, sessions=1, messages=messages, per_other=0)
        print(f"filled {messages} messages in {time.perf_counter() - started:.1f} s")
        compactor = Compactor(
            store=store,
            bus=EventBus(),
            client=None,  # type: ignore[arg-type]  (load() makes no model call)
            catalog=ProviderCatalog(Settings()),
            quota=QuotaService(store, daily_limit=0),
            policy=CompactionPolicy(),
        )

        async def full() -> None:
            records, _ = await store.list_messages(session_id, limit=None, offset=0, order="asc")
            build_history(records)

        async def compacted() -> None:
            (await compactor.load(session_id)).messages()

        print("ms per turn start: median, p95, max")
        print("full      ", *(f"{v:8.2f}" for v in await timed(full, repeat)))
        await summarise(store, session_id, through=messages - kept)
        print("compacted ", *(f"{v:8.2f}" for v in await timed(compacted, repeat)))
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--kept", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.kept, args.repeat))
