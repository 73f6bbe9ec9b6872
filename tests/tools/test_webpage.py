"""Rendering a fetched page (no network): big HTML pages are converted only as far as the
output cap needs, with the same output as converting them whole."""

from opencode.tools.webpage import HEAD_STEPS, Page, render

URL = "https://docs.example.com/guide.html"
SECTION = (
    "<section><h2>Part {n}</h2><p>Paragraph {n} with <a href='/p/{n}'>a link</a> and "
    "<code>code()</code> to read.</p><ul><li>one</li><li>two</li></ul></section>\n"
)


def html_page(sections: int, *, script_chars: int = 0) -> Page:
    script = f"<script>{'x' * script_chars}</script>" if script_chars else ""
    body = "".join(SECTION.format(n=n) for n in range(sections))
    html = f"<html><head><title>Guide</title>{script}</head><body><main>{body}</main></body></html>"
    return Page(URL, "html", html.encode(), "utf-8")


def test_a_big_page_converted_from_its_start_matches_the_whole_conversion():
    page = html_page(8_000)  # ~1.2 MB of HTML, ~650,000 characters of Markdown
    assert len(page.body) > HEAD_STEPS[-1]
    for fmt in ("markdown", "text"):
        capped = render(page, fmt, 50_000)
        whole = render(page, fmt, 10**9)
        shown, note = capped.rsplit("\n\n", 1)
        assert shown == whole[:50_000]
        assert note == ("[Output truncated: first 50,000 characters shown; the page goes on.]")


def test_a_page_whose_start_is_all_noise_is_converted_whole():
    page = html_page(300, script_chars=HEAD_STEPS[0] + 10)  # the first step yields nothing
    capped = render(page, "markdown", 5_000)
    whole = render(page, "markdown", 10**9)
    shown, note = capped.rsplit("\n\n", 1)
    assert shown == whole[:5_000] and "Part 299" in whole
    assert note == f"[Output truncated: first 5,000 of {len(whole):,} characters shown.]"


def test_a_page_within_the_cap_is_whole_and_has_no_note():
    page = html_page(10)
    output = render(page, "markdown", 50_000)
    assert output.startswith(f"URL: {URL}\nTitle: Guide\n\n## Part 0")
    assert "Output truncated" not in output and "Part 9" in output


def straddling_page(raw: str) -> Page:
    """~30,000 characters of content, then ``raw`` (a script, a comment, ...) across the first
    conversion step's cut, then over a megabyte of sections. Cut inside ``raw``, the start
    would look long enough only thanks to ``raw``'s text leaking into the output."""
    before = "".join(SECTION.format(n=n) for n in range(400))
    after = "".join(SECTION.format(n=n) for n in range(400, 8_400))
    html = f"<html><body><main>{before}{raw}{after}</main></body></html>"
    return Page(URL, "html", html.encode(), "utf-8")


def test_a_cut_never_falls_inside_a_script_style_or_comment():
    fill = "x" * HEAD_STEPS[0]
    raws = [
        f"<script>var s = '{fill}';</script>",
        f"<SCRIPT type='module'>document.write(\"<script>{fill}\");</SCRIPT>",
        f"<style>.x {{ color: red; }} {fill}</style>",
        f"<!-- {fill} -->",
        f"<textarea>{fill}</textarea>",
    ]
    for raw in raws:
        page = straddling_page(raw)
        capped = render(page, "markdown", 50_000)
        assert "xxxxxxxx" not in capped, raw[:30]
        assert capped.endswith("characters shown; the page goes on.]")  # from the 1 MiB step
        assert capped.rsplit("\n\n", 1)[0] == render(page, "markdown", 10**9)[:50_000]
