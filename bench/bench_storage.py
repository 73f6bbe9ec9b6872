"""Storage through the real server, on SQLite and on PostgreSQL: message pages deep in a long
session, and how many store writes concurrent streaming turns cost.

Run from the repo root: ``python -m bench.bench_storage [--quick]``.

* pages: one session of ``--messages`` messages, filled through the store's bulk path
  (``import_session`` of one ``SessionBundle``: one transaction), then ``GET
  /session/{id}/message?limit=50&offset=N`` at the start, the middle and the end, timed over
  real HTTP against ``python app.py`` (``tests/e2e/server.py``). O(page) means far/near ~ 1.
* writes: ``--turns`` concurrent turns, each streaming ``--chunks`` chunks from the loopback
  fake provider (``tests/fakes/provider.py``) with ``--chunk-delay`` between chunks. The
  store writes are PostgreSQL's own counters for the bench database (``pg_stat_database``
  commits, ``pg_stat_user_tables`` row updates and inserts) before and after; SQLite has no
  such counters, so that row is PostgreSQL only. Batched persistence means writes << chunks.

PostgreSQL is a throwaway database on the local server (``tests/pg.py``), dropped after.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx

from bench.bench_streaming import (
    BenchError,
    chunks_reply,
    new_client,
    new_session,
    percentile,
    server_log_tail,
    server_turn,
)
from opencode.core.ids import new_id, utc_now
from opencode.storage.base import MessageRecord, SessionBundle, SessionRecord
from opencode.storage.factory import create_store
from tests import pg
from tests.conftest import server_env
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider

PAGE = 50
WARMUP = 5
TEXT = "The quick brown fox jumps over the lazy dog. " * 8


@dataclass(frozen=True)
class PageRow:
    store: str
    offset: int
    p50: float  # ms
    p95: float
    worst: float


@dataclass(frozen=True)
class WriteRow:
    store: str
    turns: int
    chunks: int  # streamed, all turns
    wall: float
    commits: int | None  # None: the store has no counter
    updates: int | None
    inserts: int | None


# ---- filling a long session ----


def long_session(messages: int) -> SessionBundle:
    began = utc_now() - timedelta(days=1)
    session_id = new_id("ses")
    rows = tuple(
        MessageRecord(
            id=new_id("msg"),
            session_id=session_id,
            role="user" if index % 2 == 0 else "assistant",
            created_at=began + timedelta(milliseconds=index),
            updated_at=began + timedelta(milliseconds=index),
            status="completed",
            parts=[{"type": "text", "text": TEXT}],
            content=TEXT,
            seq=index + 1,
        )
        for index in range(messages)
    )
    record = SessionRecord(session_id, "long", began, utc_now(), message_count=messages)
    return SessionBundle(record, rows, (), (), None, ())


async def fill(database_url: str, messages: int) -> tuple[str, float]:
    """The long session's id and the seconds its import took."""
    bundle = long_session(messages)
    store = create_store(database_url)
    await store.initialize()
    try:
        began = time.perf_counter()
        if not await store.import_session(bundle):
            raise BenchError("the long session already exists")
        return bundle.session.id, time.perf_counter() - began
    finally:
        await store.close()


# ---- pages over HTTP ----


