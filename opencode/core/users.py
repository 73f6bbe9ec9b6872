"""Who is calling: the user a request acts for, and whether it may see everyone's rows."""

import uuid
from dataclasses import dataclass

# The one user of a server without accounts (OPENCODE_AUTH=none or password), and the owner of
# rows written before owners existed. A UUID because Postgres stores owners as ``uuid``.
LOCAL_USER_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Caller:
    """``user_id`` owns what the request creates and is charged for its tokens. ``admin`` may
    read and change any user's rows by id; ``everyone`` widens the lists (sessions, questions,
    ``/event``) to all users: an admin caller that named no user with ``X-User-Id``."""

    user_id: str
    admin: bool = False
    everyone: bool = False

    @property
    def owner_filter(self) -> str | None:
        """The owner a list is narrowed to; None for all of them."""
        return None if self.everyone else self.user_id

    def may_see(self, owner: str | None) -> bool:
        return self.admin or owner == self.user_id


LOCAL_CALLER = Caller(LOCAL_USER_ID)


def is_user_id(value: str) -> bool:
    """A canonical UUID (what Supabase puts in ``sub`` and Postgres stores as ``uuid``)."""
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except (ValueError, AttributeError):
        return False
