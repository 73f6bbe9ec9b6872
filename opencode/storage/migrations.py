"""Ordered schema migrations, applied by each backend at ``initialize()``.

A migration is a version number plus the statements that take the schema from the previous
version to this one. Versions are dense from 1, and the applied ones are recorded in a
``schema_migrations`` table (rather than SQLite's ``user_version``) so a Postgres backend can
keep the same bookkeeping with its own ``POSTGRES_MIGRATIONS`` of the same versions and names.

Never edit a migration that has shipped: append a new one.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from opencode.core.errors import OpencodeError
from opencode.core.ids import utc_now
from opencode.core.users import LOCAL_USER_ID

from .base import USAGE_KEYS
from .quota_schema import SQLITE_QUOTA_TABLES


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _token_columns() -> str:
    return ",\n    ".join(f"{key} INTEGER NOT NULL DEFAULT 0" for key in USAGE_KEYS)


_V1_INITIAL = (
    f"""CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    model TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    total_cost REAL NOT NULL DEFAULT 0.0,
    {_token_columns()}
)""",
    "CREATE INDEX sessions_by_recency ON sessions (updated_at DESC, id DESC)",
    """CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_id TEXT,
    model TEXT,
    content TEXT NOT NULL DEFAULT '',
    parts TEXT NOT NULL,
    usage TEXT NOT NULL,
    cost REAL NOT NULL DEFAULT 0.0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)""",
    # Pages are range queries on this index; UNIQUE also guards the dense seq invariant.
    "CREATE UNIQUE INDEX messages_by_seq ON messages (session_id, seq)",
    # Crash recovery only touches running messages, so it need not scan the table.
    "CREATE INDEX messages_running ON messages (session_id, seq) WHERE status = 'running'",
    f"""CREATE TABLE model_usage (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    cost REAL NOT NULL DEFAULT 0.0,
    steps INTEGER NOT NULL DEFAULT 0,
    {_token_columns()},
    PRIMARY KEY (session_id, model)
)""",
    """CREATE TABLE todos (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    todos TEXT NOT NULL
)""",
    """CREATE TABLE questions (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    questions TEXT NOT NULL,
    answers TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    "CREATE INDEX questions_by_session ON questions (session_id, created_at, id)",
    "CREATE INDEX questions_pending ON questions (created_at, id) WHERE status = 'pending'",
)

_V2_COMPACTIONS = (
    """CREATE TABLE compactions (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    messages_folded INTEGER NOT NULL DEFAULT 0,
    tokens_before INTEGER NOT NULL DEFAULT 0,
    tokens_after INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    summary_message_id TEXT,
    folded_through_seq INTEGER NOT NULL DEFAULT 0,
    compactions INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX compactions_running ON compactions (session_id) WHERE status = 'running'",
)

# A session's owner (a UUID, as Postgres stores it); rows written before owners existed belong
# to the local user. Messages, todos and the rest are reached through their session, so only
# sessions carry it. One owner's page is a range of this index, as the unfiltered page is of
# sessions_by_recency.
_V3_OWNERS = (
    "ALTER TABLE sessions ADD COLUMN user_id TEXT",
    f"UPDATE sessions SET user_id = '{LOCAL_USER_ID}' WHERE user_id IS NULL",
    "CREATE INDEX sessions_by_user_recency ON sessions (user_id, updated_at DESC, id DESC)",
)

SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1_INITIAL),
    Migration(2, "compaction state", _V2_COMPACTIONS),
    Migration(3, "session owners", _V3_OWNERS),
    Migration(4, "daily token quotas", SQLITE_QUOTA_TABLES),
)

_BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions must run 1, 2, 3, ... so "the latest applied version" says what is applied."""
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1..n in order, got {versions}")


async def schema_version(db: aiosqlite.Connection) -> int:
    """The latest applied version; 0 for a database no migration has touched."""
    await db.execute(_BOOKKEEPING)
    rows = list(await db.execute_fetchall("SELECT MAX(version) FROM schema_migrations"))
    return rows[0][0] or 0


async def migrate_sqlite(
    db: aiosqlite.Connection, migrations: Sequence[Migration] = SQLITE_MIGRATIONS
) -> int:
    """Apply the pending migrations in one transaction and return the resulting version.

    ``db`` must be in autocommit mode (``isolation_level=None``). BEGIN IMMEDIATE takes the
    write lock before reading the version, so two processes opening one file cannot both
    apply the same migration.
    """
    check_sequence(migrations)
    await db.execute("BEGIN IMMEDIATE")
    try:
        current = await schema_version(db)
        if current > len(migrations):
            raise OpencodeError(
                f"The database schema is at version {current} but this server only knows "
                f"versions up to {len(migrations)}; upgrade the server or point DATABASE_URL "
                "at another database."
            )
        for migration in migrations[current:]:
            for statement in migration.statements:
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_now().isoformat()),
            )
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return max(current, len(migrations))
