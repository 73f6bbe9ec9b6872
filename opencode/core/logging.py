"""Process-wide logging: one line per record, at ``Settings.log_level`` (``OPENCODE_LOG_LEVEL``).

Every line goes through ``redact`` (tracebacks included), so a key echoed in a provider's error
never reaches the log. Database drivers log each statement with its parameters at DEBUG, which is
conversation text: they stay at WARNING unless ``OPENCODE_LOG_SQL`` asks for them. sse-starlette
logs every frame it sends at DEBUG (the reply's text, token by token): it stays at WARNING.
"""

import logging

from opencode.core.redact import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore", "sse_starlette")
SQL_DRIVERS = ("aiosqlite", "asyncpg", "postgrest", "supabase")


class OneLineErrors(logging.Filter):
    """For a library that logs an expected, retried failure with its traceback (asyncpg's pool
    while the database is down, every few seconds): keep the line, and the exception as one
    line instead of a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


ONE_LINE_LOGGERS = ("asyncpg.pool",)


class RedactedArgs(logging.Filter):
    """For ``uvicorn app:app``, whose access log has uvicorn's own handler and formatter: the
    request path's query string can hold ``?access_token=`` (an ``EventSource`` cannot send
    headers), so the record's arguments are redacted before any handler formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


REDACTED_ARGS_LOGGERS = ("uvicorn.access",)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str, *, log_sql: bool = False) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(FORMAT))
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ONE_LINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineErrors) for f in logger.filters):
            logger.addFilter(OneLineErrors())
    for name in REDACTED_ARGS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactedArgs) for f in logger.filters):
            logger.addFilter(RedactedArgs())
    for driver in SQL_DRIVERS:
        logging.getLogger(driver).setLevel(logging.NOTSET if log_sql else logging.WARNING)
