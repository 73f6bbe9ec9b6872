"""A PostgREST-compatible server for tests that runs the real SQL on a real PostgreSQL.

No PostgREST binary can be installed here, so this ASGI app answers the subset of PostgREST's
API that supabase-py emits for simple CRUD, mounted at ``/rest/v1`` like Supabase's gateway. Use
it in-process (``httpx.ASGITransport(emulator)``) or on loopback (:class:`PostgrestServer`).
Behaviour was checked against the client (postgrest-py 2.34.1: ``base_request_builder.py``,
``_async/request_builder.py``, ``exceptions.py``) and PostgREST's source and docs at commit
4834678 (``docs/references/errors.rst``, ``src/library/PostgREST/{Error,RangeQuery,Response,
Plan}.hs``, ``Query/{PreQuery,QueryBuilder}.hs``, ``Auth/Jwt.hs``).

Reproduced:

* Auth: the token is ``Authorization: Bearer <jwt>``, else the ``apikey`` header, else none
  (the anon role). **The JWT signature is not verified** (a test server: tokens are decoded,
  never trusted for anything but picking the role); ``exp`` is checked with PostgREST's 30 s
  skew. Each request runs in one transaction that sets, like PostgREST's ``txVarQuery``,
  ``search_path``, ``role`` (the ``role`` claim, default anon), ``request.jwt.claims`` (with
  ``role`` added), ``request.method``, ``request.path`` and ``request.headers``, so grants and
  RLS apply for real. GET/HEAD, and RPC of stable/immutable functions, run read-only.
* Reads: ``select=`` (``*``, columns, ``alias:column``), filters ``[not.]eq|neq|gt|gte|lt|lte|
  like|ilike|in.(…)|is.null|true|false|unknown`` (values are text cast to the column's type),
  ``order=col[.asc|.desc][.nullsfirst|.nullslast],…``, ``limit``, ``offset``, ``max_rows``
  (Supabase's default 1000), ``Prefer: count=exact|planned|estimated`` (all exact),
  ``Content-Range`` and 200/206/416 as ``RangeQuery.rangeStatusHeader``, HEAD.
* ``Accept: application/vnd.pgrst.object+json``: one object, else 406 ``PGRST116`` (a mutation
  is rolled back). Response JSON is rendered by PostgreSQL (``json_agg``), as PostgREST does.
* POST (one object or an array; ``columns=``; without it all objects must have the same keys),
  upsert with ``Prefer: resolution=merge-duplicates|ignore-duplicates`` and ``on_conflict=``
  (default: the primary key), PATCH and DELETE with filters, ``Prefer: return=representation|
  minimal`` and their statuses (201, 200 for an upsert that inserted nothing, 204).
* RPC: ``POST /rpc/<fn>`` with named JSON arguments, ``GET``/``HEAD`` with query arguments;
  scalar → the value, ``setof`` → array, a composite → object, ``void`` → 204.
* Errors: ``{"code","message","details","hint"}`` with ``Proxy-Status``, SQLSTATEs mapped as
  ``mapSQLtoHTTP`` (see ``pg_status``) and the PGRST codes raised below.

Not reproduced. These fail loudly with 400 ``PGRST127``: embedding/joins and spreads,
``or=``/``and=``, JSON paths, casts and aggregates in ``select``, operators other than those
above (``cs``, ``fts``, ``match``, ``any``/``all``, …), the ``Range`` header, ``Prefer:
missing|tx|max-affected|timezone|params`` and ``handling=strict`` (other unknown preferences
are ignored, as PostgREST does), PUT, limit/order on PATCH/DELETE, filters/order/limit on RPC
results, an RPC body that is not an object of named arguments, the OpenAPI root; csv and other
media types get PostgREST's 406 ``PGRST107``. These differ quietly: no ``Preference-Applied``,
``Content-Location`` or ``Location`` headers; ``RAISE SQLSTATE 'PGRST'`` errors and variadic
parameters are not interpreted; an upsert with ``return=minimal`` always answers 201; no schema
cache (the catalog is read on every request, so no reload is ever needed); a database that
cannot be reached raises out of the app instead of answering 503 ``PGRST000``.
"""

