"""Pick the ``Store`` backend for a ``DATABASE_URL``."""

from opencode.core.errors import OpencodeError

from .base import Store
from .sqlite import SqliteStore

_SQLITE_PREFIX = "sqlite:///"
SUPPORTED = "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:"


def create_store(database_url: str) -> Store:
    """Build (but do not open) the store; ``initialize()`` creates the file's directory.

    ``sqlite:///data/x.db`` is relative to the working directory and ``sqlite:////srv/x.db``
    is absolute, as in SQLAlchemy.
    """
    scheme = database_url.partition("://")[0] if "://" in database_url else ""
    if scheme != "sqlite":
        # Only the scheme goes into the message: the rest of a URL may hold a password.
        shown = f"scheme {scheme!r}" if scheme else "a value without a scheme"
        raise OpencodeError(
            f"DATABASE_URL has {shown}, which is not supported; use one of: {SUPPORTED}."
        )
    path = database_url.removeprefix(_SQLITE_PREFIX)
    if not database_url.startswith(_SQLITE_PREFIX) or not path or "?" in path:
        raise OpencodeError(
            f"DATABASE_URL {database_url!r} is not a SQLite URL this server understands "
            f"(no query options); use one of: {SUPPORTED}."
        )
    return SqliteStore(path)
