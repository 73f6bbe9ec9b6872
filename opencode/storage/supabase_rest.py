"""``Store`` over Supabase's REST API (PostgREST) with supabase-py, using the service key.

The schema is ``supabase/migrations/*.sql`` (applied with the Supabase CLI, not by this store;
``initialize()`` checks it is there). Writes that take several steps are SQL functions called
with ``rpc()``, each one transaction: ``add_message``, ``write_draft``, ``record_step_usage``,
``set_todos``, ``add_question``, ``save_compaction``. Everything else is one PostgREST request
that is one SQL statement, atomic on its own (a filtered PATCH is one UPDATE; deleting a session
cascades by foreign key). Hosted PostgREST returns at most 1000 rows per read (``max_rows``), so
unbounded reads page through in chunks of at most ``MAX_ROWS``.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
from postgrest import APIResponse, CountMethod, ReturnMethod
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, SupabaseException, acreate_client

from opencode.core.errors import OpencodeError
from opencode.core.ids import utc_now

from . import supabase_rows as rows
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
from .postgres_rows import TOKENS, draft_batch, model_usage_from_row
from .supabase_errors import SupabaseError, api_failure, transport_failure
from .supabase_quota import SupabaseQuota

TABLES = ("sessions", "messages", "model_usage", "todos", "questions", "compactions")
QUOTA_TABLES = ("usage_daily", "usage_daily_models", "user_limits")
MAX_ROWS = 1000  # hosted PostgREST's default max_rows
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
PING_TIMEOUT = 2.0


COPY_THROUGH_POSTGRES = (
    "Copying sessions goes through PostgreSQL, not the REST API: give python -m "
    "opencode.storage.copy the project's connection string (postgresql://...) instead of "
    "SUPABASE_URL."
)


class SupabaseStore(SupabaseQuota):
    def __init__(self, url: str, key: str, *, http: httpx.AsyncClient | None = None) -> None:
        """``url`` is SUPABASE_URL (``https://<ref>.supabase.co``), ``key`` SUPABASE_KEY (the
        service_role key). ``http``, if given, stays the caller's to close."""
        self.url, self._key = url.rstrip("/"), key
        parts = urlsplit(self.url)
        self.host = parts.netloc.rpartition("@")[2] or self.url
        self._given_http = http
        self._http: httpx.AsyncClient | None = None
        self._client: AsyncClient | None = None

    async def initialize(self) -> None:
        if self._client is not None:
            return
        http = self._given_http or httpx.AsyncClient(timeout=TIMEOUT)
        try:
            self._client = await _connect(self.url, self._key, http)
            self._http = http
            await self._check_schema()
        except BaseException:
            self._client = None
            if self._given_http is None:
                await http.aclose()
            self._http = None
            raise

    async def _check_schema(self) -> None:
        """Every table answers, and the functions of the later migrations exist."""
        for table in TABLES + QUOTA_TABLES:
            await self._run(self.client.table(table).select("*").limit(0))
        await self._run(self.client.rpc("opencode_rest_schema", {}))
        await self._run(self.client.rpc("write_drafts", {"p_writes": []}))

    async def close(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None and self._given_http is None:
            await http.aclose()

    async def ping(self) -> bool:
        if self._client is None:
            return False
        try:
            query = self._client.table("sessions").select("id").limit(0)
            await asyncio.wait_for(query.execute(), PING_TIMEOUT)
        except Exception:
            return False
        return True

    # moving sessions between stores: through the project's Postgres connection string
    async def export_session(self, session_id: str) -> SessionBundle | None:
        raise OpencodeError(COPY_THROUGH_POSTGRES)

    async def import_session(self, bundle: SessionBundle) -> bool:
        raise OpencodeError(COPY_THROUGH_POSTGRES)

    # sessions
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        stored = replace(session, message_count=0, total_cost=0.0, usage=empty_usage())
        body = rows.session_body(stored)
        await self._run(self._table("sessions").insert(body, returning=ReturnMethod.minimal))
        return stored

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._one(self._table("sessions").select("*").eq("id", session_id))
        return None if row is None else rows.session(row)

    async def list_sessions(
        self, *, limit: int, offset: int, user_id: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        check_window(limit, offset)

        def sessions(columns: str) -> Any:
            query = self._table("sessions").select(columns, count=CountMethod.exact)
            return query if user_id is None else query.eq("user_id", user_id)

        found: list[dict[str, Any]] = []
        total = None
        while limit == 0 or len(found) < limit:
            size = min(limit - len(found), MAX_ROWS)
            start = offset + len(found)
            query = sessions("*").order("updated_at", desc=True).order("id", desc=True)
            # range(a, a - 1) asks for no rows: PostgREST still sends the count.
            page = await self._page(query.range(start, start + size - 1))
            if page is None:  # the offset is past the end
                total = await self._count(sessions("id"))
                break
            found += page.data
            total = page.count
            if len(page.data) < size or size == 0:
                break
        return [rows.session(row) for row in found], total or 0

    async def update_session(
        self, session_id: str, *, title: str | None = None, model: str | None = None
    ) -> SessionRecord | None:
        changes = given(title=title, model=model) | {"updated_at": rows.timestamp(utc_now())}
        row = await self._update("sessions", session_id, changes)
        return None if row is None else rows.session(row)

    async def delete_session(self, session_id: str) -> bool:
        # One DELETE: on delete cascade removes the dependent rows with it.
        query = self._table("sessions").delete(
            count=CountMethod.exact, returning=ReturnMethod.minimal
        )
        return bool((await self._run(query.eq("id", session_id))).count)

    # messages
    async def add_message(self, message: MessageRecord) -> MessageRecord:
        seq = await self._rpc("add_message", rows.add_message_args(message, utc_now()))
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
        ) | {"updated_at": rows.timestamp(utc_now())}
        row = await self._update("messages", message_id, changes)
        return None if row is None else rows.message(row)

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
        args = {
            "p_session_id": session_id,
            "p_message_id": message_id,
            "p_keep": patch.keep,
            "p_drop": patch.drop,
            "p_append_text": patch.append_text,
            "p_tail": list(patch.tail),
            "p_content_append": patch.content_append,
            "p_usage": usage,
            "p_cost": cost,
            "p_now": rows.timestamp(utc_now()),
            "p_status": status,
            "p_error": error,
        }
        if step is not None:
            args |= {
                "p_step_model": step.model,
                "p_step_usage": step.usage,
                "p_step_cost": step.cost,
            }
        return bool(await self._rpc("write_draft", args))

    async def write_drafts(self, writes: Sequence[DraftWrite]) -> list[bool]:
        if not writes:
            return []
        batch = draft_batch(writes, utc_now())
        return [bool(stored) for stored in await self._rpc("write_drafts", {"p_writes": batch})]

    async def get_message(self, message_id: str) -> MessageRecord | None:
        row = await self._one(self._table("messages").select("*").eq("id", message_id))
        return None if row is None else rows.message(row)

    async def list_messages(
        self, session_id: str, *, limit: int | None, offset: int, order: Order
    ) -> tuple[list[MessageRecord], int]:
        check_window(limit, offset)
        counted = self._table("sessions").select("message_count").eq("id", session_id)
        session = await self._one(counted)
        if session is None:
            return [], 0
        total = session["message_count"]
        # seq is dense and messages are only appended, so the window read from this count stays
        # valid even if another message lands meanwhile; each chunk is one seq range.
        low, high = seq_window(total, limit=limit, offset=offset, order=order)
        found: list[dict[str, Any]] = []
        for start, end in _chunks(low, high, descending=order == "desc"):
            query = (
                self._table("messages")
                .select("*")
                .eq("session_id", session_id)
                .gt("seq", start)
                .lte("seq", end)
                .order("seq", desc=order == "desc")
            )
            found += (await self._run(query)).data
        return [rows.message(row) for row in found], total

    # usage and cost
    async def record_step_usage(
        self, session_id: str, *, model: str, usage: dict[str, int], cost: float
    ) -> None:
        args = {"p_session_id": session_id, "p_model": model, "p_usage": usage, "p_cost": cost}
        if not await self._rpc("record_step_usage", args):
            raise KeyError(session_id)

    async def model_usage(self, session_id: str) -> list[ModelUsageRecord]:
        found = await self._all(
            lambda: (
                self._table("model_usage")
                .select(f"model, cost, steps, {TOKENS}".replace(" ", ""))
                .eq("session_id", session_id)
                .order("first_use")
            )
        )
        return [model_usage_from_row(rows.decoded(row)) for row in found]

    # todos
    async def get_todos(self, session_id: str) -> list[dict[str, Any]]:
        row = await self._one(self._table("todos").select("todos").eq("session_id", session_id))
        return [] if row is None else row["todos"]

    async def set_todos(self, session_id: str, todos: list[dict[str, Any]]) -> None:
        if not await self._rpc("set_todos", {"p_session_id": session_id, "p_todos": todos}):
            raise KeyError(session_id)

    # questions
    async def add_question(self, question: QuestionRecord) -> None:
        if not await self._rpc("add_question", rows.add_question_args(question)):
            raise KeyError(question.session_id)

    async def get_question(self, question_id: str) -> QuestionRecord | None:
        row = await self._one(self._table("questions").select("*").eq("id", question_id))
        return None if row is None else rows.question(row)

    async def list_questions(
        self, *, session_id: str | None = None, user_id: str | None = None
    ) -> list[QuestionRecord]:
        def pending() -> Any:
            query = self._table("questions").select("*").eq("status", "pending")
            if session_id is not None:
                query = query.eq("session_id", session_id)
            if user_id is not None:  # a question carries its session's owner
                query = query.eq("user_id", user_id)
            return query.order("created_at").order("id")

        return [rows.question(row) for row in await self._all(pending)]

    async def resolve_question(
        self,
        question_id: str,
        *,
        status: QuestionStatus,
        answers: list[list[str]] | None = None,
    ) -> bool:
        if status == "pending":
            raise ValueError("resolve_question needs a final status, not 'pending'")
        # One UPDATE ... where status = 'pending': of concurrent resolves, one wins.
        query = self._table("questions").update(
            {"status": status, "answers": answers},
            count=CountMethod.exact,
            returning=ReturnMethod.minimal,
        )
        written = await self._run(query.eq("id", question_id).eq("status", "pending"))
        return written.count == 1

    # compaction
    async def get_compaction(self, session_id: str) -> CompactionRecord | None:
        query = self._table("compactions").select("*").eq("session_id", session_id)
        row = await self._one(query)
        return None if row is None else rows.compaction(row)

    async def save_compaction(self, record: CompactionRecord) -> None:
        if not await self._rpc("save_compaction", rows.save_compaction_args(record)):
            raise KeyError(record.session_id)

    # recovery after a crash
    async def fail_running_messages(self, error: str) -> list[MessageRecord]:
        # One UPDATE ... returning, so every running message is marked. (Should a PostgREST's
        # max_rows ever cap a mutation's representation, only the list returned would be short.)
        changes = {"status": "error", "error": error, "updated_at": rows.timestamp(utc_now())}
        query = self._table("messages").update(changes).eq("status", "running")
        failed = [rows.message(row) for row in (await self._run(query)).data]
        return sorted(failed, key=lambda message: (message.session_id, message.seq))

    async def expire_pending_questions(self) -> int:
        return await self._update_all("questions", {"status": "expired"}, status="pending")

    async def fail_running_compactions(self, error: str) -> int:
        changes = {"status": "failed", "error": error, "finished_at": rows.timestamp(utc_now())}
        return await self._update_all("compactions", changes, status="running")

    # plumbing
    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("SupabaseStore is not open: await initialize() first")
        return self._client

    def _table(self, name: str) -> Any:
        return self.client.table(name)

    async def _run(self, query: Any) -> APIResponse:
        """Execute a query built by supabase-py, with its failures as our errors."""
        try:
            return await query.execute()
        except APIError as exc:
            raise api_failure(exc, self.host) from None
        except httpx.TransportError as exc:
            raise transport_failure(exc, self.host, self._key) from None

    async def _rpc(self, function: str, args: dict[str, Any]) -> Any:
        return (await self._run(self.client.rpc(function, args))).data

    async def _one(self, query: Any) -> dict[str, Any] | None:
        found = (await self._run(query.limit(1))).data
        return found[0] if found else None

    async def _page(self, query: Any) -> APIResponse | None:
        """A counted page; None if its offset is past the end (PostgREST answers 416)."""
        try:
            return await self._run(query)
        except SupabaseError as exc:
            if exc.extra.get("code") == "PGRST103":
                return None
            raise

    async def _count(self, query: Any) -> int:
        return (await self._run(query.limit(0))).count or 0

    async def _all(self, build: Callable[[], Any]) -> list[dict[str, Any]]:
        """Every row of the query ``build()`` makes, in chunks of at most ``MAX_ROWS``."""
        found: list[dict[str, Any]] = []
        while True:
            chunk = (await self._run(build().range(len(found), len(found) + MAX_ROWS - 1))).data
            found += chunk
            if len(chunk) < MAX_ROWS:
                return found

    async def _update(self, table: str, key: str, changes: dict[str, Any]) -> dict | None:
        updated = (await self._run(self._table(table).update(changes).eq("id", key))).data
        return updated[0] if updated else None

    async def _update_all(self, table: str, changes: dict[str, Any], *, status: str) -> int:
        query = self._table(table).update(
            changes, count=CountMethod.exact, returning=ReturnMethod.minimal
        )
        return (await self._run(query.eq("status", status))).count or 0


async def _connect(url: str, key: str, http: httpx.AsyncClient) -> AsyncClient:
    # No hidden GET retry: it sleeps 1 + 2 + 4 s before a failing read reports anything.
    options = AsyncClientOptions(
        httpx_client=http,
        auto_refresh_token=False,
        persist_session=False,
        postgrest_client_retry=False,
        schema="public",
    )
    try:
        return await acreate_client(url, key, options=options)
    except SupabaseException as exc:  # says which argument, never its value
        raise OpencodeError(
            f"SUPABASE_URL or SUPABASE_KEY is not usable ({exc.message}): SUPABASE_URL is "
            "https://<project ref>.supabase.co and SUPABASE_KEY the service_role key."
        ) from None


def _chunks(low: int, high: int, *, descending: bool) -> list[tuple[int, int]]:
    """The seq range (low, high] as ranges of at most ``MAX_ROWS``, in reading order."""
    bounds = [(start, min(start + MAX_ROWS, high)) for start in range(low, high, MAX_ROWS)]
    return bounds[::-1] if descending else bounds
