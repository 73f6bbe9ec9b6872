"""Read and write a whole ``SessionBundle`` on one asyncpg connection, inside the caller's
transaction (``PostgresStore.export_session`` / ``import_session``).

Only the session record names its owner; every row imported with it gets that ``user_id``, as
the SQL functions give a session's rows its owner when the server writes them (RLS reads
``user_id`` on each table)."""

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
    f"insert into public.sessions ({SESSION_COLUMNS}) values ({_marks(8 + len(USAGE_KEYS))}) "
    "on conflict (id) do nothing returning id"
)
# The owner is $1 of each child row, then the row's columns.
INSERT_MESSAGE_SQL = (
    f"insert into public.messages (user_id, {MESSAGE_COLUMNS}) values ({_marks(15)})"
)
INSERT_MODEL_USAGE_SQL = (
    f"insert into public.model_usage (user_id, session_id, model, cost, steps, {TOKENS}) "
    f"values ({_marks(5 + len(USAGE_KEYS))})"
)
INSERT_TODOS_SQL = "insert into public.todos (user_id, session_id, todos) values ($1, $2, $3)"
INSERT_QUESTION_SQL = (
    f"insert into public.questions (user_id, {QUESTION_COLUMNS}) values ({_marks(9)})"
)
INSERT_COMPACTION_SQL = (
    f"insert into public.compactions (user_id, {COMPACTION_COLUMNS}) values ({_marks(13)})"
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
    session, owner = bundle.session, bundle.session.user_id
    inserted = await conn.fetchval(
        INSERT_SESSION_SQL,
        session.id,
        owner,
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
    await conn.executemany(
        INSERT_MESSAGE_SQL, [(owner, *_message_args(m)) for m in bundle.messages]
    )
    if bundle.todos:
        await conn.execute(INSERT_TODOS_SQL, owner, session.id, list(bundle.todos))
    await conn.executemany(
        INSERT_QUESTION_SQL, [(owner, *_question_args(q)) for q in bundle.questions]
    )
    if bundle.compaction is not None:
        await conn.execute(INSERT_COMPACTION_SQL, owner, *compaction_params(bundle.compaction))
    # One by one, in order: the identity column first_use then keeps first-use order.
    for row in bundle.model_usage:
        await conn.execute(
            INSERT_MODEL_USAGE_SQL,
            owner,
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
