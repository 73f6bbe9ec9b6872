"""Read and write a whole ``SessionBundle`` on an open SQLite connection, inside the caller's
transaction (``SqliteStore.export_session`` / ``import_session``)."""

import json

import aiosqlite

from .base import USAGE_KEYS, ModelUsageRecord, SessionBundle
from .sqlite_rows import (
    COMPACTION_COLUMNS,
    MESSAGE_COLUMNS,
    QUESTION_COLUMNS,
    SESSION_COLUMNS,
    TOKENS,
    compaction_from_row,
    compaction_params,
    message_from_row,
    message_params,
    question_from_row,
    session_from_row,
    to_json,
    to_timestamp,
    usage_from_row,
)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


INSERT_SESSION_SQL = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ({_marks(8 + len(USAGE_KEYS))}) "
    "ON CONFLICT (id) DO NOTHING"
)
INSERT_MESSAGE_SQL = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({_marks(14)})"
INSERT_MODEL_USAGE_SQL = (
    f"INSERT INTO model_usage (session_id, model, cost, steps, {TOKENS}) "
    f"VALUES ({_marks(4 + len(USAGE_KEYS))})"
)
INSERT_QUESTION_SQL = f"INSERT INTO questions ({QUESTION_COLUMNS}) VALUES ({_marks(8)})"
INSERT_COMPACTION_SQL = f"INSERT INTO compactions ({COMPACTION_COLUMNS}) VALUES ({_marks(12)})"


async def read_bundle(db: aiosqlite.Connection, session_id: str) -> SessionBundle | None:
    sessions = list(
        await db.execute_fetchall(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        )
    )
    if not sessions:
        return None
    by_session = (session_id,)
    messages = await db.execute_fetchall(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? ORDER BY seq", by_session
    )
    todos = list(
        await db.execute_fetchall("SELECT todos FROM todos WHERE session_id = ?", by_session)
    )
    questions = await db.execute_fetchall(
        f"SELECT {QUESTION_COLUMNS} FROM questions WHERE session_id = ? ORDER BY created_at, id",
        by_session,
    )
    compactions = list(
        await db.execute_fetchall(
            f"SELECT {COMPACTION_COLUMNS} FROM compactions WHERE session_id = ?", by_session
        )
    )
    usage = await db.execute_fetchall(
        f"SELECT model, cost, steps, {TOKENS} FROM model_usage WHERE session_id = ? ORDER BY rowid",
        by_session,
    )
    return SessionBundle(
        session=session_from_row(sessions[0]),
        messages=tuple(message_from_row(row) for row in messages),
        todos=tuple(json.loads(todos[0][0])) if todos else (),
        questions=tuple(question_from_row(row) for row in questions),
        compaction=compaction_from_row(compactions[0]) if compactions else None,
        model_usage=tuple(
            ModelUsageRecord(row["model"], row["cost"], row["steps"], usage_from_row(row))
            for row in usage
        ),
    )


async def write_bundle(db: aiosqlite.Connection, bundle: SessionBundle) -> bool:
    """Insert everything in ``bundle``; False (and nothing written) if the session exists."""
    session = bundle.session
    inserted = await db.execute(
        INSERT_SESSION_SQL,
        (
            session.id,
            session.user_id,
            session.title,
            session.model,
            to_timestamp(session.created_at),
            to_timestamp(session.updated_at),
            session.message_count,
            session.total_cost,
            *(session.usage.get(key, 0) for key in USAGE_KEYS),
        ),
    )
    if inserted.rowcount == 0:
        return False
    await db.executemany(INSERT_MESSAGE_SQL, [message_params(m) for m in bundle.messages])
    if bundle.todos:
        await db.execute(
            "INSERT INTO todos (session_id, todos) VALUES (?, ?)",
            (session.id, to_json(list(bundle.todos))),
        )
    await db.executemany(
        INSERT_QUESTION_SQL,
        [
            (
                q.id,
                q.session_id,
                q.message_id,
                q.call_id,
                to_json(q.questions),
                None if q.answers is None else to_json(q.answers),
                q.status,
                to_timestamp(q.created_at),
            )
            for q in bundle.questions
        ],
    )
    if bundle.compaction is not None:
        await db.execute(INSERT_COMPACTION_SQL, compaction_params(bundle.compaction))
    # Inserted in order, so rowid order (model_usage()'s order) is first-use order again.
    for row in bundle.model_usage:
        await db.execute(
            INSERT_MODEL_USAGE_SQL,
            (
                session.id,
                row.model,
                row.cost,
                row.steps,
                *(row.usage.get(key, 0) for key in USAGE_KEYS),
            ),
        )
    return True
