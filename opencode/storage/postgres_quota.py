"""Daily token quotas on PostgreSQL: the ``Store`` quota methods, mixed into ``PostgresStore``.

Reserving and settling are the SQL functions ``reserve_tokens`` and ``settle_tokens``
(``supabase/migrations/20261204000001_daily_quotas.sql``): one call, one transaction each,
serialised per user and day by a row lock, so several servers on one database agree. The
Supabase REST store calls the same functions.
"""

from datetime import date

import asyncpg

from opencode.core.ids import utc_now

from .base import RESERVATION_TTL, DailyUsage, QuotaDecision
from .quota_rows import check_amounts, daily_usage, decision

RESERVE_SQL = (
    "select allowed, used, reserved, daily_limit from public.reserve_tokens(p_user_id => $1, "
    "p_day => $2, p_tokens => $3, p_default_limit => $4, p_now => $5, p_reservation_ttl => $6)"
)
SETTLE_SQL = (
    "select public.settle_tokens(p_user_id => $1, p_day => $2, p_reserved => $3, p_model => $4, "
    "p_input_tokens => $5, p_output_tokens => $6, p_cost => $7, p_now => $8)"
)
DAY_SQL = (
    "select input_tokens, output_tokens, total_tokens, reserved_tokens, reserved_at, cost, "
    "requests from public.usage_daily where user_id = $1 and day = $2"
)
DAY_MODELS_SQL = (
    "select model, input_tokens, output_tokens, total_tokens, cost, requests "
    "from public.usage_daily_models where user_id = $1 and day = $2 "
    "order by total_tokens desc, model"
)
SET_LIMIT_SQL = (
    "insert into public.user_limits (user_id, daily_token_limit, updated_at) "
    "values ($1, $2, $3) on conflict (user_id) do update "
    "set daily_token_limit = excluded.daily_token_limit, updated_at = excluded.updated_at"
)


class PostgresQuota:
    """Needs ``PostgresStore.pool``. ``PostgresStore``'s outage decorator wraps these methods
    too, so a lost connection is a ``PostgresUnavailable`` here as everywhere else."""

    pool: asyncpg.Pool

    async def reserve_tokens(
        self, user_id: str, day: date, tokens: int, *, default_limit: int
    ) -> QuotaDecision:
        check_amounts(tokens=tokens, default_limit=default_limit)
        row = await self.pool.fetchrow(
            RESERVE_SQL, user_id, day, tokens, default_limit, utc_now(), RESERVATION_TTL
        )
        return decision(row)

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
        await self.pool.execute(
            SETTLE_SQL, user_id, day, reserved, model, input_tokens, output_tokens, cost, utc_now()
        )

    async def daily_usage(self, user_id: str, day: date) -> DailyUsage:
        # repeatable read: the totals and the per-model rows come from one snapshot
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            totals = await conn.fetchrow(DAY_SQL, user_id, day)
            models = await conn.fetch(DAY_MODELS_SQL, user_id, day)
        return daily_usage(day, totals, models, now=utc_now())

    async def get_user_limit(self, user_id: str) -> int | None:
        return await self.pool.fetchval(
            "select daily_token_limit from public.user_limits where user_id = $1", user_id
        )

    async def set_user_limit(self, user_id: str, limit: int | None) -> None:
        if limit is None:
            await self.pool.execute("delete from public.user_limits where user_id = $1", user_id)
            return
        check_amounts(limit=limit)
        await self.pool.execute(SET_LIMIT_SQL, user_id, limit, utc_now())