import asyncio
import base64
import csv
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import jwt

from tests.fakes.loopback import ThreadedServer
from tests.fakes.supabase_auth import JWKS_PATH, SigningKeys, jwks_document

PREFIX = "/rest/v1/"
OBJECT_MEDIA = "application/vnd.pgrst.object+json"
ARRAY_MEDIA = ("application/json", "application/vnd.pgrst.array+json", "application/*", "*/*")
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})
COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
IS_VALUES = {"null": "null", "true": "true", "false": "false", "unknown": "unknown"}
COUNTS = ("exact", "planned", "estimated")
UNSUPPORTED_OPERATORS = {"cs", "cd", "ov", "sl", "sr", "nxl", "nxr", "adj", "fts", "plfts", "phfts"}
UNSUPPORTED_OPERATORS |= {"wfts", "match", "imatch", "isdistinct"}
UNSUPPORTED_PREFERENCES = {"missing", "tx", "max-affected", "timezone", "params"}
JWT_SKEW = 30  # seconds, PostgREST's allowedSkewSeconds (Auth/Jwt.hs)

# SQLSTATE -> HTTP status as PostgREST's mapSQLtoHTTP (src/library/PostgREST/Error.hs, commit
# 4834678; the table in docs/references/errors.rst): exact codes first, then two-char classes.
EXACT_STATUS = {"23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404}
EXACT_STATUS |= {"42P17": 500, "53400": 500, "57P01": 503, "P0001": 400}
CLASS_STATUS = {"08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500}
CLASS_STATUS |= {"38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500}
CLASS_STATUS |= {"57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500}

TX_VARS = """select set_config('search_path', $1, true), set_config('role', $2, true),
  set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true),
  set_config('request.path', $5, true), set_config('request.headers', $6, true)"""
TABLE_SQL = """select a.attname, format_type(a.atttypid, a.atttypmod),
  coalesce(a.attnum = any(i.indkey::int2[]), false)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_index i on i.indrelid = c.oid and i.indisprimary
where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'v', 'm', 'f', 'p')
order by a.attnum"""
FUNCTION_SQL = """select p.proretset, p.provolatile::text, p.prorettype = 'void'::regtype,
  t.typrelid <> 0 or p.prorettype = 'record'::regtype, p.pronargdefaults,
  coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
  array(select format_type(x, null) from unnest(p.proargtypes::oid[]) with ordinality u(x, i)
        order by i)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type t on t.oid = p.prorettype
where n.nspname = $1 and p.proname = $2 and p.prokind = 'f'"""


class PostgrestError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details, self.hint, self.headers = details, hint, headers or []

    def response(self) -> "Response":
        body = {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
        }
        headers = [*self.headers, ("proxy-status", f"PostgREST; error={self.code}")]
        return Response(self.status, json.dumps(body), headers)


def unsupported(what: str) -> PostgrestError:
    details = f"The PostgREST emulator (tests/fakes/postgrest.py) does not support {what}"
    return PostgrestError(400, "PGRST127", "Feature not implemented", details)


def parse_error(message: str) -> PostgrestError:
    return PostgrestError(400, "PGRST100", message)


def pg_status(sqlstate: str, message: str, authed: bool) -> int:
    if sqlstate == "42501":
        return 403 if authed else 401
    if sqlstate == "21000":  # pg-safeupdate's refusal is the client's fault, the rest ours
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":  # a JWT role that does not exist
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    return EXACT_STATUS.get(sqlstate) or CLASS_STATUS.get(sqlstate[:2], 400)


def from_pg(error: asyncpg.PostgresError, authed: bool) -> PostgrestError:
    status = pg_status(error.sqlstate, error.message, authed)
    headers = [("www-authenticate", "Bearer")] if status == 401 else []
    return PostgrestError(status, error.sqlstate, error.message, error.detail, error.hint, headers)


@dataclass
class Response:
    status: int
    body: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    media: str = "application/json"


@dataclass(frozen=True)
class Call:
    """One HTTP request as the emulator reads it."""

    method: str
    path: str  # below /rest/v1, e.g. "/notes" or "/rpc/fn"
    params: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.params if key == name), None)

    def int_param(self, name: str) -> int | None:
        value = self.param(name)
        if value is not None and not value.isdigit():
            raise parse_error(f"failed to parse {name} parameter ({value})")
        return None if value is None else int(value)

    @property
    def prefer(self) -> dict[str, str]:
        items = (item.strip().partition("=") for item in self.headers.get("prefer", "").split(","))
        prefer = {key: value for key, _, value in items if key}
        if unknown := (UNSUPPORTED_PREFERENCES & set(prefer)) or prefer.get("handling") == "strict":
            raise unsupported(f"the preference {unknown or 'handling=strict'} in Prefer")
        return prefer

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise PostgrestError(400, "PGRST102", "Empty or invalid json") from None


class Args(list):
    """Query parameters: ``add`` returns the ``$n`` placeholder of the value it appends."""

    def add(self, value: Any) -> str:
        self.append(value)
        return f"${len(self)}"


def ident(name: str) -> str:
    if not name or "\x00" in name:
        raise parse_error(f"invalid identifier ({name!r})")
    return '"' + name.replace('"', '""') + '"'


def split_list(text: str) -> list[str]:
    """PostgREST's comma lists (``in.(…)``, ``columns``, ``select``): items may be quoted."""
    return next(csv.reader([text], escapechar="\\"), [])


def unquote(name: str) -> str:
    return split_list(name)[0] if name.startswith('"') else name


# ---- auth ----


def jwt_error(code: str, message: str) -> PostgrestError:
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return PostgrestError(401, code, message, headers=[("www-authenticate", challenge)])


def request_claims(headers: dict[str, str]) -> dict[str, Any]:
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip()
    elif "apikey" in headers:
        token = headers["apikey"].strip()
    else:
        return {}
    if not token:
        raise jwt_error("PGRST301", "Empty JWT is sent in Authorization header")
    parts = token.split(".")
    if len(parts) != 3:
        raise jwt_error("PGRST301", f"Expected 3 parts in JWT; got {len(parts)}")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:  # what PostgREST says when a token's parts do not decode
        raise jwt_error("PGRST301", "JWT cryptographic operation failed") from None
    if not isinstance(claims, dict):
        raise jwt_error("PGRST303", "Parsing claims failed")
    exp = claims.get("exp")
    if exp is not None and (isinstance(exp, bool) or not isinstance(exp, int | float)):
        raise jwt_error("PGRST303", "The JWT 'exp' claim must be a number")
    if exp is not None and exp < time.time() - JWT_SKEW:
        raise jwt_error("PGRST303", "JWT expired")
    return claims


def wants_object(headers: dict[str, str]) -> bool:
    accepted = [media.strip() for media in headers.get("accept", "*/*").split(",")]
    for media in accepted:
        kind, *options = [part.strip() for part in media.split(";")]
        if any(not option.startswith(("q=", "charset=")) for option in options):
            continue  # e.g. nulls=stripped
        if kind in ARRAY_MEDIA:
            return False
        if kind == OBJECT_MEDIA:
            return True
    message = f"None of these media types are available: {', '.join(accepted)}"
    raise PostgrestError(406, "PGRST107", message)


# ---- the catalog ----


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: dict[str, str]  # name -> SQL type, in table order
    primary_key: tuple[str, ...]

    @property
    def sql(self) -> str:
        return f"{ident(self.schema)}.{ident(self.name)}"

    def column(self, name: str) -> str:
        return f"{self.sql}.{ident(name)}"

    def check_columns(self, names: list[str]) -> None:
        for name in names:
            if name not in self.columns:
                message = f"Could not find the '{name}' column of '{self.name}' in the schema cache"
                raise PostgrestError(400, "PGRST204", message)


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    params: dict[str, str]  # the named arguments passed, name -> SQL type, in declared order
    returns_set: bool
    composite: bool
    void: bool
    volatility: str  # 'i'mmutable, 's'table, 'v'olatile


async def find_table(conn: asyncpg.Connection, schema: str, name: str) -> Table:
    rows = await conn.fetch(TABLE_SQL, schema, name)
    if not rows:
        message = f"Could not find the table '{schema}.{name}' in the schema cache"
        raise PostgrestError(404, "PGRST205", message)
    columns = {row[0]: row[1] for row in rows}
    return Table(schema, name, columns, tuple(row[0] for row in rows if row[2]))


async def find_function(
    conn: asyncpg.Connection, schema: str, name: str, keys: set[str], method: str
) -> Function:
    """The overload whose named arguments cover ``keys`` (the rest having defaults)."""
    matches = []
    for row in await conn.fetch(FUNCTION_SQL, schema, name):
        returns_set, volatility, void, composite, defaults, names, modes, types = row
        inputs = [n for n, m in zip(names, modes or "i" * len(types), strict=False) if m in "ibv"]
        declared = dict(zip(inputs, types, strict=False))
        required = set(inputs[: len(inputs) - defaults])
        if keys <= set(declared) and required <= keys:
            params = {key: kind for key, kind in declared.items() if key in keys}
            matches.append(Function(schema, name, params, returns_set, composite, void, volatility))
    if len(matches) == 1:
        return matches[0]
    if matches:
        message = f"Could not choose the best candidate function between: {schema}.{name}"
        raise PostgrestError(300, "PGRST203", message)
    listed = ", ".join(sorted(keys))
    signature = f"({listed})" if keys else " without parameters"
    searched = f" with parameter{'s' if len(keys) > 1 else ''} {listed}" if keys else signature
    if method == "POST":
        searched += " or with a single unnamed json/jsonb parameter"
    raise PostgrestError(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}{signature} in the schema cache",
        f"Searched for the function {schema}.{name}{searched}, but no matches were found in the "
        "schema cache.",
    )


# ---- SQL fragments ----


def aggregate(singular: bool, row: str = "_postgrest_t") -> str:
    if singular:
        return f"coalesce((json_agg({row})->0)::text, 'null')"
    return f"coalesce(json_agg({row}), '[]')::text"


def projection(call: Call, table: Table, column: Callable[[str], str] = ident) -> str:
    """The ``select`` list; ``*`` is spelled out, so mutations never return ``pgrst_inserted``."""
    items = []
    for item in split_list(call.param("select") or "*"):
        if item == "*":
            items.extend(f"{column(name)} as {ident(name)}" for name in table.columns)
            continue
        if any(mark in item for mark in ("(", "->", "::", "...", "!")):
            raise unsupported(f"the select item '{item}' (embedding, JSON paths, casts)")
        alias, _, name = item.rpartition(":")
        items.append(f"{column(name)} as {ident(alias or name)}")
    return ", ".join(items)


def condition(table: Table, column: str, value: str, args: Args) -> str:
    negate = value.startswith("not.")
    operator, dot, operand = value.removeprefix("not.").partition(".")
    target, kind = table.column(column), table.columns.get(column, "text")
    if not dot:
        raise parse_error(f"failed to parse filter ({value})")
    if operator in COMPARISONS:
        sql = f"{target} {COMPARISONS[operator]} {args.add(operand)}::text::{kind}"
    elif operator in ("like", "ilike"):
        sql = f"{target} {operator} {args.add(operand.replace('*', '%'))}::text"
    elif operator == "in" and operand.startswith("(") and operand.endswith(")"):
        sql = f"{target} = any({args.add(split_list(operand[1:-1]))}::text[]::{kind}[])"
    elif operator == "is" and operand.lower() in IS_VALUES:
        sql = f"{target} is {IS_VALUES[operand.lower()]}"
    elif operator in UNSUPPORTED_OPERATORS or "(" in operator:  # e.g. eq(any)
        raise unsupported(f"the filter '{value}'")
    else:
        raise parse_error(f"failed to parse filter ({value})")
    return f"not ({sql})" if negate else sql


def where(call: Call, table: Table, args: Args) -> str:
    conditions = []
    for key, value in call.params:
        if key in RESERVED:
            continue
        if key in ("or", "and", "not.or", "not.and") or "." in key or "->" in key:
            raise unsupported(f"the filter key '{key}' (logic trees, embedded or JSON filters)")
        conditions.append(condition(table, unquote(key), value, args))
    return " where " + " and ".join(conditions) if conditions else ""


def order_by(call: Call, table: Table) -> str:
    terms = []
    for term in split_list(call.param("order") or ""):
        name, *modifiers = term.split(".")
        direction = [m for m in modifiers if m in ("asc", "desc")]
        nulls = [m for m in modifiers if m in ("nullsfirst", "nullslast")]
        if len(direction) > 1 or len(nulls) > 1 or len(direction) + len(nulls) < len(modifiers):
            raise parse_error(f"failed to parse order ({term})")
        sql = f"{table.column(name)} {direction[0] if direction else 'asc'}"
        terms.append(sql + (" nulls " + nulls[0][5:] if nulls else ""))
    return " order by " + ", ".join(terms) if terms else ""


def returning(table: Table, full: bool, inserted: bool = False) -> str:
    if not full:  # like PostgREST: no column is read back, so no SELECT grant or policy applies
        return " returning 1"
    return f" returning {table.sql}.*" + (", xmax = 0 as pgrst_inserted" if inserted else "")


def content_range(lower: int, upper: int, total: int | None) -> str:
    span = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    return f"{span}/{'*' if total is None else total}"


def range_status(lower: int, upper: int, total: int | None) -> int:
    if total is None:
        return 200
    if lower > total:
        return 416
    return 206 if 1 + upper - lower < total else 200


def singular_error(rows: int) -> PostgrestError:
    message = "Cannot coerce the result to a single JSON object"
    return PostgrestError(406, "PGRST116", message, f"The result contains {rows} rows")


# ---- handlers: each runs inside the request's transaction ----


async def read(
    conn: asyncpg.Connection, call: Call, table: Table, singular: bool, max_rows: int | None
) -> Response:
    args = Args()
    filters = where(call, table, args)
    lower, limit = call.int_param("offset") or 0, call.int_param("limit")
    if max_rows is not None:
        limit = max_rows if limit is None else min(limit, max_rows)
    page = f" limit {args.add(limit)}::bigint" if limit is not None else ""
    page += f" offset {args.add(lower)}::bigint" if lower else ""
    counted = call.prefer.get("count") in COUNTS
    total_sql = f"(select count(*) from {table.sql}{filters})" if counted else "null::bigint"
    body, rows, total = await conn.fetchrow(
        f"select {aggregate(singular)}, count(*), {total_sql} from (select "
        f"{projection(call, table, table.column)} from {table.sql}{filters}{order_by(call, table)}{page}) _postgrest_t",
        *args,
    )
    if singular and rows != 1:
        raise singular_error(rows)
    upper = lower + rows - 1
    headers = [("content-range", content_range(lower, upper, total))]
    status = range_status(lower, upper, total)
    if status == 416:
        details = f"An offset of {lower} was requested, but there are only {total} rows."
        raise PostgrestError(
            416, "PGRST103", "Requested range not satisfiable", details, None, headers
        )
    return Response(status, body, headers)


def insert(call: Call, table: Table, args: Args, full: bool) -> tuple[str, bool]:
    payload = call.json()
    rows = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(row, dict) for row in rows):
        raise PostgrestError(400, "PGRST102", "All object keys must match")
    if (spec := call.param("columns")) is not None:
        columns = [name.strip() for name in split_list(spec)]
    elif len({frozenset(row) for row in rows}) > 1:
        raise PostgrestError(400, "PGRST102", "All object keys must match")
    else:
        columns = list(rows[0]) if rows else []
    table.check_columns(columns)
    names = ", ".join(ident(name) for name in columns)
    statement = (
        f"insert into {table.sql}{f' ({names})' if columns else ''} select {names} "
        f"from json_populate_recordset(null::{table.sql}, {args.add(json.dumps(rows))}::json)"
    )
    resolution = call.prefer.get("resolution")
    if resolution in ("merge-duplicates", "ignore-duplicates"):
        target = call.param("on_conflict")
        keys = [name.strip() for name in split_list(target)] if target else table.primary_key
        if keys:
            statement += f" on conflict ({', '.join(ident(key) for key in keys)}) "
            updates = ", ".join(f"{ident(c)} = excluded.{ident(c)}" for c in columns)
            merge = resolution == "merge-duplicates" and columns
            statement += f"do update set {updates}" if merge else "do nothing"
    merging = resolution == "merge-duplicates"
    return statement + returning(table, full, inserted=merging and full), merging


