"""What ``webfetch`` shows of a fetched page: HTML as Markdown or plain text, JSON pretty-printed.

HTML is converted by html-to-markdown (Rust): it drops scripts, styles, navigation, forms and
hidden content, makes links absolute and writes Markdown or plain text, ~20x faster than the
BeautifulSoup + markdownify pipeline it replaced. It holds the GIL while it runs (~0.5 s for
a 5 MiB page, the most webfetch reads), so callers still run ``render`` in a thread.
"""

import codecs
import json
import re
from dataclasses import dataclass
from typing import Literal

import charset_normalizer
from html_to_markdown import ConversionError, ConversionOptions, PreprocessingOptions, convert

from opencode.tools.base import ToolError

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


@dataclass(frozen=True)
class Page:
    url: str
    kind: Kind
    body: bytes
    charset: str | None


def render(page: Page, fmt: Format) -> str:
    """The tool's output for a fetched page (CPU work: run it in a thread)."""
    header = f"URL: {page.url}\n"
    if page.kind == "json":
        text = decode(page.body, page.charset)
        try:
            return header + "\n" + json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return header + "\n" + text
    if page.kind == "text":
        return header + "\n" + decode(page.body, page.charset)
    html = decode_html(page.body, page.charset)
    if fmt == "html":
        return header + "\n" + html
    try:
        title, body = readable(html, page.url, fmt)
    except ConversionError as exc:
        raise ToolError(
            f"Could not convert the HTML at {page.url} to {fmt}: {exc}. "
            "Fetch it again with format=html to read the raw page."
        ) from None
    return header + (f"Title: {title}\n" if title else "") + "\n" + body


def readable(html: str, base_url: str, fmt: Literal["markdown", "text"]) -> tuple[str, str]:
    """The page's title and its content as Markdown or plain text, without the noise."""
    result = convert(html, _options(fmt, base_url))
    title = " ".join((result.metadata.document.title or "").split())
    body = result.content or ""
    if fmt == "markdown":
        body = _FRONT_MATTER.sub("", body, count=1)
    return title, _squeeze(body)


def html_to_text(html: str) -> str:
    """The plain text of an HTML document or fragment (such as the start of an error page)."""
    return convert(html, _options("text", None, extract_metadata=False)).content or ""


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
    match = charset_normalizer.from_bytes(body, preemptive_behaviour=True).best()
    return str(match) if match is not None else decode(body, None)


def _options(
    fmt: Literal["markdown", "text"], base_url: str | None, *, extract_metadata: bool = True
) -> ConversionOptions:
    return ConversionOptions(
        output_format="markdown" if fmt == "markdown" else "plain",
        preprocessing=PreprocessingOptions(
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
