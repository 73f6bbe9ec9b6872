"""webfetch's HTML conversion: time to render generated pages as Markdown and as plain text.

Run from the repo root: ``python -m bench.bench_webfetch [--sizes 0.1,1,5] [--repeat 5]``.
Each page (sizes in MiB; 5 MiB is the most webfetch reads) is a documentation-like page: head
with styles and scripts, site header, navigation, sidebar and footer around an article of
sections with headings, paragraphs with links and inline code, lists, tables and code blocks.
For each page and format it reports the median wall and CPU time of ``render`` (decoding and
conversion) and the longest stall of an asyncio ticker while ``render`` runs in
``asyncio.to_thread``, as the tool runs it: how long the server's event loop stood still.
``cap`` is the tool (output cut at ``--max-chars``), ``whole`` converts every byte.
``--old FILE`` also times the ``render`` of another version of ``opencode/tools/webfetch.py``
(``git show HEAD~1:opencode/tools/webfetch.py > /tmp/old_webfetch.py``), if its libraries are
installed.
"""

import argparse
import asyncio
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opencode.tools.webpage import Page, render

MIB = 1024 * 1024
URL = "https://docs.example.com/guide/page.html"

HEAD = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Guide - Example Docs</title>
<meta name="description" content="A generated page for the webfetch benchmark.">
<style>body { font-family: sans-serif; } .nav a { color: #333; }</style>
<script>window.analytics = { id: "UA-0000" }; function track(e) { return e; }</script>
</head><body>
<header class="site"><a href="/"><img src="/logo.svg" alt="Example"></a></header>
<nav><ul>"""
    + "".join(f'<li><a href="/guide/{n}.html">Chapter {n}</a></li>' for n in range(40))
    + """
</ul></nav>
<aside class="sidebar"><h3>On this page</h3><ul><li><a href="#s1">Start</a></li></ul></aside>
<main><article><h1>Guide</h1>
"""
)
SECTION = """<section id="s{n}"><h2>Section {n}: configuring the widget</h2>
<p>The <strong>widget</strong> reads its settings from <code>widget.toml</code>; see
<a href="../reference/settings.html#s{n}">the settings reference</a> and the
<a href="https://example.org/blog/{n}">announcement</a> for the details of section {n}.</p>
<ul><li>First, install it with <code>pip install widget</code>.</li>
<li>Then set <em>timeout</em> and <em>retries</em>.</li><li>Finally, restart the service.</li></ul>
<pre><code class="language-python">def configure(widget, retries={n}):
    widget.timeout = 30
    return widget.start(retries=retries)
</code></pre>
<table><thead><tr><th>Setting</th><th>Default</th><th>Meaning</th></tr></thead><tbody>
<tr><td>timeout</td><td>30</td><td>seconds before a call gives up</td></tr>
<tr><td>retries</td><td>{n}</td><td>attempts after the first</td></tr></tbody></table>
<div class="note" role="note"><p>Note: values in <code>widget.toml</code> override the
environment.</p></div><button class="copy">Copy</button></section>
"""
TAIL = """</article></main>
<footer><p>&copy; Example Corp</p><form action="/search"><input name="q"></form></footer>
<script>track("page");</script></body></html>
"""


def page_html(size: int) -> bytes:
    """A page of about ``size`` bytes: as many sections as fit."""
    parts = [HEAD]
    used = len(HEAD) + len(TAIL)
    n = 0
    while used < size:
        section = SECTION.format(n=n)
        parts.append(section)
        used += len(section)
        n += 1
    parts.append(TAIL)
    return "".join(parts).encode()


def load_render(path: str) -> Callable[[Any, str], str]:
    """``render`` and ``Page`` of another version of webfetch.py, wrapped to take our Page."""
    spec = importlib.util.spec_from_file_location("old_webfetch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def old_render(page: Page, fmt: str) -> str:
        return module.render(module.Page(page.url, page.kind, page.body, page.charset), fmt)

    return old_render


async def loop_stall(call: Callable[[], str]) -> float:
    """The longest time an asyncio ticker (1 ms sleeps) was late while ``call`` ran in a
    thread."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - began - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    try:
        await asyncio.to_thread(call)
    finally:
        done = True
        await task
    return worst


def measure(render_page: Callable[[Page, str], str], page: Page, fmt: str, repeat: int) -> str:
    render_page(page, fmt)  # warm up
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        output = render_page(page, fmt)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    stall = asyncio.run(loop_stall(lambda: render_page(page, fmt)))
    return (
        f"{statistics.median(walls) * 1000:9.1f} {statistics.median(cpus) * 1000:9.1f} "
        f"{stall * 1000:9.1f} {len(output):10,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,1,5", help="page sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--old", help="another webfetch.py whose render to time as well")
    parser.add_argument("--max-chars", type=int, default=50_000, help="the tool's output cap")
    args = parser.parse_args()
    paths: dict[str, Callable[[Page, str], str]] = {
        "cap": lambda page, fmt: render(page, fmt, args.max_chars),  # what the tool does
        "whole": lambda page, fmt: render(page, fmt, 10**12),  # every byte converted
    }
    if args.old:
        paths["old"] = load_render(str(Path(args.old)))
    print(f"{'path':<5} {'MiB':>5} {'format':<8} {'wall ms':>9} {'cpu ms':>9} {'stall ms':>9} "
          f"{'out chars':>10}")  # fmt: skip
    for size in (float(s) for s in args.sizes.split(",")):
        page = Page(URL, "html", page_html(int(size * MIB)), None)
        for name, render_page in paths.items():
            for fmt in ("markdown", "text"):
                repeat = args.repeat if name != "old" else max(1, args.repeat // 3)
                row = measure(render_page, page, fmt, repeat)
                print(f"{name:<5} {len(page.body) / MIB:5.2f} {fmt:<8} {row}", flush=True)


if __name__ == "__main__":
    main()