def update(call: Call, table: Table, args: Args, full: bool) -> str:
    payload = call.json()
    if not isinstance(payload, dict):
        raise unsupported("a PATCH body that is not one JSON object")
    table.check_columns(list(payload))
    if not payload:  # PostgREST: an empty body updates nothing
        return f"select {table.sql}.* from {table.sql} where false"
    sets = ", ".join(f"{ident(c)} = pgrst_body.{ident(c)}" for c in payload)
    body = f"(select * from json_populate_record(null::{table.sql}, {args.add(json.dumps(payload))}::json)) pgrst_body"
    return f"update {table.sql} set {sets} from {body}{where(call, table, args)}{returning(table, full)}"


async def mutate(conn: asyncpg.Connection, call: Call, table: Table, singular: bool) -> Response:
    if any(call.param(name) is not None for name in ("limit", "offset", "order")):
        raise unsupported("limit, offset or order on a mutation")
    full = call.prefer.get("return") == "representation"
    args, merging = Args(), False
    if call.method == "POST":
        statement, merging = insert(call, table, args, full)
    elif call.method == "PATCH":
        statement = update(call, table, args, full)
    else:
        statement = f"delete from {table.sql}{where(call, table, args)}{returning(table, full)}"
    body_sql = f"(select {aggregate(singular)} from (select {projection(call, table)} from pgrst_source) _postgrest_t)"
    inserted_sql = "(select count(*) filter (where pgrst_inserted) from pgrst_source)"
    body, rows, inserted = await conn.fetchrow(
        f"with pgrst_source as ({statement}) select {body_sql if full else 'null::text'}, "
        f"(select count(*) from pgrst_source), {inserted_sql if merging and full else 'null::bigint'}",
        *args,
    )
    if singular and rows != 1:
        raise singular_error(rows)  # raised inside the transaction: the change is rolled back
    total = rows if call.prefer.get("count") in COUNTS else None
    status = 200 if full else 204
    if call.method == "POST":  # PostgREST: 200 for an upsert that inserted nothing, else 201
        status = 200 if inserted == 0 else 201
    lower, upper = (0, rows - 1) if call.method == "PATCH" else (1, 0)
    return Response(status, body, [("content-range", content_range(lower, upper, total))])


