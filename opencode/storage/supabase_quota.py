"""Daily token quotas over Supabase's REST API: the ``Store`` quota methods, mixed into
``SupabaseStore``.

Reserving and settling ``rpc()`` the SQL functions the PostgreSQL store calls
(``supabase/migrations/20261204000001_daily_quotas.sql``), each one transaction; a limit
override is one upsert or delete. ``daily_usage`` is two reads, not one snapshot: a settle
landing between them shows in one and not yet in the other.
"""

from collections.abc import Callable
from datetime import date
from typing import Any

from postgrest import ReturnMethod

from opencode.core.ids import utc_now

from . import supabase_rows as rows
from .base import RESERVATION_TTL, DailyUsage, QuotaDecision
from .quota_rows import check_amounts, daily_usage, decision

DAY_COLUMNS = "input_tokens,output_tokens,total_tokens,reserved_tokens,reserved_at,cost,requests"
MODEL_COLUMNS = "model,input_tokens,output_tokens,total_tokens,cost,requests"


class SupabaseQuota:
    """Needs ``SupabaseStore``'s request helpers (declared here, defined there)."""

    _table: Callable[[str], Any]
    _run: Callable[..., Any]
    _rpc: Callable[..., Any]
    _one: Callable[..., Any]
    _all: Callable[..., Any]

    async def reserve_tokens(
        self, user_id: str, day: date, tokens: int, *, default_limit: int
    ) -> QuotaDecision:
        check_amounts(tokens=tokens, default_limit=default_limit)
        args = {
            "p_user_id": user_id,
            "p_day": day.isoformat(),
            "p_tokens": tokens,
            "p_default_limit": default_limit,
            "p_now": rows.timestamp(utc_now()),
            "p_reservation_ttl": f"{RESERVATION_TTL.total_seconds()} seconds",
        }
        return decision((await self._rpc("reserve_tokens", args))[0])

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
        args = {
            "p_user_id": user_id,
            "p_day": day.isoformat(),
            "p_reserved": reserved,
            "p_model": model,
            "p_input_tokens": input_tokens,
            "p_output_tokens": output_tokens,
            "p_cost": cost,
            "p_now": rows.timestamp(utc_now()),
        }
        await self._rpc("settle_tokens", args)

    async def daily_usage(self, user_id: str, day: date) -> DailyUsage:
        totals = await self._one(
            self._table("usage_daily")
            .select(DAY_COLUMNS)
            .eq("user_id", user_id)
            .eq("day", day.isoformat())
        )
        models = await self._all(
            lambda: (
                self._table("usage_daily_models")
                .select(MODEL_COLUMNS)
                .eq("user_id", user_id)
                .eq("day", day.isoformat())
                .order("total_tokens", desc=True)
                .order("model")
            )
        )
        return daily_usage(day, totals, models, now=utc_now())

    async def get_user_limit(self, user_id: str) -> int | None:
        row = await self._one(
            self._table("user_limits").select("daily_token_limit").eq("user_id", user_id)
        )
        return None if row is None else row["daily_token_limit"]

    async def set_user_limit(self, user_id: str, limit: int | None) -> None:
        if limit is None:
            query = self._table("user_limits").delete(returning=ReturnMethod.minimal)
            await self._run(query.eq("user_id", user_id))
            return
        check_amounts(limit=limit)
        body = {
            "user_id": user_id,
            "daily_token_limit": limit,
            "updated_at": rows.timestamp(utc_now()),
        }
        query = self._table("user_limits").upsert(
            body, on_conflict="user_id", returning=ReturnMethod.minimal
        )
        await self._run(query)
