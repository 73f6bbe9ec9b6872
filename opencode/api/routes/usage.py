"""``/usage``: tokens used today against the daily quota, and per-user limits (admins)."""

from typing import Annotated

from fastapi import APIRouter, Query

from opencode.api.deps import CallerDep, QuotaDep
from opencode.api.errors import error_responses
from opencode.core.errors import NotFound, OpencodeError
from opencode.core.users import Caller, is_user_id
from opencode.schemas.usage import LimitIn, LimitOut, UsageOut

router = APIRouter(prefix="/usage", tags=["usage"])

ANOTHER_USER = {404: "not_found: another user's usage (only admin callers may name a user)"}


@router.get("", responses=error_responses(400, 401, 404, 422, notes=ANOTHER_USER))
async def usage(
    quota: QuotaDep, caller: CallerDep, user_id: Annotated[str | None, Query()] = None
) -> UsageOut:
    """Today's (UTC) tokens of the caller, or with ``user_id`` (admins) of that user: every
    model call counts, turn steps, titles and compaction summaries alike."""
    return await quota.usage(_subject(caller, user_id))


@router.get("/limit", responses=error_responses(400, 401, 404, 422, notes=ANOTHER_USER))
async def get_limit(
    quota: QuotaDep, caller: CallerDep, user_id: Annotated[str | None, Query()] = None
) -> LimitOut:
    return await quota.limit_of(_subject(caller, user_id))


@router.put(
    "/limit",
    responses=error_responses(
        400, 401, 403, 413, 422, notes={403: "forbidden: only an admin caller sets limits"}
    ),
)
async def set_limit(body: LimitIn, quota: QuotaDep, caller: CallerDep) -> LimitOut:
    """Set a user's daily token limit (0 = unlimited), or with ``null`` go back to
    ``OPENCODE_DAILY_TOKEN_LIMIT``. Admin callers only (``OPENCODE_ADMIN_TOKEN`` or a Supabase
    ``service_role`` token)."""
    if not caller.admin:
        raise _forbidden("Only an admin caller may set a user's daily token limit.")
    return await quota.set_limit(_user_id(body.user_id), body.daily_token_limit)


def _subject(caller: Caller, user_id: str | None) -> str:
    if user_id is None:
        return caller.user_id
    user_id = _user_id(user_id)
    if user_id != caller.user_id and not caller.admin:  # like any id that is not yours
        raise NotFound(f"No usage of user {user_id} is visible to you.")
    return user_id


def _user_id(value: str) -> str:
    if not is_user_id(value):
        raise OpencodeError(
            f"user_id must be a user id (a UUID), not {value[:60]!r}.", status_code=422
        )
    return value.lower()


def _forbidden(message: str) -> OpencodeError:
    return OpencodeError(message, status_code=403)