async def call_function(
    conn: asyncpg.Connection,
    call: Call,
    function: Function,
    arguments: dict[str, Any],
    singular: bool,
) -> Response:
    args = Args()
    passed = ", ".join(f"{ident(name)} := pgrst_body.{ident(name)}" for name in function.params)
    invocation = f"{ident(function.schema)}.{ident(function.name)}({passed})"
    source = ""
    if function.params:
        columns = ", ".join(f"{ident(name)} {kind}" for name, kind in function.params.items())
        source = f"json_to_record({args.add(json.dumps(arguments))}::json) as pgrst_body({columns}), lateral "
    if function.composite:
        source, row = f"{source}{invocation} pgrst_call", "pgrst_call"
    else:
        source, row = (
            f"{source}(select {invocation} pgrst_scalar) pgrst_call",
            "pgrst_call.pgrst_scalar",
        )
    one = singular or not function.returns_set
    body, rows = await conn.fetchrow(f"select {aggregate(one, row)}, count(*) from {source}", *args)
    if function.void:
        return Response(204)
    if singular and rows != 1:
        raise singular_error(rows)
    total = rows if call.prefer.get("count") in COUNTS else None
    return Response(200, body, [("content-range", content_range(0, rows - 1, total))])


# ---- the app ----


class PostgrestEmulator:
    """The ASGI app. Its asyncpg pool is created by the first request, in that request's event
    loop; use one emulator per loop and ``await aclose()`` in the same loop."""

    def __init__(
        self,
        database_url: str,
        *,
        schemas: tuple[str, ...] = ("public",),
        anon_role: str = "anon",
        max_rows: int | None = 1000,
        jwks: dict[str, Any] | SigningKeys | None = None,
    ) -> None:
        self.database_url = database_url
        self.jwks = jwks  # if given, also served at JWKS_PATH: Supabase has auth under one URL
        self.schemas, self.anon_role, self.max_rows = schemas, anon_role, max_rows
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pool: asyncio.Task[asyncpg.Pool] | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self.loop = asyncio.get_running_loop()
            self._pool = asyncio.ensure_future(self._create_pool())
        elif self.loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "a PostgrestEmulator is bound to the event loop of its first request"
            )
        return await asyncio.shield(self._pool)

    async def _create_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(self.database_url, min_size=1, max_size=5)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = await self._pool, None
            await pool.close()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        path = scope["path"]
        call = Call(scope["method"], path.removeprefix(PREFIX[:-1]), query, headers, body)
        try:
            if self.jwks is not None and path == JWKS_PATH:
                response = Response(200, json.dumps(jwks_document(self.jwks)))
            elif not path.startswith(PREFIX):
                raise PostgrestError(404, "PGRST125", "Invalid path specified in request URL")
            else:
                response = await self._handle(call)
        except PostgrestError as error:
            response = error.response()
        await send_response(send, response, head=call.method == "HEAD")

    async def _handle(self, call: Call) -> Response:
        if "range" in call.headers:
            raise unsupported("the Range header (supabase-py sends limit and offset)")
        claims = request_claims(call.headers)
        role = str(claims.get("role", self.anon_role))
        header = "accept-profile" if call.method in ("GET", "HEAD") else "content-profile"
        schema = call.headers.get(header, self.schemas[0])
        if schema not in self.schemas:
            hint = f"Only the following schemas are exposed: {', '.join(self.schemas)}"
            raise PostgrestError(406, "PGRST106", f"Invalid schema: {schema}", None, hint)
        singular = wants_object(call.headers)
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            try:
                run, readonly = await self._plan(conn, call, schema, singular)
                async with conn.transaction(readonly=readonly):
                    search_path = ident(schema) + (', "public"' if schema != "public" else "")
                    tx_vars = (json.dumps(claims | {"role": role}), call.method, call.path)
                    await conn.execute(
                        TX_VARS, search_path, role, *tx_vars, json.dumps(call.headers)
                    )
                    response = await run(conn)
            except asyncpg.PostgresError as error:
                raise from_pg(error, authed=role != self.anon_role) from None
        if singular and response.body is not None:
            response.media = OBJECT_MEDIA
        return response

    async def _plan(
        self, conn: asyncpg.Connection, call: Call, schema: str, singular: bool
    ) -> tuple[Callable[[asyncpg.Connection], Awaitable[Response]], bool]:
        """What to run for this request, and whether its transaction is read-only."""
        _, resource, *rest = call.path.split("/")
        if resource == "rpc" and len(rest) == 1 and rest[0]:
            arguments = rpc_arguments(call)
            function = await find_function(conn, schema, rest[0], set(arguments), call.method)
            readonly = call.method != "POST" or function.volatility in "is"  # as Plan.hs
            run = partial(call_function, call=call, function=function, arguments=arguments)
            return partial(run, singular=singular), readonly
        if rest or not resource:
            raise unsupported(f"the path {call.path} (OpenAPI root, nested paths)")
        table = await find_table(conn, schema, resource)
        if call.method in ("GET", "HEAD"):
            run = partial(read, call=call, table=table, max_rows=self.max_rows)
        elif call.method in ("POST", "PATCH", "DELETE"):
            run = partial(mutate, call=call, table=table)
        elif call.method == "PUT":
            raise unsupported("PUT (single-row upsert)")
        else:
            raise PostgrestError(405, "PGRST117", f"Unsupported HTTP method: {call.method}")
        return partial(run, singular=singular), call.method in ("GET", "HEAD")


