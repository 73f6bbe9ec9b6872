"""The markdown tables of ``bench.compare``, from its JSON result."""

from __future__ import annotations

BASELINES = ("raw-httpx", "direct-litellm")
LEVEL_200 = 200


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def _step(row: dict, streams: int) -> dict | None:
    return next((s for s in row.get("sweep", []) if s.get("streams") == streams), None)


def max_streams(row: dict, ok_ms: float) -> tuple[int | None, bool]:
    """The largest level before the first one over ``ok_ms`` (or with errors); True when no
    level failed (the real figure is at least that)."""
    best, failed = None, False
    for step in row.get("sweep", []):
        p99 = (step.get("lateness_ms") or {}).get("p99")
        if step.get("error") or step.get("errors") or p99 is None or p99 > ok_ms:
            failed = True
            break
        best = step["streams"]
    return best, not failed


def metrics(row: dict, ok_ms: float) -> dict:
    sweep = row.get("sweep") or []
    first = sweep[0] if sweep else {}
    at200 = _step(row, LEVEL_200) or {}
    best, open_ended = max_streams(row, ok_ms)
    return {
        "ttft": (row.get("burst") or {}).get("ttft_ms_p50"),
        "cpu_burst": (row.get("burst") or {}).get("cpu_us_per_chunk"),
        "cpu_paced": first.get("cpu_us_per_chunk"),
        "paced_level": first.get("streams"),
        "max_streams": best,
        "max_open": open_ended,
        "p99_200": (at200.get("lateness_ms") or {}).get("p99"),
        "fake_p99_200": ((at200.get("fake") or {}).get("lateness_ms") or {}).get("p99"),
        "errors_200": at200.get("errors"),
        "ttft_200": at200.get("ttft_ms_p50"),
        "other_max": max(
            (
                v
                for step in [row.get("burst") or {}, *sweep]
                if (v := step.get("other_on_core_share")) is not None
            ),
            default=None,
        ),
        "rss_idle": row.get("rss_idle_mib"),
        "rss_peak_200": at200.get("rss_peak_mib"),
        "startup": row.get("startup_s_p50"),
    }


