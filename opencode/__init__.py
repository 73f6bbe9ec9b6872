"""OpenCode API: an LLM agent server."""

# Before any submodule can import LiteLLM: it must not reach the internet at import time.
import opencode.core.env  # noqa: F401

__version__ = "0.1.0"
