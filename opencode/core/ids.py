"""Identifiers and timestamps.

Ids sort by creation time (like ULIDs) so lists can be ordered by id without a second index.
"""

import os
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_last_ns = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """``prefix_`` + 13 chars of nanosecond time (monotonic within the process) + 10 random chars."""
    global _last_ns
    now = max(time.time_ns(), _last_ns + 1)
    _last_ns = now
    return f"{prefix}_{_encode(now, 13)}{_encode(int.from_bytes(os.urandom(7)), 10)}"


def _encode(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


class EventIds:
    """Event ids that only grow, across restarts too: the clock in microseconds, bumped past
    the last id issued when events come faster than that. A client holding an id from before a
    restart therefore holds a smaller number than anything the new process issues, and the
    server can tell it apart from an id it can replay. (JavaScript numbers hold them exactly:
    they stay below 2**53 until the year 2255.)"""

    def __init__(self) -> None:
        self.origin = time.time_ns() // 1000  # every id this process issues is above it
        self.last = self.origin

    def next(self) -> int:
        now = time.time_ns() // 1000
        self.last = now if now > self.last else self.last + 1
        return self.last
