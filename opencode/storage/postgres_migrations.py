"""Apply ``supabase/migrations/*.sql`` to PostgreSQL: the schema is those files and nothing else.

Pending files are applied in filename order, in one transaction, under a transaction-level
advisory lock: a second instance starting at the same time waits for the first to commit and
then finds nothing left to do. Applied versions are recorded in ``public.opencode_migrations``;
versions the Supabase CLI recorded (``supabase db push``) count as applied too.

On a vanilla PostgreSQL (no ``auth.uid()``), ``postgres_shim.sql`` is applied first so the
files' roles, grants and policies have something to refer to.
"""

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from opencode.core.errors import OpencodeError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
SHIM_PATH = Path(__file__).with_name("postgres_shim.sql")
# Any constant will do, as long as nothing else in the database locks it: "opencode" in ASCII.
MIGRATION_LOCK = int.from_bytes(b"opencode", "big")  # fits a signed bigint
_FILE_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")

BOOKKEEPING_SQL = """
create table public.opencode_migrations (
    version text primary key,
    name text not null,
    applied_at timestamptz not null default now()
);
alter table public.opencode_migrations enable row level security;
revoke all on table public.opencode_migrations from anon, authenticated;
"""


@dataclass(frozen=True)
class MigrationFile:
    version: str  # the file name's timestamp, as the Supabase CLI reads it
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[MigrationFile]:
    """The migration files in ``directory``, oldest first (blocking: call it in a thread)."""
    if not directory.is_dir():
        raise OpencodeError(
            f"The PostgreSQL schema directory {directory} is missing: the server needs "
            "supabase/migrations/ next to the opencode package (COPY it into the image)."
        )
    files = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise OpencodeError(
                f"Migration file {path.name} is not named <YYYYMMDDHHMMSS>_<name>.sql."
            )
        files.append(MigrationFile(match["version"], match["name"], path.read_text("utf-8")))
    return files


async def migrate_postgres(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations (and the shim, if needed); return the versions applied."""
    files, shim = await asyncio.to_thread(_read_all, directory)
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        if await conn.fetchval("select to_regprocedure('auth.uid()') is null"):
            await conn.execute(shim)
        if await conn.fetchval("select to_regclass('public.opencode_migrations')") is None:
            await conn.execute(BOOKKEEPING_SQL)
        ours = await conn.fetch("select version from public.opencode_migrations")
        applied = {row["version"] for row in ours} | await _supabase_cli_versions(conn)
        _refuse_unknown({row["version"] for row in ours}, files)
        pending = [file for file in files if file.version not in applied]
        for file in pending:
            await conn.execute(file.sql)
            await conn.execute(
                "insert into public.opencode_migrations (version, name) values ($1, $2)",
                file.version,
                file.name,
            )
    return [file.version for file in pending]


async def _supabase_cli_versions(conn: asyncpg.Connection) -> set[str]:
    """What ``supabase db push`` recorded, so a schema pushed with the CLI is not applied twice."""
    if not await conn.fetchval("select to_regclass('supabase_migrations.schema_migrations')"):
        return set()
    rows = await conn.fetch("select version::text from supabase_migrations.schema_migrations")
    return {row["version"] for row in rows}


def _read_all(directory: Path) -> tuple[list[MigrationFile], str]:
    return load_migrations(directory), SHIM_PATH.read_text("utf-8")


def _refuse_unknown(recorded: set[str], files: list[MigrationFile]) -> None:
    unknown = sorted(recorded - {file.version for file in files})
    if unknown:
        raise OpencodeError(
            f"The database has migrations this server does not know ({', '.join(unknown)}); "
            "upgrade the server or point DATABASE_URL at another database."
        )
