"""Side-by-side streaming benchmark: raw httpx, direct LiteLLM and our server on each model path.

Run from the repo root: ``python -m bench.compare [--quick] [--paths native-openai,...]
[--skip-fanout] [--out FILE]``. See the ``bench.compare`` section of ``bench/README.md``.

Processes, pinned with ``os.sched_setaffinity`` when the machine has two CPUs or more:

* core 0: the measured process, i.e. the server (``python app.py``) or, for the client rows,
  ``bench.compare_client`` (httpx or LiteLLM reading the fake directly);
* core 1: the paced fake provider (``bench.paced_provider``) and this process, the load
  generator.

Rows: ``raw-httpx`` (the floor), ``direct-litellm`` (``litellm.acompletion(stream=True)``), then
the server on ``native-openai``, ``native-anthropic``, ``native-gemini`` and ``litellm-openai``
(``OPENCODE_NATIVE_OPENAI=false``). A path that fails is an error row.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from bench.compare_core import (
    LATENESS_OK_MS,
    FakeControl,
    PathError,
    Plan,
    ServerTarget,
    affinity_of,
    log,
    measure,
    percentile,
    proc_mem,
)
from bench.compare_fanout import fanout
from bench.compare_report import render
from tests.e2e.server import free_port

ROOT = Path(__file__).resolve().parents[1]
CLIENT_PATHS = {"raw-httpx": "raw", "direct-litellm": "litellm"}
SERVER_PATHS = {  # path -> (model, env)
    "native-openai": ("openai/gpt-4o-mini", {"OPENCODE_NATIVE_OPENAI": "true"}),
    "native-anthropic": ("anthropic/claude-sonnet-4-5", {"OPENCODE_NATIVE_ANTHROPIC": "true"}),
    "native-gemini": ("gemini/gemini-2.5-flash", {"OPENCODE_NATIVE_GEMINI": "true"}),
    "litellm-openai": ("openai/gpt-4o-mini", {"OPENCODE_NATIVE_OPENAI": "false"}),
}
ALL_PATHS = [*CLIENT_PATHS, *SERVER_PATHS]
SUBJECT_CPU, LOADGEN_CPU = 0, 1


def pinning() -> tuple[set[int] | None, set[int] | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, f"not pinned: only CPU {cpus} available"
    subject, loadgen = {cpus[SUBJECT_CPU]}, {cpus[LOADGEN_CPU]}
    return (
        subject,
        loadgen,
        (
            f"pinned: measured process (server / client row) on CPU {cpus[SUBJECT_CPU]}, "
            f"paced fake + load generator on CPU {cpus[LOADGEN_CPU]}"
        ),
    )


def pin_to(cpus: set[int] | None):
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        import importlib.metadata as md  # noqa: PLC0415

        versions = {name: md.version(name) for name in ("litellm", "httpx", "uvicorn")}
    except Exception:
        versions = {}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--short", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        git = f"HEAD {head}" + (f" + {len(dirty)} modified files" if dirty else "")
    except OSError:
        git = "?"
    return {
        "git": git,
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "versions": versions,
        "loadavg_at_start": os.getloadavg(),
    }


# ---- processes ----


class PacedFake:
    def __init__(self, cpus: set[int] | None, workdir: Path) -> None:
        self.log_path = workdir / "paced-provider.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.paced_provider"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("wb"),
            preexec_fn=pin_to(cpus),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PACED_PROVIDER_URL="):
            raise RuntimeError(f"paced provider did not start: {self.log_path.read_text()}")
        self.url = line.split("=", 1)[1].strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Server:
    """``python app.py`` on its own SQLite file, pointed at the paced fake."""

    def __init__(self, workdir: Path, fake_url: str, extra: dict[str, str], cpus) -> None:
        self.workdir, self.cpus = workdir, cpus
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_API_KEY", "_API_BASE", "_BASE_URL"))
            and not k.startswith("OPENCODE_")
        }
        env.update(
            DATABASE_URL=f"sqlite:///{workdir / 'opencode.db'}",
            OPENAI_API_KEY="bench-key",
            OPENAI_API_BASE=f"{fake_url}/v1",
            ANTHROPIC_API_KEY="bench-key",
            ANTHROPIC_API_BASE=fake_url,
            GEMINI_API_KEY="bench-key",
            GEMINI_API_BASE=f"{fake_url}/v1beta",
            OPENCODE_MODEL="openai/gpt-4o-mini",
            OPENCODE_MAX_RETRIES="0",
            OPENCODE_LOG_LEVEL="WARNING",
            OPENCODE_HOST="127.0.0.1",
            PORT=str(self.port),
            PYTHONPATH=str(ROOT),
        )
        env.update(extra)
        self.env = env
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> float:
        """Spawn; seconds until ``/health`` answered 200."""
        began = time.monotonic()
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py")],
                cwd=self.workdir,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=pin_to(self.cpus),
            )
        with httpx.Client(timeout=1) as http:
            while time.monotonic() - began < timeout:
                if self.proc.poll() is not None:
                    raise PathError(f"server exited early: {self.log_tail()}")
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return time.monotonic() - began
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise PathError(f"server did not start in {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 15) -> str:
        kept = [line for line in self.log_text().splitlines() if 'HTTP/1.1" ' not in line]
        return "\n".join(kept[-lines:])

    def problems(self) -> dict:
        lines = self.log_text().splitlines()
        bad = [
            line
            for line in lines
            if ("ERROR" in line or "Traceback" in line or "WARNING" in line or "Error" in line)
            and 'HTTP/1.1" ' not in line
        ]
        return {"count": len(bad), "first": bad[:8]}


# ---- rows ----


def client_row(kind: str, fake_url: str, plan: Plan, cpus) -> dict:
    config = {"kind": kind, "fake_url": fake_url, "plan": asdict(plan)}
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare_client", json.dumps(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=pin_to(cpus),
        capture_output=True,
        timeout=900,
    )
    sys.stderr.write(proc.stderr.decode(errors="replace"))
    if proc.returncode != 0:
        return {"error": f"client exited {proc.returncode}: {proc.stderr.decode()[-800:]}"}
    row = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    row["spawn_to_done_s"] = time.monotonic() - began
    return row


async def server_row(
    path: str,
    fake_url: str,
    plan: Plan,
    cpus,
    workroot: Path,
    startups: int,
    fanout_counts: tuple[int, ...] | None,
) -> dict:
    model, extra = SERVER_PATHS[path]
    workdir = Path(tempfile.mkdtemp(prefix=f"{path}-", dir=workroot))
    server = Server(workdir, fake_url, extra, cpus)
    row: dict = {"model": model, "env": extra}
    fake = FakeControl(fake_url)
    try:
        times = []
        for attempt in range(startups):
            times.append(server.start())
            if attempt < startups - 1:
                server.stop()
        row["startup_s"] = times
        row["startup_s_p50"] = percentile(times, 0.5)
        await asyncio.sleep(0.5)  # settle: start-up's last work (gc.freeze, ...)
        pid = server.proc.pid
        row["affinity"] = affinity_of(pid)
        row["rss_idle_mib"] = proc_mem(pid)["VmRSS"]
        target = ServerTarget(path, server.url, model)
        try:
            row.update(await measure(target, fake, pid, plan))
            if fanout_counts:
                row["fanout"] = await fanout(
                    target, fake, pid, plan.chunks, plan.interval_ms, fanout_counts
                )
        finally:
            await target.aclose()
        row["vm_hwm_mib"] = proc_mem(pid)["VmHWM"]
    except PathError as exc:
        row["error"] = str(exc)
        log(f"  {path}: ERROR {exc}")
    except Exception as exc:  # noqa: BLE001  (a broken path is a row, not the end of the run)
        row["error"] = f"{type(exc).__name__}: {exc}"
        log(f"  {path}: ERROR {row['error']}")
    finally:
        await fake.aclose()
        server.stop()
        row["server_log"] = server.problems()
    return row


# ---- main ----


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (< 2 min)")
    parser.add_argument(
        "--paths", default=",".join(ALL_PATHS), help=f"comma-separated, of {','.join(ALL_PATHS)}"
    )
    parser.add_argument("--skip-fanout", action="store_true", help="no /event fan-out")
    parser.add_argument(
        "--out", type=Path, help="JSON file (default bench/results/compare-<ts>.json)"
    )
    parser.add_argument("--chunks", type=int, help="chunks per turn (default 200, quick 50)")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="paced spacing S")
    args = parser.parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in args.paths if p not in ALL_PATHS]
    if unknown:
        parser.error(f"unknown paths {unknown}; known: {ALL_PATHS}")
    return args


def make_plan(args: argparse.Namespace) -> tuple[Plan, int, tuple[int, ...]]:
    if args.quick:
        plan = Plan(
            chunks=args.chunks or 50,
            interval_ms=args.interval_ms,
            warmup=2,
            ttft_turns=5,
            levels=(25, 200),
            must_reach=200,
            extend_to=200,
            step_timeout=60,
        )
        return plan, 1, (100,)
    plan = Plan(chunks=args.chunks or 200, interval_ms=args.interval_ms)
    return plan, 3, (100, 300, 1000)


async def run_servers(args, plan, startups, fanout_counts, fake_url, cpus, workroot) -> dict:
    rows = {}
    server_paths = [p for p in args.paths if p in SERVER_PATHS]
    fanout_path = None
    if not args.skip_fanout and server_paths:
        fanout_path = "native-openai" if "native-openai" in server_paths else server_paths[0]
    for path in server_paths:
        log(f"{path} ...")
        counts = fanout_counts if path == fanout_path else None
        rows[path] = await server_row(path, fake_url, plan, cpus, workroot, startups, counts)
    return rows


def main() -> int:
    args = parse_args()
    plan, startups, fanout_counts = make_plan(args)
    subject, loadgen, pin_note = pinning()
    if loadgen is not None:
        os.sched_setaffinity(0, loadgen)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = dt.datetime.now(dt.UTC)
    info = machine()
    print(f"bench.compare: {pin_note}", flush=True)
    began = time.monotonic()
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as directory:
        workroot = Path(directory)
        fake = PacedFake(loadgen, workroot)
        try:
            for path in args.paths:
                if path in CLIENT_PATHS:
                    log(f"{path} ...")
                    rows[path] = client_row(CLIENT_PATHS[path], fake.url, plan, subject)
            rows.update(
                asyncio.run(
                    run_servers(args, plan, startups, fanout_counts, fake.url, subject, workroot)
                )
            )
        finally:
            fake.stop()
    result = {
        "date": started.isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - began,
        "machine": info,
        "pinning": pin_note,
        "plan": asdict(plan),
        "startups": startups,
        "lateness_ok_ms": LATENESS_OK_MS,
        "args": {"quick": args.quick, "paths": args.paths, "skip_fanout": args.skip_fanout},
        "rows": {p: rows[p] for p in args.paths if p in rows},
    }
    out = args.out or ROOT / "bench" / "results" / f"compare-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
