"""``Store`` on PostgreSQL (Supabase or vanilla) through an asyncpg pool.

The schema is ``supabase/migrations/*.sql``, applied by ``initialize()``. The writes that take
several steps (``add_message``, ``write_draft``, ``record_step_usage``) are SQL functions in
that schema, so a store speaking Supabase's REST API can ``rpc()`` the same logic; everything
else is one statement, atomic on its own.
"""

import functools
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from opencode.core.errors import OpencodeError
from opencode.core.ids import utc_now

from .base import (
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
from .pages import check_window, seq_window
from .postgres_bundle import read_bundle, write_bundle
from .postgres_dsn import PostgresDsn, parse_dsn
from .postgres_migrations import MIGRATIONS_DIR, migrate_postgres
from .postgres_quota import PostgresQuota
from .postgres_rows import (
    COMPACTION_COLUMNS,
    MESSAGE_COLUMNS,
    QUESTION_COLUMNS,
    SESSION_COLUMNS,
    TOKENS,
    aware,
    compaction_from_row,
    compaction_params,
    draft_batch,
    message_from_row,
    message_params,
    model_usage_from_row,
    question_from_row,
    session_from_row,
)

log = logging.getLogger(__name__)

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
PING_TIMEOUT = 2.0  # seconds to wait for a free connection in ping()

# A page is the seq range (low, high] of one session: O(page) on the messages_by_seq index.
MESSAGE_PAGE_SQL: dict[Order, str] = {
    order: f"select {MESSAGE_COLUMNS} from public.messages "
    f"where session_id = $1 and seq > $2 and seq <= $3 order by seq {order}"
    for order in ("asc", "desc")
}
SESSION_PAGE_SQL = (
    f"select {SESSION_COLUMNS} from public.sessions "
    "order by updated_at desc, id desc limit $1 offset $2"
)
# One owner's page: a range of the sessions_by_user_recency index.
OWNER_SESSION_PAGE_SQL = (
    f"select {SESSION_COLUMNS} from public.sessions where user_id = $3 "
    "order by updated_at desc, id desc limit $1 offset $2"
)
ADD_MESSAGE_SQL = (
    "select public.add_message(p_id => $1, p_session_id => $2, p_role => $3, p_status => $4, "
    "p_parts => $5, p_content => $6, p_parent_id => $7, p_model => $8, p_usage => $9, "
    "p_cost => $10, p_error => $11, p_created_at => $12, p_updated_at => $13, p_now => $14)"
)
WRITE_DRAFT_SQL = (
    "select public.write_draft(p_session_id => $1, p_message_id => $2, p_keep => $3, "
    "p_drop => $4, p_append_text => $5, p_tail => $6, p_content_append => $7, p_usage => $8, "
    "p_cost => $9, p_now => $10, p_status => $11, p_error => $12, p_step_model => $13, "
    "p_step_usage => $14, p_step_cost => $15)"
)
WRITE_DRAFTS_SQL = "select public.write_drafts(p_writes => $1)"
RECORD_STEP_USAGE_SQL = (
    "select public.record_step_usage(p_session_id => $1, p_model => $2, p_usage => $3, "
    "p_cost => $4)"
)
_COMPACTION_UPDATES = ", ".join(
    f"{column} = excluded.{column}" for column in COMPACTION_COLUMNS.split(", ")[1:]
)


class PostgresUnavailable(OpencodeError):
    """The database cannot be reached or refuses the login: names the host, never the password."""

    status_code = 503
    error = "store_unavailable"


# What a lost or refused connection raises mid-query (the server restarted, a backend was
# terminated, the database stopped accepting connections, the pool timed out): the store
# answers these as ``PostgresUnavailable`` (503), so callers see "the database is down", not
# an internal error. Other database errors keep their types.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,  # "not currently accepting connections"
)
_NOT_WRAPPED = frozenset({"initialize", "close", "ping"})


def _answers_outages(cls: type) -> type:
    """Wrap every public coroutine method of ``cls`` (its mixins' too) so ``CONNECTION_ERRORS``
    become ``PostgresUnavailable`` naming the host (the pool replaces broken connections, so the
    next call after the database is back succeeds)."""
    for name in dir(cls):
        method = inspect.getattr_static(cls, name)
        if name.startswith("_") or name in _NOT_WRAPPED or not inspect.iscoroutinefunction(method):
            continue
        setattr(cls, name, _outage_wrapper(method))
    return cls


