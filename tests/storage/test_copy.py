"""``export_session`` / ``import_session`` on SQLite and PostgreSQL, and the copy command
``python -m opencode.storage.copy`` that moves whole stores with them."""

import io
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from opencode.core.users import LOCAL_USER_ID
from opencode.storage.base import (
    CompactionRecord,
    MessageRecord,
    PartsPatch,
    QuestionRecord,
    SessionBundle,
    SessionRecord,
    StepUsage,
    Store,
)
from opencode.storage.copy import CopyTally, Progress, copy_sessions
from opencode.storage.factory import create_store
from opencode.storage.postgres import PostgresStore
from tests import pg

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ALICE = "6f1c2b9e-4d7a-4e0b-9a53-0c1d2e3f4a5b"
BOB = "b8e2d4f6-1a3c-4b5d-8e7f-9a0b1c2d3e4f"
CHILD_TABLES = ("messages", "model_usage", "todos", "questions", "compactions")


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Store]]]:
    """``await make_store("sqlite" | "postgres")``: a fresh, open, empty store."""
    opened: list[Store] = []
    databases: list[str] = []

    async def make(kind: str) -> Store:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / f'store{len(opened)}.db'}"
        else:
            url = await pg.create_database()
            databases.append(url)
        store = create_store(url)
        await store.initialize()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    for url in databases:
        await pg.drop_database(url)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def fill_session(
    store: Store, session_id: str, messages: int = 6, owner: str | None = ALICE
) -> None:
    """A session of ``owner`` with something in every table: messages written as the server
    writes them (drafts with step usage), two models, todos, a question of every status, a
    compaction."""
    await store.create_session(
        SessionRecord(
            session_id, f"title {session_id}", at(0), at(1), model="openai/gpt-4o", user_id=owner
        )
    )
    for index in range(messages):
        role = "user" if index % 2 == 0 else "assistant"
        message = MessageRecord(
            id=f"{session_id}-msg{index}",
            session_id=session_id,
            role=role,
            created_at=at(10 + index),
            updated_at=at(10.5 + index),
            status="running" if role == "assistant" else "completed",
            parts=[{"type": "text", "text": f"héllo {index} 🦊"}],
            content=f"héllo {index} 🦊",
        )
        await store.add_message(message)
        if role == "assistant":
            model = "openai/gpt-4o" if index % 4 == 1 else "anthropic/claude"
            step = StepUsage(model, {"input_tokens": 10 + index, "output_tokens": 3}, 0.1 + index)
            await store.write_draft(
                session_id,
                message.id,
                PartsPatch(keep=1, append_text=" more", tail=({"type": "tool", "n": index},)),
                usage=step.usage,
                cost=step.cost,
                status="completed",
                step=step,
            )
    await store.record_step_usage(
        session_id, model="openai/gpt-4o", usage={"reasoning_tokens": 7}, cost=1e-7
    )
    await store.set_todos(session_id, [{"content": "copy it", "status": "in_progress"}])
    for index, status in enumerate(("answered", "rejected", "expired", "pending")):
        question = QuestionRecord(
            id=f"{session_id}-q{index}",
            session_id=session_id,
            message_id=f"{session_id}-msg1",
            call_id=f"call{index}",
            questions=[{"question": "which?", "options": ["a", "b"]}],
            created_at=at(20 + index),
        )
        await store.add_question(question)
        if status == "expired":
            continue  # expired below, by the crash-recovery sweep, with the pending one
        if status != "pending":
            answers = [["a"]] if status == "answered" else None
            await store.resolve_question(question.id, status=status, answers=answers)
    await store.save_compaction(
        CompactionRecord(
            session_id,
            "completed",
            "tokens",
            at(30),
            finished_at=at(31),
            messages_folded=3,
            tokens_before=900,
            tokens_after=100,
            summary_message_id=f"{session_id}-msg3",
            folded_through_seq=3,
            compactions=2,
        )
    )


def check_bundle(bundle: SessionBundle, messages: int = 6) -> None:
    """The bundle holds what ``fill_session`` wrote (so a round trip compares full bundles)."""
    assert bundle.session.message_count == messages
    assert [m.seq for m in bundle.messages] == list(range(1, messages + 1))
    assert bundle.session.total_cost > 0 and bundle.session.usage["reasoning_tokens"] == 7
    assert [q.status for q in bundle.questions] == ["answered", "rejected", "pending", "pending"]
    assert [u.model for u in bundle.model_usage] == ["openai/gpt-4o", "anthropic/claude"]
    assert bundle.todos and bundle.compaction is not None


