"""SQLite tables for daily token quotas (migration 4); Postgres has them in supabase/migrations
(``20261204000001_daily_quotas.sql``), with the same columns and meaning.

Days are ``YYYY-MM-DD`` (UTC) and timestamps fixed-width UTC text, so text order is time order.
"""

SQLITE_QUOTA_TABLES: tuple[str, ...] = (
    """CREATE TABLE usage_daily (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_tokens INTEGER GENERATED ALWAYS AS (input_tokens + output_tokens) STORED,
    reserved_tokens INTEGER NOT NULL DEFAULT 0 CHECK (reserved_tokens >= 0),
    reserved_at TEXT,
    cost REAL NOT NULL DEFAULT 0.0,
    requests INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, day)
)""",
    """CREATE TABLE usage_daily_models (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_tokens INTEGER GENERATED ALWAYS AS (input_tokens + output_tokens) STORED,
    cost REAL NOT NULL DEFAULT 0.0,
    requests INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, day, model),
    FOREIGN KEY (user_id, day) REFERENCES usage_daily (user_id, day) ON DELETE CASCADE
)""",
    """CREATE TABLE user_limits (
    user_id TEXT PRIMARY KEY,
    daily_token_limit INTEGER NOT NULL CHECK (daily_token_limit >= 0),
    updated_at TEXT NOT NULL
)""",
)
