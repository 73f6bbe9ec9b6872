"""What ``webfetch`` shows of a fetched page: HTML as Markdown or plain text, JSON pretty-printed.

HTML is converted by html-to-markdown (Rust): it drops scripts, styles, navigation, forms and
hidden content, makes links absolute and writes Markdown or plain text, ~20x faster than the
BeautifulSoup + markdownify pipeline it replaced. It holds the GIL while it runs (~0.1 s per
MiB), so callers run ``render`` in a thread, and a big page is converted from its start only
when that already gives more than the tool will show.
"""

import codecs
import contextlib
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from opencode.tools.base import ToolError
from opencode.tools.text import collapse_whitespace

Format = Literal["markdown", "text", "html"]
Kind = Literal["html", "json", "text"]

# Noise that aggressive preprocessing keeps: form controls outside forms, the fallback text of
# embeds, landmarks marked only by role, content hidden from screen readers, and data: images
# (whose alt text plain output would keep). The converter supports simple selectors only.
_NOISE_SELECTORS = [
    "button", "select", "textarea", "dialog", "iframe", "object", "canvas",
    "[role=banner]", "[role=contentinfo]", "[role=complementary]", "[role=search]",
    "[role=dialog]", '[aria-hidden="true"]', 'img[src^="data:"]',
]  # fmt: skip
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# With ``extract_metadata`` the converter puts the page's metadata in front of Markdown output
# as YAML (one ``key: value`` per line, values quoted when they hold newlines); the title is
# shown in the tool's own header instead.
_FRONT_MATTER = re.compile(r"\A---\n(?:[^\n]+\n)+?---\n")
# How much of a big page's HTML to try converting first (characters): 128 Ki gives ~85,000
# characters of Markdown from a documentation page in ~25 ms, against ~0.5-0.75 s for 5 MiB;
# markup-heavy pages may need the larger step. A step that gives too little costs at most
# ~20% more than converting the whole page at once.
HEAD_STEPS = (128 * 1024, 1024 * 1024)
_TAIL_MARGIN = 2_000  # output characters kept clear of where the cut HTML ends
# Elements whose content is not markup: cut inside one, and the parser, never seeing its end,
# would turn the rest (a script's code, say) into page text. Lowercase, as searched.
_RAW_TEXT = (
    ("<script", "</script"), ("<style", "</style"), ("<textarea", "</textarea"),
    ("<title", "</title"), ("<noscript", "</noscript"), ("<template", "</template"),
    ("<xmp", "</xmp"), ("<!--", "-->"),
)  # fmt: skip


@dataclass(frozen=True)
class Page:
    url: str
    kind: Kind
    body: bytes
    charset: str | None


def render(page: Page, fmt: Format, max_chars: int) -> str:
    """The tool's output for a fetched page, cut at ``max_chars`` with a note (CPU work: run
    it in a thread)."""
    header = f"URL: {page.url}\n"
    if page.kind == "json":
        text = decode(page.body, page.charset)
        with contextlib.suppress(ValueError):  # not JSON after all: show it as it is
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        return truncate(header + "\n" + text, max_chars)
    if page.kind == "text":
        return truncate(header + "\n" + decode(page.body, page.charset), max_chars)
    html = decode_html(page.body, page.charset)
    if fmt == "html":
        return truncate(header + "\n" + html, max_chars)
    try:
        title, body, whole = _readable_within(html, page.url, fmt, max_chars)
    except _converter().ConversionError as exc:
        raise ToolError(
            f"Could not convert the HTML at {page.url} to {fmt}: {exc}. "
            "Fetch it again with format=html to read the raw page."
        ) from None
    text = header + (f"Title: {title}\n" if title else "") + "\n" + body
    return truncate(text, max_chars, whole=whole)


def truncate(text: str, max_chars: int, *, whole: bool = True) -> str:
    """``text`` cut at ``max_chars``, with a note saying so; ``whole`` is False when ``text``
    is only the start of the page's output (its full length is then unknown)."""
    if len(text) <= max_chars and whole:
        return text
    shown = f"first {max_chars:,} of {len(text):,} characters shown"
    if not whole:
        shown = f"first {max_chars:,} characters shown; the page goes on"
    return f"{text[:max_chars]}\n\n[Output truncated: {shown}.]"


def _readable_within(
    html: str, base_url: str, fmt: Literal["markdown", "text"], max_chars: int
) -> tuple[str, str, bool]:
    """Title, content and whether the content is the whole page's. A big page is converted
    from its start first (``HEAD_STEPS``); when that yields comfortably more than ``max_chars``
    the rest is never converted (the cut can only disturb the end of that output)."""
    for head in HEAD_STEPS:
        if len(html) <= head:
            break
        title, body = readable(html[: _safe_cut(html, head)], base_url, fmt)
        if len(body) > max_chars + _TAIL_MARGIN:
            return title, body[: max_chars + _TAIL_MARGIN], False
    return (*readable(html, base_url, fmt), True)


def readable(html: str, base_url: str, fmt: Literal["markdown", "text"]) -> tuple[str, str]:
    """The page's title and its content as Markdown or plain text, without the noise."""
    result = _converter().convert(html, _options(fmt, base_url))
    title = collapse_whitespace(result.metadata.document.title or "")
    body = result.content or ""
    if fmt == "markdown":
        body = _FRONT_MATTER.sub("", body, count=1)
    return title, _squeeze(body)


def html_to_text(html: str) -> str:
    """The plain text of an HTML document or fragment (such as the start of an error page)."""
    options = _options("text", None, extract_metadata=False)
    return _converter().convert(html, options).content or ""


def decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace").removeprefix("\ufeff")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace").removeprefix("\ufeff")


def decode_html(body: bytes, charset: str | None) -> str:
    """A byte order mark first, then the header's charset, then the page's own ``<meta
    charset>``, then a guess; bytes that fit none of those are decoded as UTF-8."""
    if charset and not body.startswith(_BOMS):
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):  # unknown, or not what the body is in
            pass
    # preemptive_behaviour: try the encoding the document declares before guessing
    import charset_normalizer  # here: ~25 ms of start-up otherwise (this runs in a thread)

    match = charset_normalizer.from_bytes(body, preemptive_behaviour=True).best()
    return str(match) if match is not None else decode(body, None)


def _safe_cut(html: str, end: int) -> int:
    """``end``, or an earlier position that is not inside a script, style, comment or other
    raw-text element. Moving before the last such opener can land inside an earlier one (a
    script that writes ``"<script>"``), hence the repeat until nothing moves."""
    lowered = html[:end].lower()
    moved = True
    while moved:
        moved = False
        for opener, closer in _RAW_TEXT:
            start = lowered.rfind(opener, 0, end)
            if start > lowered.rfind(closer, 0, end):
                end, moved = start, True
    return end


@cache
def _converter() -> Any:
    """html_to_markdown, imported by the first page converted (in a thread), not at start-up."""
    import html_to_markdown

    return html_to_markdown


def _options(
    fmt: Literal["markdown", "text"], base_url: str | None, *, extract_metadata: bool = True
) -> Any:
    h2m = _converter()
    return h2m.ConversionOptions(
        output_format="markdown" if fmt == "markdown" else "plain",
        preprocessing=h2m.PreprocessingOptions(
            preset="aggressive", remove_navigation=True, remove_forms=True
        ),
        exclude_selectors=_NOISE_SELECTORS,
        inline_data_media="drop_element",
        extract_metadata=extract_metadata,
        base_url=base_url,
        heading_style="atx",
        bullets="-",
        compact_tables=True,
        escape_asterisks=False,
        escape_underscores=False,
    )


def _squeeze(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip()