PAIRS = [("sqlite", "sqlite"), ("sqlite", "postgres"), ("postgres", "sqlite")]


@pytest.mark.parametrize(("source_kind", "destination_kind"), PAIRS)
async def test_bundles_round_trip_exactly(
    make_store: Callable[[str], Awaitable[Store]], source_kind: str, destination_kind: str
) -> None:
    source = await make_store(source_kind)
    destination = await make_store(destination_kind)
    await fill_session(source, "ses_a")
    await fill_session(source, "ses_b", messages=3, owner=BOB)
    await source.create_session(SessionRecord("ses_empty", "nothing yet", at(0), at(0)))  # no owner

    bundle = await source.export_session("ses_a")
    assert bundle is not None
    check_bundle(bundle)
    assert await destination.import_session(bundle) is True
    assert await destination.export_session("ses_a") == bundle
    # what the server reads through the rest of the protocol agrees, too
    assert await destination.get_session("ses_a") == bundle.session
    page, total = await destination.list_messages("ses_a", limit=2, offset=4, order="asc")
    assert (page, total) == (list(bundle.messages[4:6]), 6)
    assert await destination.model_usage("ses_a") == list(bundle.model_usage)
    assert await destination.get_question("ses_a-q1") == bundle.questions[1]

    tally = await copy_sessions(source, destination)
    assert (tally.total, tally.copied, tally.skipped, tally.differ) == (3, 2, 1, 0)
    assert tally.messages == 3
    for session_id in ("ses_b", "ses_empty"):
        assert await destination.export_session(session_id) == await source.export_session(
            session_id
        )
    # the copy goes on where the source left off: the next message gets the next seq
    added = await destination.add_message(replace(bundle.messages[0], id="ses_a-next"))
    assert added.seq == 7


async def test_owners_survive_a_copy_to_postgres_and_back(
    make_store: Callable[[str], Awaitable[Store]],
) -> None:
    first, middle, last = [await make_store(kind) for kind in ("sqlite", "postgres", "sqlite")]
    owners = {"ses_alice": ALICE, "ses_bob": BOB, "ses_local": LOCAL_USER_ID}
    for session_id, owner in owners.items():
        await fill_session(first, session_id, messages=2, owner=owner)
    for source, destination in ((first, middle), (middle, last)):
        assert (await copy_sessions(source, destination)).copied == 3
    for session_id, owner in owners.items():
        bundle = await last.export_session(session_id)
        assert bundle == await first.export_session(session_id)
        assert bundle.session.user_id == owner
    assert isinstance(middle, PostgresStore)
    assert await rows_not_owned_like_their_session(middle) == {}
    page, total = await last.list_sessions(limit=10, offset=0, user_id=BOB)
    assert [s.id for s in page] == ["ses_bob"] and total == 1
    assert {q.session_id for q in await middle.list_questions(user_id=ALICE)} == {"ses_alice"}


async def rows_not_owned_like_their_session(store: PostgresStore) -> dict[str, int]:
    """Per table, the rows (of how many) whose ``user_id`` is not their session's: RLS reads
    each table's own ``user_id``, so an import must give every row its session's owner."""
    wrong = {}
    for table in CHILD_TABLES:
        bad, rows = await store.pool.fetchrow(
            f"select count(*) filter (where t.user_id is distinct from s.user_id), count(*) "
            f"from public.{table} t join public.sessions s on s.id = t.session_id"
        )
        assert rows > 0, table
        if bad:
            wrong[table] = bad
    return wrong


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_import_of_an_existing_session_writes_nothing(
    make_store: Callable[[str], Awaitable[Store]], kind: str
) -> None:
    store = await make_store(kind)
    await fill_session(store, "ses_a")
    bundle = await store.export_session("ses_a")
    assert bundle is not None
    changed = replace(bundle, session=replace(bundle.session, title="other"), messages=())
    assert await store.import_session(changed) is False
    assert await store.export_session("ses_a") == bundle
    assert await store.export_session("ses_missing") is None


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_failed_import_leaves_no_half_session(
    make_store: Callable[[str], Awaitable[Store]], kind: str
) -> None:
    source = await make_store("sqlite")
    store = await make_store(kind)
    await fill_session(source, "ses_a")
    bundle = await source.export_session("ses_a")
    assert bundle is not None
    # the last message repeats the first one's id: the insert fails after most rows went in
    broken = replace(bundle, messages=(*bundle.messages, bundle.messages[0]))
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await store.import_session(broken)
    assert await store.get_session("ses_a") is None
    assert await store.list_messages("ses_a", limit=None, offset=0, order="asc") == ([], 0)
    assert await store.import_session(bundle) is True  # and the store is still usable


