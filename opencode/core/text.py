"""Text from outside (model providers, tools, web pages) made safe to store and encode.

JSON can carry one half of a UTF-16 surrogate pair alone (``"\\ud83d"``): providers cut an emoji
between two chunks, and a model can write ``\\ud800`` inside tool arguments. Python decodes such
an escape into a lone surrogate code point, which no UTF-8 encoder (SQLite, PostgreSQL, pydantic's
JSON, the socket) accepts. NUL is refused by PostgreSQL text and jsonb. So provider text is
cleaned once, where it enters the system, and nothing downstream can fail on it.
"""

import re

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """``text`` without NUL characters and with every lone surrogate replaced by U+FFFD (a pair
    written as two code points becomes the character it encodes)."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", "") if "\x00" in text else text


def has_unsafe_text(text: str) -> bool:
    """True if ``text`` holds a NUL or a surrogate code point (what ``scrub`` would change)."""
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


def scrub_json(value: object) -> object:
    """``scrub`` applied to every string (keys included) in a parsed JSON value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_json(item) for item in value]
    if isinstance(value, dict):
        return {scrub(str(key)): scrub_json(item) for key, item in value.items()}
    return value


class StreamText:
    """One channel of streamed provider text (the reply, the reasoning, one tool call's
    arguments). Each piece is scrubbed; a high surrogate that ends a piece is held back until the
    next piece, so an emoji cut between two chunks reaches the user whole. ``flush`` at the end of
    the stream gives what is still held (U+FFFD for a high surrogate nothing followed)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        if self._held:
            piece, self._held = self._held + piece, ""
        elif piece.isascii():
            return piece.replace("\x00", "") if "\x00" in piece else piece
        if piece and "\ud800" <= piece[-1] <= "\udbff":
            piece, self._held = piece[:-1], piece[-1]
        return scrub(piece)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return REPLACEMENT if held else ""
