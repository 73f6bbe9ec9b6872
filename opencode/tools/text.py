"""Small text helpers shared by the web tools."""


def collapse_whitespace(text: str) -> str:
    """``text`` on one line: runs of whitespace (newlines included) become one space."""
    return " ".join(text.split())
