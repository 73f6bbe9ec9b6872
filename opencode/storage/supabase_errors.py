"""What a failed call to Supabase's REST API means, as our errors: one sentence naming the host
and what to do, never the key.

supabase-py raises ``postgrest.exceptions.APIError`` for an HTTP error (``code`` is PostgREST's
or PostgreSQL's, or for a body that is not PostgREST's JSON, such as a proxy's HTML page, the
``Proxy-Status`` error or the HTTP status) and lets httpx's transport errors through raw.
"""

import httpx
from postgrest.exceptions import APIError

from opencode.core.errors import Conflict, OpencodeError

INITIAL_MIGRATION = "supabase/migrations/20261203000000_initial_schema.sql"
REST_MIGRATION = "supabase/migrations/20261203000001_rest_functions.sql"
# Which migration adds each function the store calls (the initial schema holds the others).
FUNCTION_MIGRATIONS = {
    "opencode_rest_schema": REST_MIGRATION,
    "set_todos": REST_MIGRATION,
    "add_question": REST_MIGRATION,
    "save_compaction": REST_MIGRATION,
    "write_drafts": "supabase/migrations/20261205000000_batched_drafts.sql",
}
APPLY = (
    "apply the files in supabase/migrations/ in order: `npx supabase db push --db-url "
    "<the project's Postgres connection string>`, or paste each file into the SQL editor"
)
# PostgREST's JWT errors (PGRST301-303), and PostgreSQL's "permission denied" (42501): the key
# is not the project's service_role key.
KEY_CODES = frozenset({"PGRST301", "PGRST302", "PGRST303", "42501"})


class SupabaseUnavailable(OpencodeError):
    """Supabase cannot be reached or cannot serve the store now."""

    status_code = 503
    error = "store_unavailable"


class SupabaseSchemaMissing(SupabaseUnavailable):
    """The project lacks a table or function of ``supabase/migrations/``."""


class SupabaseKeyRejected(SupabaseUnavailable):
    """SUPABASE_KEY is not a key that lets the server use the store."""


class SupabaseConflict(Conflict):
    """A row with that key exists already (unique violation, 23505)."""


class SupabaseError(OpencodeError):
    """Supabase refused a request for a reason that is neither ours to fix at run time nor the
    caller's: the message carries PostgREST's code and text."""

    status_code = 500
    error = "store_error"


def api_failure(exc: APIError, host: str) -> OpencodeError:
    """Our error for a PostgREST error response."""
    code, text = str(exc.code or ""), exc.message or "no message"
    where = f"Supabase at {host}"
    if code == "PGRST205":
        return SupabaseSchemaMissing(
            f"{where} has no such table ({text}): the schema in {INITIAL_MIGRATION} is not "
            f"applied; {APPLY}."
        )
    if code == "PGRST202":
        named = [f for f in FUNCTION_MIGRATIONS if f"public.{f}" in text or f" {f}(" in text]
        migration = FUNCTION_MIGRATIONS[named[0]] if named else REST_MIGRATION
        return SupabaseSchemaMissing(
            f"{where} lacks a function the store calls ({text}): {migration} is not "
            f"applied; {APPLY}."
        )
    if code in KEY_CODES:
        return SupabaseKeyRejected(
            f"{where} rejected SUPABASE_KEY ({code}: {text}): set it to the project's "
            "service_role key (Project Settings > API keys)."
        )
    if code == "23505":
        return SupabaseConflict(f"{where} already has that record ({text}).")
    if code.isdigit() and int(code) >= 500 or code.startswith(("PGRST0", "08", "53", "57")):
        return SupabaseUnavailable(f"{where} failed ({code}: {text}); try again later.")
    return SupabaseError(f"{where} refused the request ({code}: {text}).", code=code)


def transport_failure(exc: httpx.TransportError, host: str, key: str) -> SupabaseUnavailable:
    """Our error for a request that got no answer (refused, timed out, cut off)."""
    reason = str(exc).replace(key, "***") if key else str(exc)
    detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return SupabaseUnavailable(f"cannot reach Supabase at {host}: {detail}")
