"""Wire models and field types shared by several resources."""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, GetJsonSchemaHandler, PlainSerializer

from opencode.core.text import has_unsafe_text

MONEY_DECIMALS = 10


def _money(value: float) -> float:
    return round(value, MONEY_DECIMALS)


Money = Annotated[
    float,
    PlainSerializer(_money, return_type=float),
    Field(description="USD, rounded to 1e-10 (sums of per-token prices carry float noise)"),
]
"""A dollar amount: stored and summed at full precision, rounded only when it is sent."""


UNSAFE_TEXT = (
    "Text must not contain NUL characters (\\u0000) or unpaired UTF-16 surrogates "
    "(\\ud800-\\udfff); send valid Unicode."
)


def _safe_text(text: str) -> str:
    # A JSON "\ud800" escape decodes to a lone surrogate, which no UTF-8 encoder (database,
    # socket) accepts, and PostgreSQL refuses NUL: refuse both where they come in.
    if has_unsafe_text(text):
        raise ValueError(UNSAFE_TEXT)
    return text


@dataclass(frozen=True)
class SchemaHint:
    """Tells the OpenAPI schema (clients, fuzzers) a constraint a validator or a service
    enforces (``pattern``, ``enum``), without pydantic enforcing it: their messages are clearer."""

    pattern: str | None = None
    enum: tuple[str, ...] | None = None

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> Any:
        schema = handler.resolve_ref_schema(handler(core_schema))
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        return schema


PROVIDER_IDS = ("anthropic", "openai", "gemini")  # the catalog's (a test keeps them equal)
NO_NUL = SchemaHint(pattern="^[^\\u0000]*$")  # lone surrogates cannot be written in a pattern
# a name: something, and no surrounding whitespace (400 with the right spelling otherwise)
NAME = SchemaHint(pattern="^[^\\s\\u0000/](?:[^\\u0000]*[^\\s\\u0000/])?$")

SAFE_TEXT = AfterValidator(_safe_text)
"""Put after a ``Field``'s length limits: inside ``X | None`` pydantic cannot move limits that
follow a validator onto the string, and reports them as "items"."""
SafeStr = Annotated[str, SAFE_TEXT, NO_NUL]
"""Request text without NUL and without lone surrogates (422 otherwise)."""
ProviderId = Annotated[str, Field(max_length=100), SAFE_TEXT, SchemaHint(enum=PROVIDER_IDS)]
ModelId = Annotated[str, Field(max_length=200), SAFE_TEXT, NAME]


class UsageOut(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class ErrorOut(BaseModel):
    error: str = Field(description="What kind of error, e.g. not_found, bad_host, conflict")
    detail: str = Field(description="What was wrong and what to do about it")


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the field")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. missing, string_too_short")


class ValidationErrorOut(ErrorOut):
    """422: ``detail`` reads as sentences; ``errors`` lists each problem (input not echoed)."""

    errors: list[ValidationProblem] = Field(
        default_factory=list,
        description="One entry per schema problem; empty when a check beyond the schema failed "
        "(e.g. a tool this server does not have)",
    )


class BusyOut(ErrorOut):
    """409 while a turn runs: ``message_id`` is the reply being generated."""

    message_id: str | None = None


class QuotaOut(ErrorOut):
    """429 when the caller's daily token quota is spent (``Retry-After``: until it resets)."""

    limit: int = Field(description="Tokens per UTC day for this user")
    used: int = Field(description="Tokens used today")
    resets_at: str = Field(description="The next UTC midnight (ISO 8601)")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "shutting_down"] = Field(
        description="degraded (with 503) while the store does not answer; shutting_down (with "
        "503) once the server drains for a shutdown"
    )
    version: str
    store: Literal["sqlite", "postgres", "supabase"] | None = Field(
        None, description="The store in use (DATABASE_URL / SUPABASE_URL)"
    )
    ok: bool = Field(True, description="Whether the store answered just now")
