"""Message pagination on SQLite: page latency at the start, middle and end of a long session.

Run from the repo root: ``python -m bench.bench_pagination [--messages 20000] ...``.
It fills a fresh database through the ``Store`` API, times ``list_messages`` pages in both
orders (and ``list_sessions`` pages), prints the query plans, and, for contrast, times the
range query as raw SQL against the naive ``ORDER BY seq LIMIT ? OFFSET ?`` + ``COUNT(*)``
that it replaces.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from opencode.core.ids import new_id, utc_now
from opencode.storage.base import MessageRecord, SessionRecord
from opencode.storage.sqlite import MESSAGE_PAGE_SQL, SESSION_PAGE_SQL, SqliteStore

NAIVE_PAGE_SQL = "SELECT * FROM messages WHERE session_id = ? ORDER BY seq {order} LIMIT ? OFFSET ?"
NAIVE_COUNT_SQL = "SELECT COUNT(*) FROM messages WHERE session_id = ?"
PARTS = [{"type": "text", "text": "The quick brown fox jumps over the lazy dog. " * 8}]


def message(session_id: str, index: int) -> MessageRecord:
    now = utc_now()
    return MessageRecord(
        id=new_id("msg"),
        session_id=session_id,
        role="user" if index % 2 == 0 else "assistant",
        created_at=now,
        updated_at=now,
        status="completed",
        parts=PARTS,
        content=PARTS[0]["text"],
    )


async def fill(store: SqliteStore, *, sessions: int, messages: int, per_other: int) -> str:
    start = utc_now()
    ids = []
    for index in range(sessions):
        moment = start + timedelta(microseconds=index)
        record = SessionRecord(id=new_id("ses"), title="s", created_at=moment, updated_at=moment)
        ids.append((await store.create_session(record)).id)
    target, others = ids[0], ids[1:]
    for index in range(messages):
        await store.add_message(message(target, index))
        if index < len(others) * per_other:  # interleave other sessions' rows in the table
            await store.add_message(message(others[index % len(others)], index))
    return target


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], samples[-1]


def report(label: str, stats: tuple[float, float, float], extra: str = "") -> None:
    median, p95, worst = stats
    print(f"  {label:<34} median {median:7.3f} ms  p95 {p95:7.3f} ms  max {worst:7.3f} ms  {extra}")


async def bench_store(store: SqliteStore, target: str, args: argparse.Namespace) -> None:
    n, page = args.messages, args.page
    print(f"\nlist_messages (limit={page}), {args.repeat} runs each:")
    for position, offset in (("start", 0), ("middle", n // 2), ("end", n - page)):
        for order in ("asc", "desc"):
            rows, total = await store.list_messages(target, limit=page, offset=offset, order=order)
            seqs = f"seq {rows[0].seq}..{rows[-1].seq} of {total}"

            async def call(offset: int = offset, order: Any = order) -> Any:
                return await store.list_messages(target, limit=page, offset=offset, order=order)

            report(
                f"{position:<6} offset={offset:<6} {order}", await timed(call, args.repeat), seqs
            )

    print(f"\nlist_sessions (limit={page}) of {args.sessions}:")
    for position, offset in (
        ("start", 0),
        ("middle", args.sessions // 2),
        ("end", args.sessions - page),
    ):

        async def sessions(offset: int = offset) -> Any:
            return await store.list_sessions(limit=page, offset=offset)

        report(f"{position:<6} offset={offset}", await timed(sessions, args.repeat))


async def bench_raw(db: aiosqlite.Connection, target: str, args: argparse.Namespace) -> None:
    """SQL alone (no record decoding): the seq range vs LIMIT/OFFSET + COUNT(*)."""
    n, page = args.messages, args.page
    print(f"\nraw SQL only, seq range vs naive LIMIT/OFFSET + COUNT(*) ({args.repeat} runs each):")
    for position, offset in (("start", 0), ("middle", n // 2), ("end", n - page)):
        for order in ("asc", "desc"):
            if order == "asc":
                low, high = offset, offset + page
            else:
                low, high = n - offset - page, n - offset
            naive = NAIVE_PAGE_SQL.format(order=order.upper())

            async def ranged(low: int = low, high: int = high, order: Any = order) -> Any:
                return await db.execute_fetchall(MESSAGE_PAGE_SQL[order], (target, low, high))

            async def paged(sql: str = naive, offset: int = offset) -> Any:
                await db.execute_fetchall(sql, (target, page, offset))
                return await db.execute_fetchall(NAIVE_COUNT_SQL, (target,))

            label = f"{position:<6} offset={offset:<6} {order}"
            report(f"{label} range", await timed(ranged, args.repeat))
            report(f"{label} naive", await timed(paged, args.repeat))


async def print_plans(db: aiosqlite.Connection) -> None:
    print("\nEXPLAIN QUERY PLAN:")
    queries = {f"message page {order}": sql for order, sql in MESSAGE_PAGE_SQL.items()}
    queries["session page"] = SESSION_PAGE_SQL
    queries["naive page (contrast)"] = NAIVE_PAGE_SQL.format(order="DESC")
    queries["naive count (contrast)"] = NAIVE_COUNT_SQL
    for name, sql in queries.items():
        rows = await db.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", ("x",) * sql.count("?"))
        print(f"  {name:<24} " + " | ".join(row[3] for row in rows))


async def main(args: argparse.Namespace, path: str) -> None:
    store = SqliteStore(path)
    await store.initialize()
    began = time.perf_counter()
    target = await fill(
        store, sessions=args.sessions, messages=args.messages, per_other=args.per_other
    )
    filled = time.perf_counter() - began
    others = min(args.messages, (args.sessions - 1) * args.per_other)
    writes = args.sessions + args.messages + others
    print(
        f"filled {args.sessions} sessions, {args.messages} messages in the target session and "
        f"{others} elsewhere: {filled:.1f} s ({filled / writes * 1e6:.0f} us per write)"
    )
    db = await aiosqlite.connect(path)
    try:
        await print_plans(db)
        await bench_store(store, target, args)
        await bench_raw(db, target, args)
    finally:
        await db.close()
        await store.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages in the long session")
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--per-other", type=int, default=3, help="messages per other session")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=200)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(arguments, str(Path(directory) / "bench.db")))