async def time_pages(
    server: ServerProcess, store: str, session_id: str, messages: int, repeat: int
) -> list[PageRow]:
    rows = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for offset in (0, messages // 2, messages - PAGE):
            url = f"/session/{session_id}/message?limit={PAGE}&offset={offset}"
            samples = []
            for attempt in range(WARMUP + repeat):
                began = time.perf_counter()
                response = await client.get(url)
                elapsed = (time.perf_counter() - began) * 1000
                page = response.json()
                if response.status_code != 200 or len(page["messages"]) != PAGE:
                    raise BenchError(f"GET {url} answered {response.status_code}: {page}")
                if attempt >= WARMUP:
                    samples.append(elapsed)
            rows.append(
                PageRow(
                    store,
                    offset,
                    statistics.median(samples),
                    percentile(samples, 0.95),
                    max(samples),
                )
            )
    return rows


# ---- writes of concurrent turns ----


async def pg_counters(database_url: str) -> tuple[int, int, int]:
    """Commits, row updates and row inserts in this database so far (as the statistics
    collector has them: backends report at most once a second, hence the wait before)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("select pg_stat_clear_snapshot()")
        commits = await conn.fetchval(
            "select xact_commit from pg_stat_database where datname = current_database()"
        )
        updates, inserts = await conn.fetchrow(
            "select coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_ins), 0)::bigint "
            "from pg_stat_user_tables where schemaname = 'public'"
        )
        return commits, updates, inserts
    finally:
        await conn.close()


async def stream_turns(
    server: ServerProcess, fake: FakeProvider, store: str, database_url: str, args
) -> WriteRow:
    async with new_client(args.turns, base_url=server.url) as client:
        sessions = [await new_session(client) for _ in range(args.turns)]
        fake.reset()
        reply = replace(chunks_reply(args.chunks), chunk_delay=args.chunk_delay)
        fake.script(*[reply] * args.turns)
        counted = store == "postgres"
        if counted:
            await asyncio.sleep(1.5)  # let the session inserts reach the statistics
            before = await pg_counters(database_url)
        began = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for session_id in sessions:
                group.create_task(server_turn(client, session_id, args.chunks))
        wall = time.perf_counter() - began
    if not counted:
        return WriteRow(store, args.turns, args.turns * args.chunks, wall, None, None, None)
    await asyncio.sleep(1.5)
    after = await pg_counters(database_url)
    commits, updates, inserts = (b - a for a, b in zip(before, after, strict=True))
    return WriteRow(store, args.turns, args.turns * args.chunks, wall, commits, updates, inserts)


# ---- one store ----


async def bench_store(
    store: str, database_url: str, fake: FakeProvider, workdir: Path, args
) -> tuple[list[PageRow], WriteRow]:
    session_id, seconds = await fill(database_url, args.messages)
    print(f"{store}: imported {args.messages:,} messages in {seconds:.1f} s", flush=True)
    env = server_env(fake, workdir, database_url, OPENCODE_MAX_RETRIES="0")
    try:
        server = ServerProcess(workdir, env).start()
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
    try:
        pages = await time_pages(server, store, session_id, args.messages, args.repeat)
        writes = await stream_turns(server, fake, store, database_url, args)
    except* Exception as group:
        first = group.exceptions[0]
        raise BenchError(
            f"{type(first).__name__}: {first}\nlast server log lines:\n{server_log_tail(server)}"
        ) from None
    finally:
        server.stop()
    return pages, writes


async def run(args, workdir: Path) -> tuple[list[PageRow], list[WriteRow]]:
    pages: list[PageRow] = []
    writes: list[WriteRow] = []
    fake = FakeProvider().start()
    try:
        sqlite_dir = workdir / "sqlite"
        sqlite_dir.mkdir()
        url = f"sqlite:///{sqlite_dir / 'opencode.db'}"
        found = await bench_store("sqlite", url, fake, sqlite_dir, args)
        pages += found[0]
        writes.append(found[1])
        postgres_dir = workdir / "postgres"
        postgres_dir.mkdir()
        url = await pg.create_database()
        try:
            found = await bench_store("postgres", url, fake, postgres_dir, args)
        finally:
            await pg.drop_database(url)
        pages += found[0]
        writes.append(found[1])
    finally:
        fake.stop()
    return pages, writes


# ---- report ----


def print_pages(rows: list[PageRow], repeat: int) -> None:
    print(f"\nGET /session/{{id}}/message?limit={PAGE}&offset=N over HTTP, {repeat} requests each")
    print(f"{'store':<10}{'offset':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for row in rows:
        print(f"{row.store:<10}{row.offset:>8}{row.p50:>9.2f}{row.p95:>9.2f}{row.worst:>9.2f}")
    for store in dict.fromkeys(row.store for row in rows):
        near, *_, far = [row for row in rows if row.store == store]
        print(
            f"{store}: far/near offset p50 {far.p50 / near.p50:.2f}, p95 {far.p95 / near.p95:.2f}"
        )


def print_writes(rows: list[WriteRow], args) -> None:
    print(
        f"\n{args.turns} concurrent turns x {args.chunks} chunks "
        f"(chunk_delay {args.chunk_delay * 1000:g} ms)"
    )
    print(
        f"{'store':<10}{'wall s':>8}{'chunks/s':>10}{'xacts/s':>9}{'upd/s':>7}{'ins/s':>7}"
        f"{'writes/turn':>13}{'chunks/write':>14}"
    )
    for row in rows:
        rate = row.chunks / row.wall
        if row.commits is None:
            print(f"{row.store:<10}{row.wall:>8.2f}{rate:>10.0f}   (no write counters)")
            continue
        written = row.updates + row.inserts
        print(
            f"{row.store:<10}{row.wall:>8.2f}{rate:>10.0f}{row.commits / row.wall:>9.0f}"
            f"{row.updates / row.wall:>7.0f}{row.inserts / row.wall:>7.0f}"
            f"{written / row.turns:>13.1f}{row.chunks / max(written, 1):>14.1f}"
        )
    print(
        "xacts: committed transactions, reads included (each autocommit select is one); "
        "upd/ins: rows updated/inserted\nin public tables (a write_draft is one message update, "
        "plus the session and model_usage rows when it ends a step)."
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (~1 minute)")
    parser.add_argument("--messages", type=int, help="messages in the long session (100000)")
    parser.add_argument("--repeat", type=int, help="timed requests per page (200)")
    parser.add_argument("--turns", type=int, help="concurrent streaming turns (200)")
    parser.add_argument("--chunks", type=int, help="chunks per turn (400)")
    parser.add_argument("--chunk-delay", type=float, default=0.005, help="seconds (0.005)")
    args = parser.parse_args()
    defaults = (10_000, 50, 50, 100) if args.quick else (100_000, 200, 200, 400)
    for name, default in zip(("messages", "repeat", "turns", "chunks"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.messages < 2 * PAGE or min(args.repeat, args.turns, args.chunks) < 1:
        parser.error(f"--messages must be at least {2 * PAGE}; the others at least 1")
    return args


def main() -> int:
    args = parse_args()
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; PostgreSQL at "
        f"{pg.server_address()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as directory:
        try:
            pages, writes = asyncio.run(run(args, Path(directory)))
        except BenchError as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 1
    print_pages(pages, args.repeat)
    print_writes(writes, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
