"""OpenCode API: an LLM agent server."""

__version__ = "0.1.0"
