"""Secrets out of error text before it is streamed, stored or logged.

A provider or gateway may echo the request's ``Authorization`` header, or a URL holding a key,
in its error body. Two nets catch that: the values of the configured secrets (registered once at
startup, process-wide like the logging configuration) and anything shaped like a bearer token or
a well-known API key format.
"""

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_MIN_SECRET = 6  # shorter values would redact ordinary words

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <token> / Basic <base64>
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{REDACTED}"),
    # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), and other sk- style keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), REDACTED),
    # Google (Gemini) API keys
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),
    # Tavily, xAI, Groq, Hugging Face, GitHub, GitLab, Replicate, Perplexity, Brave-style keys
    (
        re.compile(
            r"\b(?:tvly|xai|gsk|hf|ghp|gho|ghs|github_pat|glpat|r8|pplx|BSA)[-_]?[A-Za-z0-9_-]{16,}"
        ),
        REDACTED,
    ),
    # JWTs (Supabase keys and access tokens)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"), REDACTED),
    # key=..., api_key: "...", x-api-key: ..., access_token=... in URLs, headers and JSON
    (
        re.compile(
            r"(?i)\b((?:x-)?(?:api[-_]?key|goog-api-key|access[-_]?token|secret|password|key|token)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}\[\]]{6,}"
        ),
        rf"\1{REDACTED}",
    ),
)

_secrets: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Add configured secret values (API keys, passwords) to what ``redact`` removes."""
    _secrets.update(value for value in values if value and len(value) >= _MIN_SECRET)


def redact(text: str) -> str:
    """``text`` with registered secrets and anything that looks like a credential replaced."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
