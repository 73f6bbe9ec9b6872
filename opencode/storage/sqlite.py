"""``Store`` on SQLite through aiosqlite: one connection, WAL, explicit transactions.

aiosqlite runs every statement on the connection's own thread, so nothing here blocks the
event loop. An ``asyncio.Lock`` keeps one coroutine's BEGIN ... COMMIT from interleaving with
another's statements on the shared connection.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from opencode.core.ids import utc_now

from .base import (
    USAGE_KEYS,
    CompactionRecord,
    DraftWrite,
    MessageRecord,
    MessageStatus,
    ModelUsageRecord,
    Order,
    PartsPatch,
    QuestionRecord,
    QuestionStatus,
    SessionBundle,
    SessionRecord,
    StepUsage,
    empty_usage,
    given,
)
from .migrations import migrate_sqlite
from .sqlite_bundle import read_bundle, write_bundle
from .sqlite_quota import SqliteQuota
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

BUSY_TIMEOUT_MS = 5000
_JSON_ARGS = 100  # per JSON function call, under SQLite's limit of 127

# A page is the seq range (low, high] of one session: O(page) on the (session_id, seq) index.
MESSAGE_PAGE_SQL: dict[Order, str] = {
    order: f"SELECT {MESSAGE_COLUMNS} FROM messages "
    f"WHERE session_id = ? AND seq > ? AND seq <= ? ORDER BY seq {order.upper()}"
    for order in ("asc", "desc")
}
SESSION_PAGE_SQL = (
    f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?"
)
# One owner's page: a range of the sessions_by_user_recency index.
OWNER_SESSION_PAGE_SQL = (
    f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? "
    "ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?"
)
# SQLite adds REAL as IEEE doubles, so ``total_cost + ?`` is exactly ``total += cost``.
ADD_SESSION_USAGE_SQL = (
    "UPDATE sessions SET total_cost = total_cost + ?, "
    + ", ".join(f"{key} = {key} + ?" for key in USAGE_KEYS)
    + " WHERE id = ?"
)
ADD_MODEL_USAGE_SQL = (
    f"INSERT INTO model_usage (session_id, model, cost, steps, {TOKENS}) "
    f"VALUES (?, ?, ?, 1, {', '.join('?' for _ in USAGE_KEYS)}) "
    "ON CONFLICT (session_id, model) DO UPDATE SET cost = cost + excluded.cost, steps = steps + 1, "
    + ", ".join(f"{key} = {key} + excluded.{key}" for key in USAGE_KEYS)
)


class SqliteStore(SqliteQuota):
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def initialize(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            await asyncio.to_thread(Path(self.path).parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await migrate_sqlite(db)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            async with self._lock:
                await db.close()

    async def ping(self) -> bool:
        try:
            await self._read("SELECT 1")
        except Exception:
            return False
        return True

    # sessions
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        stored = replace(session, message_count=0, total_cost=0.0, usage=empty_usage())
        await self._write(
            "INSERT INTO sessions (id, user_id, title, model, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                stored.id,
                stored.user_id,
                stored.title,
                stored.model,
                to_timestamp(stored.created_at),
                to_timestamp(stored.updated_at),
            ),
        )
        return stored

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._read(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        )
        return session_from_row(rows[0]) if rows else None

    async def list_sessions(
        self, *, limit: int, offset: int, user_id: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        _check_window(limit, offset)
        async with self._connection() as db:
            if user_id is None:
                rows = await db.execute_fetchall(SESSION_PAGE_SQL, (limit, offset))
                count = await db.execute_fetchall("SELECT COUNT(*) FROM sessions")
            else:
                rows = await db.execute_fetchall(OWNER_SESSION_PAGE_SQL, (user_id, limit, offset))
                count = await db.execute_fetchall(
                    "SELECT COUNT(*) FROM sessions WHERE user_id = ?", (user_id,)
                )
        return [session_from_row(row) for row in rows], list(count)[0][0]

    async def update_session(
        self, session_id: str, *, title: str | None = None, model: str | None = None
    ) -> SessionRecord | None:
        changes = given(title=title, model=model) | {"updated_at": to_timestamp(utc_now())}
        rows = await self._update("sessions", SESSION_COLUMNS, session_id, changes)
        return session_from_row(rows[0]) if rows else None

    async def delete_session(self, session_id: str) -> bool:
        # One statement, so one transaction: ON DELETE CASCADE removes the dependent rows.
        return await self._write("DELETE FROM sessions WHERE id = ?", (session_id,)) > 0

    # messages
    async def add_message(self, message: MessageRecord) -> MessageRecord:
        async with self._transaction() as db:
            counted = list(
                await db.execute_fetchall(
                    "UPDATE sessions SET message_count = message_count + 1, updated_at = ? "
                    "WHERE id = ? RETURNING message_count",
                    (to_timestamp(utc_now()), message.session_id),
                )
            )
            if not counted:
                raise KeyError(message.session_id)
            stored = replace(message, seq=counted[0][0])
            await db.execute(
                f"INSERT INTO messages ({MESSAGE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                message_params(stored),
            )
        return stored

    async def update_message(
        self,
        message_id: str,
        *,
        status: MessageStatus | None = None,
        parts: list[dict[str, Any]] | None = None,
        content: str | None = None,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        cost: float | None = None,
        error: str | None = None,
    ) -> MessageRecord | None:
        changes = given(
            status=status,
            parts=None if parts is None else to_json(parts),
            content=content,
            model=model,
            usage=None if usage is None else to_json(usage),
            cost=cost,
            error=error,
        ) | {"updated_at": to_timestamp(utc_now())}
        rows = await self._update("messages", MESSAGE_COLUMNS, message_id, changes)
        return message_from_row(rows[0]) if rows else None

    async def write_draft(
        self,
        session_id: str,
        message_id: str,
        patch: PartsPatch,
        *,
        usage: dict[str, int],
        cost: float,
        status: MessageStatus | None = None,
        error: str | None = None,
        step: StepUsage | None = None,
    ) -> bool:
        write = DraftWrite(session_id, message_id, patch, usage, cost, status, error, step)
        return (await self.write_drafts([write]))[0]

    async def write_drafts(self, writes: Sequence[DraftWrite]) -> list[bool]:
        stored: list[bool] = []
        async with self._transaction() as db:
            for write in writes:
                sql, values = _draft_update(write)
                found = (await db.execute(sql, values)).rowcount > 0
                if found and write.step is not None:
                    await self._add_step_usage(db, write.session_id, write.step)
                stored.append(found)
        return stored

    async def get_message(self, message_id: str) -> MessageRecord | None:
        rows = await self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        )
        return message_from_row(rows[0]) if rows else None

    async def list_messages(
        self, session_id: str, *, limit: int | None, offset: int, order: Order
    ) -> tuple[list[MessageRecord], int]:
        _check_window(limit, offset)
        async with self._connection() as db:
            counted = list(
                await db.execute_fetchall(
                    "SELECT message_count FROM sessions WHERE id = ?", (session_id,)
                )
            )
            if not counted:
                return [], 0
            total = counted[0][0]
            low, high = seq_window(total, limit=limit, offset=offset, order=order)
            if high <= low:
                return [], total
            rows = await db.execute_fetchall(MESSAGE_PAGE_SQL[order], (session_id, low, high))
        return [message_from_row(row) for row in rows], total

    # usage and cost
    async def record_step_usage(
        self, session_id: str, *, model: str, usage: dict[str, int], cost: float
    ) -> None:
        async with self._transaction() as db:
            await self._add_step_usage(db, session_id, StepUsage(model, usage, cost))

    @staticmethod
    async def _add_step_usage(db: aiosqlite.Connection, session_id: str, step: StepUsage) -> None:
        tokens = [step.usage.get(key, 0) for key in USAGE_KEYS]
        updated = await db.execute(ADD_SESSION_USAGE_SQL, (step.cost, *tokens, session_id))
        if updated.rowcount == 0:
            raise KeyError(session_id)
        await db.execute(ADD_MODEL_USAGE_SQL, (session_id, step.model, step.cost, *tokens))

    async def model_usage(self, session_id: str) -> list[ModelUsageRecord]:
        rows = await self._read(
            f"SELECT model, cost, steps, {TOKENS} FROM model_usage "
            "WHERE session_id = ? ORDER BY rowid",
            (session_id,),
        )
        return [
            ModelUsageRecord(
                model=row["model"], cost=row["cost"], steps=row["steps"], usage=usage_from_row(row)
            )
            for row in rows
        ]

    # todos
    async def get_todos(self, session_id: str) -> list[dict[str, Any]]:
        rows = await self._read("SELECT todos FROM todos WHERE session_id = ?", (session_id,))
        return json.loads(rows[0][0]) if rows else []

    async def set_todos(self, session_id: str, todos: list[dict[str, Any]]) -> None:
        written = await self._write(
            "INSERT INTO todos (session_id, todos) SELECT id, ? FROM sessions WHERE id = ? "
            "ON CONFLICT (session_id) DO UPDATE SET todos = excluded.todos",
            (to_json(todos), session_id),
        )
        if written == 0:
            raise KeyError(session_id)

    # questions
    async def add_question(self, question: QuestionRecord) -> None:
        written = await self._write(
            f"INSERT INTO questions ({QUESTION_COLUMNS}) "
            "SELECT ?, id, ?, ?, ?, ?, ?, ? FROM sessions WHERE id = ?",
            (
                question.id,
                question.message_id,
                question.call_id,
                to_json(question.questions),
                None if question.answers is None else to_json(question.answers),
                question.status,
                to_timestamp(question.created_at),
                question.session_id,
            ),
        )
        if written == 0:
            raise KeyError(question.session_id)

    async def get_question(self, question_id: str) -> QuestionRecord | None:
        rows = await self._read(
            f"SELECT {QUESTION_COLUMNS} FROM questions WHERE id = ?", (question_id,)
        )
        return question_from_row(rows[0]) if rows else None

    async def list_questions(
        self, *, session_id: str | None = None, user_id: str | None = None
    ) -> list[QuestionRecord]:
        rows = await self._read(*pending_questions_sql(session_id, user_id))
        return [question_from_row(row) for row in rows]

    async def resolve_question(
        self,
        question_id: str,
        *,
        status: QuestionStatus,
        answers: list[list[str]] | None = None,
    ) -> bool:
        if status == "pending":
            raise ValueError("resolve_question needs a final status, not 'pending'")
        written = await self._write(
            "UPDATE questions SET status = ?, answers = ? WHERE id = ? AND status = 'pending'",
            (status, None if answers is None else to_json(answers), question_id),
        )
        return written == 1

    # compaction
    async def get_compaction(self, session_id: str) -> CompactionRecord | None:
        rows = await self._read(
            f"SELECT {COMPACTION_COLUMNS} FROM compactions WHERE session_id = ?", (session_id,)
        )
        return compaction_from_row(rows[0]) if rows else None

    async def save_compaction(self, record: CompactionRecord) -> None:
        written = await self._write(
            f"INSERT OR REPLACE INTO compactions ({COMPACTION_COLUMNS}) "
            "SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM sessions WHERE id = ?",
            (*compaction_params(record)[1:], record.session_id),
        )
        if written == 0:
            raise KeyError(record.session_id)

    # recovery after a crash
    async def fail_running_messages(self, error: str) -> list[MessageRecord]:
        rows = await self._read(
            "UPDATE messages SET status = 'error', error = ?, updated_at = ? "
            f"WHERE status = 'running' RETURNING {MESSAGE_COLUMNS}",
            (error, to_timestamp(utc_now())),
        )
        failed = [message_from_row(row) for row in rows]
        return sorted(failed, key=lambda message: (message.session_id, message.seq))

    async def expire_pending_questions(self) -> int:
        return await self._write("UPDATE questions SET status = 'expired' WHERE status = 'pending'")

    async def fail_running_compactions(self, error: str) -> int:
        return await self._write(
            "UPDATE compactions SET status = 'failed', error = ?, finished_at = ? "
            "WHERE status = 'running'",
            (error, to_timestamp(utc_now())),
        )

    # moving sessions between stores
    async def export_session(self, session_id: str) -> SessionBundle | None:
        # A read transaction: one snapshot even if another process writes meanwhile.
        async with self._connection() as db:
            await db.execute("BEGIN")
            try:
                return await read_bundle(db, session_id)
            finally:
                await db.rollback()

    async def import_session(self, bundle: SessionBundle) -> bool:
        async with self._transaction() as db:
            return await write_bundle(db, bundle)

    # plumbing
    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open: await initialize() first")
        async with self._lock:
            yield self._db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so a second process waits on the
        busy timeout instead of failing to upgrade a read transaction."""
        async with self._connection() as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                await db.commit()
            except BaseException:
                await db.rollback()
                raise

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._connection() as db:
            return list(await db.execute_fetchall(sql, tuple(params)))

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement (atomic on its own) and return how many rows it changed."""
        async with self._connection() as db:
            cursor = await db.execute(sql, tuple(params))
            return cursor.rowcount

    async def _update(
        self, table: str, columns: str, key: str, changes: dict[str, Any]
    ) -> list[aiosqlite.Row]:
        # Column names come from keyword parameters above, never from callers' data.
        assignments = ", ".join(f"{column} = ?" for column in changes)
        return await self._read(
            f"UPDATE {table} SET {assignments} WHERE id = ? RETURNING {columns}",
            (*changes.values(), key),
        )


def pending_questions_sql(
    session_id: str | None, user_id: str | None
) -> tuple[str, tuple[str, ...]]:
    """``list_questions``' query and its parameters. Pending questions are few (each waits on
    a live turn), so an owner's are found by walking the questions_pending index and looking
    each one's session up by key; with a join the planner may start from the owner's sessions
    instead, which grow without bound, and then sort."""
    where, params = "status = 'pending'", ()
    if session_id is not None:
        where, params = f"{where} AND session_id = ?", (*params, session_id)
    if user_id is not None:
        owned = "SELECT 1 FROM sessions s WHERE s.id = questions.session_id AND s.user_id = ?"
        where, params = f"{where} AND EXISTS ({owned})", (*params, user_id)
    return (
        f"SELECT {QUESTION_COLUMNS} FROM questions WHERE {where} ORDER BY created_at, id",
        params,
    )


def parts_patch_sql(patch: PartsPatch) -> tuple[str, list[Any]]:
    """The SQL expression for ``messages.parts`` after ``patch`` (as ``apply_patch`` defines
    it), with its parameters: only the new text and the new parts travel, and SQLite's JSON
    functions edit the stored array in place of a rewrite from Python."""
    expr, params = "parts", []
    if patch.append_text:
        path = f"'$[{int(patch.keep) - 1}].text'"
        expr = f"json_set(parts, {path}, json_extract(parts, {path}) || ?)"
        params.append(patch.append_text)
    # SQLite functions take at most 127 arguments: long lists go in several nested calls.
    for start in range(0, int(patch.drop), _JSON_ARGS):
        count = min(_JSON_ARGS, int(patch.drop) - start)
        paths = ", ".join([f"'$[{int(patch.keep)}]'"] * count)
        expr = f"json_remove({expr}, {paths})"
    for start in range(0, len(patch.tail), _JSON_ARGS // 2):
        added = patch.tail[start : start + _JSON_ARGS // 2]
        pairs = ", ".join(["'$[#]', json(?)"] * len(added))
        expr = f"json_insert({expr}, {pairs})"
        params += [to_json(part) for part in added]
    return expr, params


def seq_window(total: int, *, limit: int | None, offset: int, order: Order) -> tuple[int, int]:
    """The page as a seq range (low, high], given that seq runs densely 1..total."""
    if order == "asc":
        high = total if limit is None else min(offset + limit, total)
        return offset, high
    high = total - offset
    return (0 if limit is None else max(high - limit, 0)), high


def _check_window(limit: int | None, offset: int) -> None:
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")


def _draft_update(write: DraftWrite) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE of one draft write: the parts patch, content, usage, cost, status, error."""
    parts_sql, params = parts_patch_sql(write.patch)
    changes = given(status=write.status, error=write.error)
    assignments = "".join(f", {column} = ?" for column in changes)
    sql = (
        f"UPDATE messages SET parts = {parts_sql}, content = content || ?, usage = ?, "
        f"cost = ?, updated_at = ?{assignments} WHERE id = ? AND session_id = ?"
    )
    values = (
        *params,
        write.patch.content_append,
        to_json(write.usage),
        write.cost,
        to_timestamp(utc_now()),
        *changes.values(),
        write.message_id,
        write.session_id,
    )
    return sql, values
