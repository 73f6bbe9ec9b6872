"""Configuration from the environment (and a ``.env`` file), validated once at startup."""

import logging
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = tuple(logging.getLevelNamesMapping())
SECRET_FIELDS = (
    "anthropic_api_key",
    "openai_api_key",
    "gemini_api_key",
    "tavily_api_key",
    "brave_api_key",
    "exa_api_key",
    "server_password",
    "supabase_key",
    "supabase_jwt_secret",
    "admin_token",
)
AuthMode = Literal["none", "password", "supabase"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    port: int = Field(7860, alias="PORT")
    host: str = Field("127.0.0.1", alias="OPENCODE_HOST")
    # unset: SQLite in ./data/opencode.db, unless SUPABASE_URL + SUPABASE_KEY are set
    database_url: str | None = Field(None, alias="DATABASE_URL")
    supabase_url: str | None = Field(None, alias="SUPABASE_URL")
    supabase_key: str | None = Field(None, alias="SUPABASE_KEY")
    log_level: str = Field("INFO", alias="OPENCODE_LOG_LEVEL")
    log_sql: bool = Field(False, alias="OPENCODE_LOG_SQL")

    default_model: str | None = Field(None, alias="OPENCODE_MODEL")
    title_model: str | None = Field(None, alias="OPENCODE_TITLE_MODEL")

    server_password: str | None = Field(None, alias="OPENCODE_SERVER_PASSWORD")
    # unset: "password" with OPENCODE_SERVER_PASSWORD, else "supabase" with SUPABASE_URL, else none
    auth: AuthMode | None = Field(None, alias="OPENCODE_AUTH")
    supabase_jwt_secret: str | None = Field(None, alias="SUPABASE_JWT_SECRET")
    jwt_audience: str = Field("authenticated", alias="OPENCODE_JWT_AUDIENCE", min_length=1)
    admin_token: str | None = Field(None, alias="OPENCODE_ADMIN_TOKEN", min_length=16)
    daily_token_limit: int = Field(0, alias="OPENCODE_DAILY_TOKEN_LIMIT", ge=0)
    max_body_bytes: int = Field(1024 * 1024, alias="OPENCODE_MAX_BODY_BYTES", gt=0)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="OPENCODE_CORS_ORIGINS"
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="OPENCODE_ALLOWED_HOSTS"
    )
    header_timeout: float = Field(10.0, alias="OPENCODE_HEADER_TIMEOUT", gt=0)
    body_timeout: float = Field(30.0, alias="OPENCODE_BODY_TIMEOUT", gt=0)
    max_connections: int = Field(2048, alias="OPENCODE_MAX_CONNECTIONS", ge=16)
    shutdown_grace: float = Field(10.0, alias="OPENCODE_SHUTDOWN_GRACE", ge=0)

    question_timeout: float = Field(600.0, alias="OPENCODE_QUESTION_TIMEOUT", gt=0)
    keepalive_seconds: float = Field(3.0, alias="OPENCODE_KEEPALIVE_SECONDS", gt=0)
    max_retries: int = Field(3, alias="OPENCODE_MAX_RETRIES", ge=0, le=10)
    retry_base_delay: float = Field(1.0, alias="OPENCODE_RETRY_BASE_DELAY", ge=0)
    retry_max_delay: float = Field(30.0, alias="OPENCODE_RETRY_MAX_DELAY", ge=0)
    max_output_tokens: int | None = Field(None, alias="OPENCODE_MAX_OUTPUT_TOKENS", gt=0)
    stream_idle_timeout: float = Field(300.0, alias="OPENCODE_STREAM_IDLE_TIMEOUT", gt=0)
    native_openai: bool = Field(True, alias="OPENCODE_NATIVE_OPENAI")
    native_anthropic: bool = Field(True, alias="OPENCODE_NATIVE_ANTHROPIC")
    native_gemini: bool = Field(True, alias="OPENCODE_NATIVE_GEMINI")
    max_step_output_chars: int = Field(2_000_000, alias="OPENCODE_MAX_STEP_OUTPUT_CHARS", ge=1000)
    turn_timeout: float = Field(1800.0, alias="OPENCODE_TURN_TIMEOUT", gt=0)

    compact_messages: int = Field(50, alias="OPENCODE_COMPACT_MESSAGES", ge=4)
    compact_ratio: float = Field(0.8, alias="OPENCODE_COMPACT_RATIO", gt=0, le=1)

    webfetch_allow_private: bool = Field(False, alias="OPENCODE_WEBFETCH_ALLOW_PRIVATE")
    webfetch_max_chars: int = Field(50_000, alias="OPENCODE_WEBFETCH_MAX_CHARS", gt=0)
    search_provider: str | None = Field(None, alias="OPENCODE_SEARCH_PROVIDER")
    tavily_api_key: str | None = Field(None, alias="TAVILY_API_KEY")
    brave_api_key: str | None = Field(None, alias="BRAVE_API_KEY")
    exa_api_key: str | None = Field(None, alias="EXA_API_KEY")
    searxng_url: str | None = Field(None, alias="SEARXNG_URL")

    anthropic_api_key: str | None = Field(None, alias="ANTHROPIC_API_KEY")
    openai_api_key: str | None = Field(None, alias="OPENAI_API_KEY")
    gemini_api_key: str | None = Field(
        None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    openai_api_base: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_BASE", "OPENAI_BASE_URL")
    )
    anthropic_api_base: str | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")
    )
    gemini_api_base: str | None = Field(None, alias="GEMINI_API_BASE")

    @property
    def auth_mode(self) -> AuthMode:
        if self.auth is not None:
            return self.auth
        if self.server_password:
            return "password"
        return "supabase" if self.supabase_url else "none"

    @model_validator(mode="after")
    def _auth_is_complete(self) -> "Settings":
        mode = self.auth_mode
        if mode == "password" and not self.server_password:
            raise ValueError("OPENCODE_AUTH=password needs OPENCODE_SERVER_PASSWORD")
        if mode == "supabase" and not self.supabase_url:
            raise ValueError(
                "OPENCODE_AUTH=supabase needs SUPABASE_URL (its /auth/v1 issues the tokens)"
            )
        return self

    def secret_values(self) -> list[str]:
        """The configured secrets, so error text and logs can be scrubbed of them."""
        return [value for name in SECRET_FIELDS if (value := getattr(self, name))]

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return _split_csv(value) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_log_level(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        level = value.upper()
        if level not in LOG_LEVELS:
            known = ", ".join(LOG_LEVELS)
            raise ValueError(f"OPENCODE_LOG_LEVEL={value!r} is not a log level; use one of {known}")
        return level


def _split_csv(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def load_settings() -> Settings:
    """The settings, or exit with one line per problem (no traceback) when some are invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for problem in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(
                f"opencode: invalid setting {where}: {message}" if where else f"opencode: {message}"
            )
        raise SystemExit("\n".join(lines)) from None
