"""Daily token quotas on SQLite: the ``Store`` quota methods, mixed into ``SqliteStore``.

Every write is one BEGIN IMMEDIATE transaction, so processes sharing the file take turns on the
write lock; within it the decision is made by SQL (a guarded UPDATE that reserves only while
the limit allows), never by Python arithmetic on figures read earlier.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Any

import aiosqlite

from opencode.core.ids import utc_now

from .base import RESERVATION_TTL, DailyUsage, QuotaDecision
from .quota_rows import check_amounts, daily_usage, decision
from .sqlite_rows import to_timestamp

# The limit that applies: the user's override, else the default (0 = unlimited).
_LIMIT = (
    "COALESCE((SELECT daily_token_limit FROM user_limits WHERE user_id = :user_id), :default_limit)"
)
ENSURE_DAY_SQL = (
    "INSERT INTO usage_daily (user_id, day, updated_at) VALUES (:user_id, :day, :now) "
    "ON CONFLICT (user_id, day) DO NOTHING"
)
# Reservations of steps that died unsettled stop counting once the latest is older than the TTL.
RELEASE_STALE_SQL = (
    "UPDATE usage_daily SET reserved_tokens = 0 WHERE user_id = :user_id AND day = :day "
    "AND reserved_tokens > 0 AND reserved_at < :live_since"
)
# NULLIF turns an unlimited (0) limit into NULL, which COALESCE reads as "allowed".
RESERVE_SQL = (
    "UPDATE usage_daily SET reserved_tokens = reserved_tokens + :tokens, reserved_at = :now, "
    "updated_at = :now WHERE user_id = :user_id AND day = :day "
    f"AND COALESCE(total_tokens + reserved_tokens < NULLIF({_LIMIT}, 0), 1) "
    f"RETURNING 1 AS allowed, total_tokens AS used, reserved_tokens AS reserved, "
    f"{_LIMIT} AS daily_limit"
)
REFUSED_SQL = (
    "SELECT 0 AS allowed, total_tokens AS used, reserved_tokens AS reserved, "
    f"{_LIMIT} AS daily_limit FROM usage_daily WHERE user_id = :user_id AND day = :day"
)
SETTLE_DAY_SQL = (
    "INSERT INTO usage_daily (user_id, day, input_tokens, output_tokens, cost, requests, "
    "updated_at) VALUES (:user_id, :day, :input_tokens, :output_tokens, :cost, 1, :now) "
    "ON CONFLICT (user_id, day) DO UPDATE SET "
    "reserved_tokens = MAX(reserved_tokens - :reserved, 0), "
    "input_tokens = input_tokens + excluded.input_tokens, "
    "output_tokens = output_tokens + excluded.output_tokens, "
    "cost = cost + excluded.cost, requests = requests + 1, updated_at = excluded.updated_at"
)
SETTLE_MODEL_SQL = (
    "INSERT INTO usage_daily_models (user_id, day, model, input_tokens, output_tokens, cost, "
    "requests, updated_at) "
    "VALUES (:user_id, :day, :model, :input_tokens, :output_tokens, :cost, 1, :now) "
    "ON CONFLICT (user_id, day, model) DO UPDATE SET "
    "input_tokens = input_tokens + excluded.input_tokens, "
    "output_tokens = output_tokens + excluded.output_tokens, "
    "cost = cost + excluded.cost, requests = requests + 1, updated_at = excluded.updated_at"
)
DAY_SQL = (
    "SELECT input_tokens, output_tokens, total_tokens, reserved_tokens, reserved_at, cost, "
    "requests FROM usage_daily WHERE user_id = ? AND day = ?"
)
DAY_MODELS_SQL = (
    "SELECT model, input_tokens, output_tokens, total_tokens, cost, requests "
    "FROM usage_daily_models WHERE user_id = ? AND day = ? ORDER BY total_tokens DESC, model"
)


class SqliteQuota:
    """Needs ``SqliteStore``'s connection helpers (declared here, defined there)."""

    _connection: Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]
    _transaction: Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]
    _read: Callable[..., Any]
    _write: Callable[..., Any]

    async def reserve_tokens(
        self, user_id: str, day: date, tokens: int, *, default_limit: int
    ) -> QuotaDecision:
        check_amounts(tokens=tokens, default_limit=default_limit)
        now = utc_now()
        params = {
            "user_id": user_id,
            "day": day.isoformat(),
            "tokens": tokens,
            "default_limit": default_limit,
            "now": to_timestamp(now),
            "live_since": to_timestamp(now - RESERVATION_TTL),
        }
        async with self._transaction() as db:
            await db.execute(ENSURE_DAY_SQL, params)
            await db.execute(RELEASE_STALE_SQL, params)
            rows = await _fetch(db, RESERVE_SQL, params) or await _fetch(db, REFUSED_SQL, params)
        return decision(rows[0])

    async def settle_tokens(
        self,
        user_id: str,
        day: date,
        *,
        reserved: int,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost: float,
    ) -> None:
        check_amounts(
            reserved=reserved, input_tokens=input_tokens, output_tokens=output_tokens, cost=cost
        )
        params = {
            "user_id": user_id,
            "day": day.isoformat(),
            "reserved": reserved,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
            "now": to_timestamp(utc_now()),
        }
        async with self._transaction() as db:
            await db.execute(SETTLE_DAY_SQL, params)
            await db.execute(SETTLE_MODEL_SQL, params)

    async def daily_usage(self, user_id: str, day: date) -> DailyUsage:
        key = (user_id, day.isoformat())
        # A read transaction: the totals and the per-model rows come from one snapshot.
        async with self._connection() as db:
            await db.execute("BEGIN")
            try:
                totals = await _fetch(db, DAY_SQL, key)
                models = await _fetch(db, DAY_MODELS_SQL, key)
            finally:
                await db.rollback()
        return daily_usage(day, totals[0] if totals else None, models, now=utc_now())

    async def get_user_limit(self, user_id: str) -> int | None:
        rows = await self._read(
            "SELECT daily_token_limit FROM user_limits WHERE user_id = ?", (user_id,)
        )
        return rows[0][0] if rows else None

    async def set_user_limit(self, user_id: str, limit: int | None) -> None:
        if limit is None:
            await self._write("DELETE FROM user_limits WHERE user_id = ?", (user_id,))
            return
        check_amounts(limit=limit)
        await self._write(
            "INSERT INTO user_limits (user_id, daily_token_limit, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET daily_token_limit = excluded.daily_token_limit, "
            "updated_at = excluded.updated_at",
            (user_id, limit, to_timestamp(utc_now())),
        )


async def _fetch(db: aiosqlite.Connection, sql: str, params: Any) -> list[aiosqlite.Row]:
    return list(await db.execute_fetchall(sql, params))
