"""Process-wide logging: one line per record, level from ``OPENCODE_LOG_LEVEL`` (INFO)."""

import logging
import os


def configure_logging() -> None:
    level = os.environ.get("OPENCODE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
