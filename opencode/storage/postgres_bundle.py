"""Read and write a whole ``SessionBundle`` on one asyncpg connection, inside the caller's
transaction (``PostgresStore.export_session`` / ``import_session``).

Imported rows get ``user_id`` null, as rows the server writes do (records carry no owner)."""

import asyncpg

from .base import USAGE_KEYS, MessageRecord, QuestionRecord, SessionBundle
from .postgres_rows import (
    COMPACTION_COLUMNS,
    MESSAGE_COLUMNS,
    QUESTION_COLUMNS,
    SESSION_COLUMNS,
    TOKENS,
    aware,
    compaction_from_row,
    compaction_params,
    message_from_row,
    model_usage_from_row,
    question_from_row,
    session_from_row,
)


def _marks(count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1))


INSERT_SESSION_SQL = (
    f"insert into public.sessions ({SESSION_COLUMNS}) values ({_marks(7 + len(USAGE_KEYS))}) "
    "on conflict (id) do nothing returning id"
)
INSERT_MESSAGE_SQL = f"insert into public.messages ({MESSAGE_COLUMNS}) values ({_marks(14)})"
INSERT_MODEL_USAGE_SQL = (
    f"insert into public.model_usage (session_id, model, cost, steps, {TOKENS}) "
    f"values ({_marks(4 + len(USAGE_KEYS))})"
)
INSERT_QUESTION_SQL = f"insert into public.questions ({QUESTION_COLUMNS}) values ({_marks(8)})"
INSERT_COMPACTION_SQL = (
    f"insert into public.compactions ({COMPACTION_COLUMNS}) values ({_marks(12)})"
)


async def read_bundle(conn: asyncpg.Connection, session_id: str) -> SessionBundle | None:
    session = await conn.fetchrow(
        f"select {SESSION_COLUMNS} from public.sessions where id = $1", session_id
    )
    if session is None:
        return None
    messages = await conn.fetch(
        f"select {MESSAGE_COLUMNS} from public.messages where session_id = $1 order by seq",
        session_id,
    )
    todos = await conn.fetchval("select todos from public.todos where session_id = $1", session_id)
    questions = await conn.fetch(
        f"select {QUESTION_COLUMNS} from public.questions where session_id = $1 "
        "order by created_at, id",
        session_id,
    )
    compaction = await conn.fetchrow(
        f"select {COMPACTION_COLUMNS} from public.compactions where session_id = $1", session_id
    )
    usage = await conn.fetch(
        f"select model, cost, steps, {TOKENS} from public.model_usage "
        "where session_id = $1 order by first_use",
        session_id,
    )
    return SessionBundle(
        session=session_from_row(session),
        messages=tuple(message_from_row(row) for row in messages),
        todos=tuple(todos or ()),
        questions=tuple(question_from_row(row) for row in questions),
        compaction=None if compaction is None else compaction_from_row(compaction),
        model_usage=tuple(model_usage_from_row(row) for row in usage),
    )


async def write_bundle(conn: asyncpg.Connection, bundle: SessionBundle) -> bool:
    """Insert everything in ``bundle``; False (and nothing written) if the session exists."""
    session = bundle.session
    inserted = await conn.fetchval(
        INSERT_SESSION_SQL,
        session.id,
        session.title,
        session.model,
        aware(session.created_at),
        aware(session.updated_at),
        session.message_count,
        session.total_cost,
        *(session.usage.get(key, 0) for key in USAGE_KEYS),
    )
    if inserted is None:
        return False
    await conn.executemany(INSERT_MESSAGE_SQL, [_message_args(m) for m in bundle.messages])
    if bundle.todos:
        await conn.execute(
            "insert into public.todos (session_id, todos) values ($1, $2)",
            session.id,
            list(bundle.todos),
        )
    await conn.executemany(INSERT_QUESTION_SQL, [_question_args(q) for q in bundle.questions])
    if bundle.compaction is not None:
        await conn.execute(INSERT_COMPACTION_SQL, *compaction_params(bundle.compaction))
    # One by one, in order: the identity column first_use then keeps first-use order.
    for row in bundle.model_usage:
        await conn.execute(
            INSERT_MODEL_USAGE_SQL,
            session.id,
            row.model,
            row.cost,
            row.steps,
            *(row.usage.get(key, 0) for key in USAGE_KEYS),
        )
    return True


def _message_args(message: MessageRecord) -> tuple:
    return (
        message.id,
        message.session_id,
        message.seq,
        message.role,
        message.status,
        message.parent_id,
        message.model,
        message.content,
        message.parts,
        message.usage,
        message.cost,
        message.error,
        aware(message.created_at),
        aware(message.updated_at),
    )


def _question_args(question: QuestionRecord) -> tuple:
    return (
        question.id,
        question.session_id,
        question.message_id,
        question.call_id,
        question.questions,
        question.answers,
        question.status,
        aware(question.created_at),
    )