async def test_copy_reports_sessions_that_differ(
    make_store: Callable[[str], Awaitable[Store]],
) -> None:
    source = await make_store("sqlite")
    destination = await make_store("sqlite")
    await fill_session(source, "ses_a")
    assert (await copy_sessions(source, destination)).copied == 1
    await source.update_session("ses_a", title="renamed after the copy")
    tally = await copy_sessions(source, destination)
    assert (tally.copied, tally.skipped, tally.differ) == (0, 1, 1)
    assert "1 of them differ from the source" in tally.summary()


# the command


def run_copy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opencode.storage.copy", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_command_copies_then_copies_nothing_new(
    make_store: Callable[[str], Awaitable[Store]], tmp_path: Path
) -> None:
    source = await make_store("sqlite")  # store0.db
    for index in range(3):
        await fill_session(source, f"ses_{index}")
    await source.close()
    destination_url = await pg.create_database()
    try:
        source_url = f"sqlite:///{tmp_path / 'store0.db'}"
        first = run_copy(source_url, destination_url)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == (
            "done: 3 sessions in the source; copied 3 (18 messages), "
            "skipped 0 already in the destination"
        )
        assert "copied 3/3 sessions, 18 messages" in first.stderr.splitlines()[-1]
        second = run_copy(source_url, destination_url)
        assert second.returncode == 0, second.stderr
        assert "copied 0 (0 messages), skipped 3 already" in second.stdout
        assert "differ" not in second.stdout
        copied = create_store(destination_url)
        await copied.initialize()
        try:
            sessions, total = await copied.list_sessions(limit=10, offset=0)
            assert total == 3
            check_bundle(await copied.export_session("ses_1"))
        finally:
            await copied.close()
    finally:
        await pg.drop_database(destination_url)


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        (
            "postgresql://copier:s3cret-pw@127.0.0.1:1/target",
            "error: cannot open the destination postgresql://copier:***@127.0.0.1:1/target: ",
        ),
        ("mysql://copier:s3cret-pw@db/target", "error: cannot open the destination mysql://"),
    ],
)
def test_a_failing_destination_is_one_line_and_status_1(
    tmp_path: Path, destination: str, expected: str
) -> None:
    result = run_copy(f"sqlite:///{tmp_path / 'source.db'}", destination)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr


async def test_a_destination_that_fails_mid_copy_is_one_line(
    make_store: Callable[[str], Awaitable[Store]], tmp_path: Path
) -> None:
    """The destination opens, then refuses a write halfway through a session (a trigger
    stands in for a full disk): status 1, one line, and no half session left behind."""
    source, destination = await make_store("sqlite"), await make_store("sqlite")
    await fill_session(source, "ses_a")
    await fill_session(source, "ses_b")
    await copy_sessions(source, destination)
    await fill_session(source, "ses_c")
    for store in (source, destination):
        await store.close()
    async with aiosqlite.connect(tmp_path / "store1.db") as db:
        await db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.seq = 4 "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        await db.commit()
    result = run_copy(f"sqlite:///{tmp_path / 'store0.db'}", f"sqlite:///{tmp_path / 'store1.db'}")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "error: copy failed: IntegrityError: database or disk is full"
    assert "Traceback" not in result.stderr and result.stdout == ""
    async with aiosqlite.connect(tmp_path / "store1.db") as db:
        rows = await db.execute_fetchall("SELECT COUNT(*) FROM messages WHERE session_id = 'ses_c'")
        sessions = await db.execute_fetchall("SELECT id FROM sessions ORDER BY id")
    assert list(rows) == [(0,)]
    assert [row[0] for row in sessions] == ["ses_a", "ses_b"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_updated_in_place_on_a_terminal_and_plain_otherwise() -> None:
    tally = CopyTally(total=2)
    terminal, log = Terminal(), io.StringIO()
    on_terminal, in_log = Progress(terminal), Progress(log)
    for copied, messages in ((0, 0), (1, 40), (2, 48210)):
        tally.copied, tally.messages = copied, messages
        on_terminal(tally)
        in_log(tally)
    on_terminal.finish()
    in_log.finish()
    assert terminal.getvalue().count("\r") == 3 and terminal.getvalue().endswith("\n")
    assert "\rcopied 2/2 sessions, 48,210 messages" in terminal.getvalue()
    # plain: the first line, then (the updates coming faster than PLAIN_EVERY) the last one
    assert log.getvalue().splitlines() == [
        "copied 0/2 sessions, 0 messages (0 already there)",
        "copied 2/2 sessions, 48,210 messages (0 already there)",
    ]