def rpc_arguments(call: Call) -> dict[str, Any]:
    """Named arguments: the JSON object of a POST, or the query string of a GET/HEAD."""
    if call.method not in ("GET", "HEAD", "POST"):
        raise PostgrestError(405, "PGRST101", f"Cannot use the {call.method} method on RPC")
    if call.method == "POST":
        arguments = call.json() if call.body else {}
        if call.params or not isinstance(arguments, dict):
            raise unsupported("query parameters on a POST RPC or an unnamed argument")
        return arguments
    if RESERVED & {key for key, _ in call.params}:
        raise unsupported("select, order or limit on an RPC result")
    return dict(call.params)


async def send_response(send: Callable, response: Response, *, head: bool) -> None:
    body = b"" if response.body is None else response.body.encode()
    headers = [(k.encode(), v.encode()) for k, v in response.headers]
    if response.body is not None:
        headers.append((b"content-type", f"{response.media}; charset=utf-8".encode()))
    if not head:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class PostgrestServer:
    """The emulator on ``127.0.0.1:<free port>`` (uvicorn in a daemon thread); ``url`` is the
    project URL to give supabase-py, which appends ``/rest/v1``. Use as a context manager."""

    def __init__(self, database_url: str, **options: Any) -> None:
        self.app = PostgrestEmulator(database_url, **options)
        self.url = ""
        self._loopback = ThreadedServer(self.app, "postgrest emulator")

    def start(self) -> "PostgrestServer":
        self.url = f"http://127.0.0.1:{self._loopback.start()}"
        return self

    def stop(self) -> None:
        loop = self.app.loop  # the pool lives in uvicorn's loop: close it there
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self.app.aclose(), loop).result(timeout=5)
        self._loopback.stop()

    def __enter__(self) -> "PostgrestServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def signed_token(role: str, sub: str | None = None, lifetime: int = 3600) -> str:
    """A Supabase-style JWT for ``role`` (and user ``sub``): what a test sends as a key or a
    user's token. Signed with a throwaway secret, since the emulator reads claims only."""
    now = int(time.time())
    claims: dict[str, Any] = {"role": role, "iss": "supabase", "iat": now, "exp": now + lifetime}
    if sub is not None:
        claims |= {"sub": sub, "aud": "authenticated"}
    return jwt.encode(claims, "test-secret-that-the-emulator-never-checks!", algorithm="HS256")
