"""Page arithmetic every backend shares: seq is dense (1..message_count) in each session, so a
page of messages is a seq range, found on the (session_id, seq) index in O(page)."""

from .base import Order


def seq_window(total: int, *, limit: int | None, offset: int, order: Order) -> tuple[int, int]:
    """The page as a seq range (low, high], given that seq runs densely 1..total."""
    if order == "asc":
        high = total if limit is None else min(offset + limit, total)
        return offset, high
    high = total - offset
    return (0 if limit is None else max(high - limit, 0)), high


def check_window(limit: int | None, offset: int) -> None:
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")
