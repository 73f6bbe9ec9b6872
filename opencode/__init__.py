"""OpenCode API: an LLM agent server."""
