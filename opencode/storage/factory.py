"""Pick the ``Store`` backend from the configuration, and say which one in words safe to log.

* ``DATABASE_URL=postgresql://…`` (or ``postgres://``): PostgreSQL through asyncpg;
* ``SUPABASE_URL`` + ``SUPABASE_KEY`` and no ``DATABASE_URL``: Supabase over its REST API;
* otherwise SQLite (``DATABASE_URL=sqlite:///…``, by default ``./data/opencode.db``).
"""

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from opencode.core.errors import OpencodeError

from .base import Store

StoreKind = Literal["sqlite", "postgres", "supabase"]
DEFAULT_SQLITE_URL = "sqlite:///./data/opencode.db"
_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
SUPPORTED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:, "
    "postgresql://user:password@host:5432/database"
)


class StoreUnavailable(OpencodeError):
    """The configured store cannot be reached or used: one line, naming the variable and the
    host, never a password."""


@dataclass(frozen=True)
class StoreChoice:
    kind: StoreKind
    variable: str  # the setting that chose it: DATABASE_URL or SUPABASE_URL
    url: str  # as configured (may hold a password: never log it, log ``shown``)
    key: str | None = None  # SUPABASE_KEY

    @property
    def shown(self) -> str:
        return mask_url(self.url)

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        if self.kind == "sqlite":
            return self.url.removeprefix(_SQLITE_PREFIX)
        return (
            f"{parts.hostname or 'localhost'}:{parts.port}"
            if parts.port
            else (parts.hostname or "localhost")
        )


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def choose_store(
    database_url: str | None, supabase_url: str | None = None, supabase_key: str | None = None
) -> StoreChoice:
    """Which store the settings ask for; raises ``OpencodeError`` for a URL nobody supports."""
    if database_url:
        scheme = database_url.partition("://")[0] if "://" in database_url else ""
        if scheme in _POSTGRES_SCHEMES:
            return StoreChoice("postgres", "DATABASE_URL", database_url)
        if scheme != "sqlite":
            # Only the scheme goes into the message: the rest of a URL may hold a password.
            shown = f"scheme {scheme!r}" if scheme else "a value without a scheme"
            raise OpencodeError(
                f"DATABASE_URL has {shown}, which is not supported; use one of: {SUPPORTED}."
            )
        return StoreChoice("sqlite", "DATABASE_URL", database_url)
    if supabase_url:
        if not supabase_key:
            raise OpencodeError(
                "SUPABASE_URL is set but SUPABASE_KEY is not: set the project's service key "
                "(or DATABASE_URL to its Postgres connection string)."
            )
        return StoreChoice("supabase", "SUPABASE_URL", supabase_url, key=supabase_key)
    return StoreChoice("sqlite", "DATABASE_URL", DEFAULT_SQLITE_URL)


def build_store(choice: StoreChoice) -> Store:
    """Build (but do not open) the chosen store."""
    if choice.kind == "postgres":
        from .postgres import PostgresStore  # asyncpg is imported only when used

        return PostgresStore(choice.url)
    if choice.kind == "supabase":
        from .supabase_rest import SupabaseStore  # supabase-py is imported only when used

        return SupabaseStore(choice.url, choice.key or "")
    return create_store(choice.url)


def create_store(database_url: str) -> Store:
    """The store for a ``DATABASE_URL`` (SQLite or PostgreSQL); ``initialize()`` opens it.

    ``sqlite:///data/x.db`` is relative to the working directory and ``sqlite:////srv/x.db``
    is absolute, as in SQLAlchemy.
    """
    choice = choose_store(database_url)
    if choice.kind != "sqlite":
        return build_store(choice)
    path = database_url.removeprefix(_SQLITE_PREFIX)
    if not database_url.startswith(_SQLITE_PREFIX) or not path or "?" in path:
        raise OpencodeError(
            f"DATABASE_URL {database_url!r} is not a SQLite URL this server understands "
            f"(no query options); use one of: {SUPPORTED}."
        )
    from .sqlite import SqliteStore

    return SqliteStore(path)


def describe_failure(choice: StoreChoice, exc: BaseException) -> str:
    """One line for a store that could not be opened: the variable, the host, what went wrong
    (the exception's type and text, with the URL's password masked), never a traceback."""
    if isinstance(exc, OpencodeError):  # the store's own sentence already names the host
        reason = exc.message
    else:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if choice.url:
        parts = urlsplit(choice.url)
        if parts.password:
            reason = reason.replace(parts.password, "***")
    what = {"sqlite": "SQLite", "postgres": "PostgreSQL", "supabase": "Supabase"}[choice.kind]
    return f"{choice.variable}: cannot open {what} at {choice.host}: {reason}"
