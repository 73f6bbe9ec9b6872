"""What the three stores share for daily token quotas: the argument checks made before any
write, and ``DailyUsage`` from a day's rows (the columns are named alike in every backend)."""

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from .base import RESERVATION_TTL, DailyModelUsage, DailyUsage, QuotaDecision

Row = Mapping[str, Any]


def check_amounts(**amounts: float) -> None:
    """Token counts, costs and limits are never negative: say which one was."""
    negative = [f"{name}={value}" for name, value in amounts.items() if value < 0]
    if negative:
        raise ValueError(f"quota amounts must not be negative, got {', '.join(negative)}")


def live_reserved(reserved: int, reserved_at: datetime | str | None, now: datetime) -> int:
    """The reservations that still count: none once the latest is older than the TTL."""
    when = _instant(reserved_at)
    return reserved if when is not None and when >= now - RESERVATION_TTL else 0


def decision(row: Row) -> QuotaDecision:
    """A ``reserve_tokens`` result row (``allowed, used, reserved, daily_limit``)."""
    return QuotaDecision(
        allowed=bool(row["allowed"]),
        used=row["used"],
        reserved=row["reserved"],
        limit=row["daily_limit"],
    )


def daily_usage(
    day: date, totals: Row | None, models: Iterable[Row], *, now: datetime
) -> DailyUsage:
    """``totals`` is the day's ``usage_daily`` row (None for a day without one), ``models`` its
    ``usage_daily_models`` rows in listing order."""
    if totals is None:
        return DailyUsage(day=day)
    return DailyUsage(
        day=day,
        input_tokens=totals["input_tokens"],
        output_tokens=totals["output_tokens"],
        total_tokens=totals["total_tokens"],
        reserved=live_reserved(totals["reserved_tokens"], totals["reserved_at"], now),
        cost=float(totals["cost"]),
        requests=totals["requests"],
        by_model=tuple(
            DailyModelUsage(
                model=row["model"],
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                total_tokens=row["total_tokens"],
                cost=float(row["cost"]),
                requests=row["requests"],
            )
            for row in models
        ),
    )


def _instant(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as an aware datetime: SQLite and PostgREST give ISO text."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).astimezone(UTC)
    return value