def _one_line(error: str, limit: int = 200) -> str:
    """An error for a table cell: a traceback's last line, after its first."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} … {lines[-1]}"
    return text.replace("|", "/")[:limit]


def _ratio(value, base) -> str:
    if value is None or base is None or base == 0:
        return "—"
    return f"{value / base:.2f}×"


def render(result: dict) -> str:
    ok = result["lateness_ok_ms"]
    plan = result["plan"]
    machine = result["machine"]
    rows = result["rows"]
    m = {path: metrics(row, ok) for path, row in rows.items()}
    out = [
        f"## bench.compare — {result['date']}",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"Linux {machine['kernel']}, "
        + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
        + f"; load average at start {machine['loadavg_at_start'][0]:.2f}.",
        f"{result['pinning']}. Code: {machine.get('git', '?')}.",
        f"Turns: {plan['chunks']} chunks; paced S = {plan['interval_ms']:g} ms on an absolute "
        f"schedule, burst S = 0; TTFT over {plan['ttft_turns']} sequential burst turns; "
        f"startup median of {result['startups']}; run took {result['duration_s']:.0f} s.",
        "",
        "| path | TTFT p50 ms | CPU µs/chunk burst | CPU µs/chunk paced | max streams p99 ≤ "
        f"{ok:g} ms | p99 lateness @{LEVEL_200} ms | fake p99 @{LEVEL_200} ms | RSS idle MiB | "
        f"RSS peak @{LEVEL_200} MiB | startup s | TTFT p50 @{LEVEL_200} ms | other load on "
        "core, max % |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for path, row in rows.items():
        if row.get("error") and not row.get("sweep"):
            out.append(f"| {path} | **error**: {_one_line(row['error'])} |" + " |" * 10)
            continue
        x = m[path]
        best = x["max_streams"]
        best_text = (
            "<" + str((row.get("sweep") or [{}])[0].get("streams", "?"))
            if best is None
            else (f"≥{best}" if x["max_open"] else str(best))
        )
        p99 = _fmt(x["p99_200"])
        if x["errors_200"]:
            p99 += f" ({x['errors_200']} err)"
        out.append(
            f"| {path} | {_fmt(x['ttft'])} | {_fmt(x['cpu_burst'], 0)} | {_fmt(x['cpu_paced'], 0)} | "
            f"{best_text} | {p99} | {_fmt(x['fake_p99_200'])} | {_fmt(x['rss_idle'], 0)} | "
            f"{_fmt(x['rss_peak_200'], 0)} | {_fmt(x['startup'], 2)} | {_fmt(x['ttft_200'], 0)} | "
            f"{_fmt(x['other_max'] and x['other_max'] * 100, 0)} |"
        )
    out += [
        "",
        "CPU is the measured process's CPU time (all threads, `/proc/<pid>/task/*/schedstat`) over chunks delivered: "
        "the server's for server rows, the client process's own for raw-httpx and "
        "direct-litellm (they are the whole stack there). Burst includes each turn's fixed cost; "
        f"paced is the {m and next(iter(m.values()))['paced_level']}-stream step of the sweep. "
        "Lateness = client receive time − the fake's scheduled send time of the chunk; "
        "`fake p99` is the fake's own (send − scheduled). RSS peak: VmRSS polled every 50 ms. "
        "`other load on core`: the measured process's core busy with other processes (a "
        "shared machine), % of wall, the worst step of the row.",
        "",
    ]
    for base in BASELINES:
        if base not in m or rows[base].get("error"):
            continue
        b = m[base]
        out += [
            f"Ratios vs {base}:",
            "",
            "| path | TTFT | CPU burst | CPU paced | max streams | p99 @200 | RSS idle |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for path, x in m.items():
            if path == base or (rows[path].get("error") and not rows[path].get("sweep")):
                continue
            out.append(
                f"| {path} | {_ratio(x['ttft'], b['ttft'])} | {_ratio(x['cpu_burst'], b['cpu_burst'])} | "
                f"{_ratio(x['cpu_paced'], b['cpu_paced'])} | {_ratio(x['max_streams'], b['max_streams'])} | "
                f"{_ratio(x['p99_200'], b['p99_200'])} | {_ratio(x['rss_idle'], b['rss_idle'])} |"
            )
        out.append("")
    # the sweep in full
    levels = sorted({s["streams"] for row in rows.values() for s in row.get("sweep", [])})
    if levels:
        paths = [p for p in rows if rows[p].get("sweep")]
        out += [
            "Sweep: p99 lateness ms (fake's own p99) per concurrent streams; `err` = streams failed:",
            "",
            "| streams | " + " | ".join(paths) + " |",
            "|--:|" + "--:|" * len(paths),
        ]
        for level in levels:
            cells = []
            for path in paths:
                step = _step(rows[path], level)
                if step is None:
                    cells.append("")
                elif step.get("error"):
                    cells.append(step["error"])
                else:
                    cell = f"{_fmt(step['lateness_ms']['p99'])} ({_fmt(step['fake']['lateness_ms']['p99'])})"
                    if step["errors"]:
                        cell += f" {step['errors']} err"
                    cells.append(cell)
            out.append(f"| {level} | " + " | ".join(cells) + " |")
        out.append("")
    for path, row in rows.items():
        fan = row.get("fanout")
        if not fan:
            continue
        if fan.get("error"):
            out += [f"/event fan-out ({path}): error {fan['error']}", ""]
            continue
        out += [
            f"/event fan-out on {path}: one paced turn, K subscribers; delay = subscriber's "
            "receive time − the turn's own stream's, per delta; baseline turn "
            f"{fan['baseline_turn_ms']:.0f} ms with no subscriber:",
            "",
            "| K | delay p50 ms | p99 ms | max ms | missing | turn slowdown | turn p99 lateness ms "
            "| server CPU µs/delivery | sub errors |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for level in fan["levels"]:
            d = level["delay_ms"]
            out.append(
                f"| {level['subscribers']} | {_fmt(d['p50'])} | {_fmt(d['p99'])} | {_fmt(d['max'])} | "
                f"{level['deltas_missing']} | {level['turn_slowdown']:.2f}× | "
                f"{_fmt(level['turn_lateness_ms_p99'])} | {_fmt(level['server_cpu_us_per_delivery'], 0)} | "
                f"{level['subscriber_errors']} |"
            )
        out.append("")
    notes = []
    for path, row in rows.items():
        if row.get("error"):
            notes.append(f"- {path}: {_one_line(row['error'], 400)}")
        log_info = row.get("server_log") or {}
        if log_info.get("count"):
            notes.append(
                f"- {path}: {log_info['count']} warning/error log lines, first: "
                f"`{log_info['first'][0][:300]}`"
            )
        for step in row.get("sweep", []):
            if step.get("first_error"):
                notes.append(
                    f"- {path} @{step['streams']}: {step['errors']} failed, first: "
                    f"{step['first_error'][:300]}"
                )
                break
    if notes:
        out += ["Problems:", "", *notes]
    return "\n".join(out)