def _is_outage(exc: Exception) -> bool:
    """A connection error, or asyncpg's "cannot switch to state ..." on a pooled connection the
    server just terminated: that exact class only (its subclasses, protocol or schema-cache
    errors, are bugs, not outages)."""
    return isinstance(exc, CONNECTION_ERRORS) or type(exc) is asyncpg.InternalClientError


def _outage_wrapper(method: Any) -> Any:
    @functools.wraps(method)
    async def wrapper(self: "PostgresStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            if not _is_outage(exc):
                raise
            reason = self.options.scrub(str(exc) or "no details")
            raise PostgresUnavailable(
                f"lost the connection to PostgreSQL at {self.options.where}: "
                f"{type(exc).__name__}: {reason}"
            ) from None

    return wrapper


@_answers_outages
class PostgresStore(PostgresQuota):
    def __init__(
        self,
        dsn: str,
        *,
        migrations_dir: Path = MIGRATIONS_DIR,
        max_size: int = POOL_MAX_SIZE,
    ) -> None:
        """``dsn`` is the ``DATABASE_URL`` as configured (see ``postgres_dsn``)."""
        try:
            self.options: PostgresDsn = parse_dsn(dsn)
        except ValueError as exc:
            raise OpencodeError(f"DATABASE_URL is not usable: {exc}.") from None
        self.migrations_dir = migrations_dir
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def initialize(self) -> None:
        if self._pool is not None:
            return
        if self.options.ignored:
            log.warning(
                "DATABASE_URL options ignored (asyncpg does not understand them): %s",
                ", ".join(self.options.ignored),
            )
        pool = await self._connect()
        try:
            async with pool.acquire() as conn:
                applied = await migrate_postgres(conn, self.migrations_dir)
        except BaseException:
            await pool.close()
            raise
        if applied:
            log.info("PostgreSQL schema migrated: applied %s", ", ".join(applied))
        self._pool = pool

    async def _connect(self) -> asyncpg.Pool:
        extra = {}
        if self.options.statement_cache_size is not None:
            extra["statement_cache_size"] = self.options.statement_cache_size
        try:
            return await asyncpg.create_pool(
                self.options.dsn,
                min_size=POOL_MIN_SIZE,
                max_size=self.max_size,
                timeout=self.options.connect_timeout,
                init=_prepare_connection,
                **extra,
            )
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            who = f" as {self.options.user}" if self.options.user else ""
            reason = self.options.scrub(str(exc) or "no details")
            # from None: the original's text is in the message (scrubbed), its traceback is not.
            raise PostgresUnavailable(
                f"cannot connect to PostgreSQL at {self.options.where}{who}: "
                f"{type(exc).__name__}: {reason}"
            ) from None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            async with self._pool.acquire(timeout=PING_TIMEOUT) as conn:
                return await conn.fetchval("select true")
        except Exception:
            return False

    # sessions
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        stored = replace(session, message_count=0, total_cost=0.0, usage=empty_usage())
        await self.pool.execute(
            "insert into public.sessions (id, user_id, title, model, created_at, updated_at) "
            "values ($1, $2, $3, $4, $5, $6)",
            stored.id,
            stored.user_id,
            stored.title,
            stored.model,
            aware(stored.created_at),
            aware(stored.updated_at),
        )
        return stored

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self.pool.fetchrow(
            f"select {SESSION_COLUMNS} from public.sessions where id = $1", session_id
        )
        return None if row is None else session_from_row(row)

    async def list_sessions(
        self, *, limit: int, offset: int, user_id: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        check_window(limit, offset)
        async with self.pool.acquire() as conn:
            if user_id is None:
                rows = await conn.fetch(SESSION_PAGE_SQL, limit, offset)
                total = await conn.fetchval("select count(*) from public.sessions")
            else:
                rows = await conn.fetch(OWNER_SESSION_PAGE_SQL, limit, offset, user_id)
                total = await conn.fetchval(
                    "select count(*) from public.sessions where user_id = $1", user_id
                )
        return [session_from_row(row) for row in rows], total

    async def update_session(
        self, session_id: str, *, title: str | None = None, model: str | None = None
    ) -> SessionRecord | None:
        changes = given(title=title, model=model) | {"updated_at": utc_now()}
        row = await self._update("sessions", SESSION_COLUMNS, session_id, changes)
        return None if row is None else session_from_row(row)

    async def delete_session(self, session_id: str) -> bool:
        # One statement: on delete cascade removes the dependent rows with it.
        status = await self.pool.execute("delete from public.sessions where id = $1", session_id)
        return _rows(status) > 0

    # messages
    async def add_message(self, message: MessageRecord) -> MessageRecord:
        seq = await self.pool.fetchval(
            ADD_MESSAGE_SQL, message.id, message.session_id, *message_params(message), utc_now()
        )
        if seq is None:
            raise KeyError(message.session_id)
        return replace(message, seq=seq)

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
            parts=parts,
            content=content,
            model=model,
            usage=usage,
            cost=cost,
            error=error,
        ) | {"updated_at": utc_now()}
        row = await self._update("messages", MESSAGE_COLUMNS, message_id, changes)
        return None if row is None else message_from_row(row)

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
        return await self.pool.fetchval(
            WRITE_DRAFT_SQL,
            session_id,
            message_id,
            patch.keep,
            patch.drop,
            patch.append_text,
            list(patch.tail),
            patch.content_append,
            usage,
            cost,
            utc_now(),
            status,
            error,
            None if step is None else step.model,
            None if step is None else step.usage,
            None if step is None else step.cost,
        )

    async def write_drafts(self, writes: Sequence[DraftWrite]) -> list[bool]:
        if not writes:
            return []
        batch = draft_batch(writes, utc_now())
        return list(await self.pool.fetchval(WRITE_DRAFTS_SQL, batch))

    async def get_message(self, message_id: str) -> MessageRecord | None:
        row = await self.pool.fetchrow(
            f"select {MESSAGE_COLUMNS} from public.messages where id = $1", message_id
        )
        return None if row is None else message_from_row(row)

    async def list_messages(
        self, session_id: str, *, limit: int | None, offset: int, order: Order
    ) -> tuple[list[MessageRecord], int]:
        check_window(limit, offset)
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(
                "select message_count from public.sessions where id = $1", session_id
            )
            if total is None:
                return [], 0
            # Messages are only ever appended, so a window read from this count stays valid
            # even if another message lands before the page is read.
            low, high = seq_window(total, limit=limit, offset=offset, order=order)
            if high <= low:
                return [], total
            rows = await conn.fetch(MESSAGE_PAGE_SQL[order], session_id, low, high)
        return [message_from_row(row) for row in rows], total

    # usage and cost
    async def record_step_usage(
        self, session_id: str, *, model: str, usage: dict[str, int], cost: float
    ) -> None:
        if not await self.pool.fetchval(RECORD_STEP_USAGE_SQL, session_id, model, usage, cost):
            raise KeyError(session_id)

    async def model_usage(self, session_id: str) -> list[ModelUsageRecord]:
        rows = await self.pool.fetch(
            f"select model, cost, steps, {TOKENS} from public.model_usage "
            "where session_id = $1 order by first_use",
            session_id,
        )
        return [model_usage_from_row(row) for row in rows]

    # todos
    async def get_todos(self, session_id: str) -> list[dict[str, Any]]:
        todos = await self.pool.fetchval(
            "select todos from public.todos where session_id = $1", session_id
        )
        return [] if todos is None else todos

    async def set_todos(self, session_id: str, todos: list[dict[str, Any]]) -> None:
        await self._insert_for_session(
            session_id,
            "insert into public.todos (session_id, user_id, todos) "
            "select id, user_id, $2 from public.sessions where id = $1 "
            "on conflict (session_id) do update set todos = excluded.todos",
            todos,
        )

    # questions
    async def add_question(self, question: QuestionRecord) -> None:
        await self._insert_for_session(
            question.session_id,
            f"insert into public.questions (user_id, {QUESTION_COLUMNS}) "
            "select user_id, $2, id, $3, $4, $5, $6, $7, $8 from public.sessions where id = $1",
            question.id,
            question.message_id,
            question.call_id,
            question.questions,
            question.answers,
            question.status,
            aware(question.created_at),
        )

    async def get_question(self, question_id: str) -> QuestionRecord | None:
        row = await self.pool.fetchrow(
            f"select {QUESTION_COLUMNS} from public.questions where id = $1", question_id
        )
        return None if row is None else question_from_row(row)

    async def list_questions(
        self, *, session_id: str | None = None, user_id: str | None = None
    ) -> list[QuestionRecord]:
        sql, params = pending_questions_sql(session_id, user_id)
        rows = await self.pool.fetch(sql, *params)
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
        written = await self.pool.execute(
            "update public.questions set status = $1, answers = $2 "
            "where id = $3 and status = 'pending'",
            status,
            answers,
            question_id,
        )
        return _rows(written) == 1

    # compaction
    async def get_compaction(self, session_id: str) -> CompactionRecord | None:
        row = await self.pool.fetchrow(
            f"select {COMPACTION_COLUMNS} from public.compactions where session_id = $1",
            session_id,
        )
        return None if row is None else compaction_from_row(row)

    async def save_compaction(self, record: CompactionRecord) -> None:
        await self._insert_for_session(
            record.session_id,
            f"insert into public.compactions (user_id, {COMPACTION_COLUMNS}) "
            "select user_id, id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 "
            "from public.sessions where id = $1 "
            f"on conflict (session_id) do update set {_COMPACTION_UPDATES}",
            *compaction_params(record)[1:],
        )

    # recovery after a crash
    async def fail_running_messages(self, error: str) -> list[MessageRecord]:
        rows = await self.pool.fetch(
            "update public.messages set status = 'error', error = $1, updated_at = $2 "
            f"where status = 'running' returning {MESSAGE_COLUMNS}",
            error,
            utc_now(),
        )
        failed = [message_from_row(row) for row in rows]
        return sorted(failed, key=lambda message: (message.session_id, message.seq))

    async def expire_pending_questions(self) -> int:
        return _rows(
            await self.pool.execute(
                "update public.questions set status = 'expired' where status = 'pending'"
            )
        )

    async def fail_running_compactions(self, error: str) -> int:
        return _rows(
            await self.pool.execute(
                "update public.compactions set status = 'failed', error = $1, finished_at = $2 "
                "where status = 'running'",
                error,
                utc_now(),
            )
        )

    # moving sessions between stores
    async def export_session(self, session_id: str) -> SessionBundle | None:
        # repeatable read: every table is read in the same snapshot
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await read_bundle(conn, session_id)

    async def import_session(self, bundle: SessionBundle) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            return await write_bundle(conn, bundle)

    # plumbing
    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open: await initialize() first")
        return self._pool

    async def _insert_for_session(self, session_id: str, sql: str, *params: Any) -> None:
        """Run an ``insert ... select ... from sessions where id = $1``: KeyError when the
        session does not exist (or is deleted while the insert runs)."""
        try:
            written = await self.pool.execute(sql, session_id, *params)
        except asyncpg.ForeignKeyViolationError:
            raise KeyError(session_id) from None
        if _rows(written) == 0:
            raise KeyError(session_id)

    async def _update(
        self, table: str, columns: str, key: str, changes: dict[str, Any]
    ) -> asyncpg.Record | None:
        # Column names come from keyword parameters above, never from callers' data.
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(changes, 1))
        return await self.pool.fetchrow(
            f"update public.{table} set {assignments} where id = ${len(changes) + 1} "
            f"returning {columns}",
            *changes.values(),
            key,
        )


def pending_questions_sql(
    session_id: str | None, user_id: str | None
) -> tuple[str, tuple[str, ...]]:
    """``list_questions``' query and its parameters. A question carries its session's owner
    (copied at insert), so no join is needed: an owner's pending questions are a range of the
    questions_pending_by_user index."""
    where, params = "status = 'pending'", ()
    for column, value in (("session_id", session_id), ("user_id", user_id)):
        if value is not None:
            params += (value,)
            where += f" and {column} = ${len(params)}"
    return (
        f"select {QUESTION_COLUMNS} from public.questions where {where} order by created_at, id",
        params,
    )


async def _prepare_connection(conn: asyncpg.Connection) -> None:
    """Every pooled connection: jsonb as Python values, not JSON text."""
    await conn.set_type_codec(
        "jsonb", encoder=_to_json, decoder=json.loads, schema="pg_catalog", format="text"
    )


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rows(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` or ``INSERT 0 1``."""
    return int(status.rsplit(" ", 1)[-1])
