"""A ``DATABASE_URL`` for asyncpg: Supabase's connection strings as they are copied.

Supabase offers three: direct (port 5432), session pooler (5432 on ``pooler.supabase.com``)
and transaction pooler (6543). A transaction pooler hands each transaction to whichever server
connection is free, so a statement prepared on one is unknown on the next: asyncpg's statement
cache must be off (``statement_cache_size=0``). That follows from port 6543, from
``?pgbouncer=true`` (the Prisma convention, often pasted along) or from
``?statement_cache_size=0`` itself.

asyncpg sends every query option it does not know to the server as a setting, and the server
refuses unknown ones; so options meant for other clients (``connection_limit``, ``pgbouncer``,
...) are removed here, and only their names are reported, since values may be secrets.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

TRANSACTION_POOLER_PORT = 6543
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds; asyncpg's own default is 60

# Query options asyncpg 0.32 reads from a DSN (connect_utils._parse_connect_dsn_and_args), and
# application_name, which it passes on as a server setting the server knows.
ASYNCPG_OPTIONS = frozenset(
    {
        "host",
        "port",
        "dbname",
        "database",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslnegotiation",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "service",
        "application_name",
    }
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>\d*))?$")


@dataclass(frozen=True)
class PostgresDsn:
    dsn: str = field(repr=False)  # for asyncpg: the URL without the options it would misread
    where: str  # host[:port]/database, for messages (never the password)
    user: str | None
    statement_cache_size: int | None  # None: asyncpg's default
    connect_timeout: float
    ignored: tuple[str, ...] = ()  # names of the options removed
    password: str | None = field(default=None, repr=False)  # only to scrub it from messages

    def scrub(self, text: str) -> str:
        """``text`` with the password (as written and percent-decoded) replaced by ``***``."""
        for secret in {self.password, unquote(self.password or "")} - {None, ""}:
            text = text.replace(secret, "***")
        return text


def parse_dsn(url: str) -> PostgresDsn:
    """Split ``url`` into what asyncpg understands and the pooler settings it implies.

    Raises ValueError (naming no secret) for a URL that is not ``postgresql://`` or
    ``postgres://``, or whose own options (``statement_cache_size``, ...) are not numbers."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("a PostgreSQL URL starts with postgresql:// or postgres://")
    password = parts.password
    options = parse_qsl(parts.query, keep_blank_values=True)
    kept: list[tuple[str, str]] = []
    ignored: list[str] = []
    cache_size: int | None = None
    timeout = DEFAULT_CONNECT_TIMEOUT
    for name, value in options:
        if name == "statement_cache_size":
            cache_size = _non_negative_int(name, value)
        elif name == "pgbouncer":
            if value.lower() in _TRUE:
                cache_size = 0
        elif name == "connect_timeout":  # libpq's, in seconds
            timeout = float(_non_negative_int(name, value)) or DEFAULT_CONNECT_TIMEOUT
        elif name in ASYNCPG_OPTIONS:
            kept.append((name, value))
        else:
            ignored.append(name)
    query = dict(kept)
    hosts, ports = _hosts_and_ports(parts.netloc.rpartition("@")[2], query)
    if str(TRANSACTION_POOLER_PORT) in ports:
        cache_size = 0
    database = query.get("dbname") or query.get("database") or parts.path.lstrip("/")
    where = ",".join(hosts) + (f"/{unquote(database)}" if database else "")
    return PostgresDsn(
        dsn=urlunsplit(parts._replace(query=urlencode(kept))),
        where=where,
        user=query.get("user") or (unquote(parts.username) if parts.username else None),
        statement_cache_size=cache_size,
        connect_timeout=timeout,
        ignored=tuple(ignored),
        password=query.get("password") or password,
    )


def _hosts_and_ports(hostspec: str, query: dict[str, str]) -> tuple[list[str], set[str]]:
    """The hosts as written (``h1:5432,h2``) and every port they or ``?port=`` name."""
    hosts, ports = [], set()
    for item in filter(None, unquote(hostspec).split(",")):
        match = _HOST_PORT.match(item)
        hosts.append(item)
        if match and match["port"]:
            ports.add(match["port"])
    if "host" in query:
        hosts = query["host"].split(",")
    if "port" in query:
        ports |= set(query["port"].split(","))
    return hosts or ["localhost"], ports


def _non_negative_int(name: str, value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"the PostgreSQL URL option {name} must be a whole number >= 0")
    return int(value)
