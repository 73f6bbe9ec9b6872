"""What ``bench.compare`` measures, shared by its two processes: the orchestrator (server rows) and
``bench.compare_client`` (the raw httpx and direct LiteLLM rows).

A *target* streams one turn and returns a ``StreamResult``: time to the first text chunk, the
chunks seen, and each chunk's lateness, the time this process received it minus the time the
paced fake scheduled it (the fake writes ``[i@<scheduled µs>]`` into chunk ``i``'s text, on
CLOCK_MONOTONIC, which every process of the machine shares). ``measure`` runs the same
procedure on any target: warm-up, sequential burst turns (TTFT, CPU per chunk), then the paced
concurrency sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

TICKS = os.sysconf("SC_CLK_TCK")
MARK = re.compile(rb"\[(\d+)@(\d+)\]")
MARK_TEXT = re.compile(r"\[(\d+)@(\d+)\]")
EVENT_NAME = re.compile(rb"(?:^|\n)event: ([^\r\n]+)")
LATENESS_OK_MS = 50.0


class PathError(Exception):
    """A path that does not stream as scripted: reported as an error row."""


# ---- /proc ----


def proc_cpu(pid: int) -> float:
    """CPU seconds of a process, all its threads: the sum of each live thread's
    ``/proc/<pid>/task/<tid>/schedstat`` run time (nanoseconds, where ``/proc/<pid>/stat``
    counts 10 ms ticks), or ``stat``'s utime + stime when it says more (a thread that ended
    during the measurement is only in that)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / TICKS
    precise = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            precise += int((task / "schedstat").read_text().split()[0])
    return max(ticks, precise / 1e9) if precise / 1e9 < ticks - 2 / TICKS else precise / 1e9


def proc_mem(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def affinity_of(pid: int) -> list[int]:
    """The CPUs every thread of ``pid`` may run on (the union)."""
    cpus: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            cpus |= os.sched_getaffinity(int(task.name))
    return sorted(cpus)


def core_busy(cpu: int) -> float:
    """Seconds CPU ``cpu`` was busy since boot (user, nice, system, irq, softirq, steal)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / TICKS
    return 0.0


class CoreWatch:
    """How busy the measured process's core was with anything but that process: a shared
    machine shows here instead of hiding in the measured process's numbers."""

    def __init__(self, pid: int) -> None:
        cpus = affinity_of(pid)
        self.pid, self.cpu = pid, cpus[0] if len(cpus) == 1 else None
        self.began = time.monotonic()
        self.busy = core_busy(self.cpu) if self.cpu is not None else 0.0
        self.own = proc_cpu(pid)

    def other_share(self) -> float | None:
        if self.cpu is None:
            return None
        wall = time.monotonic() - self.began
        other = (core_busy(self.cpu) - self.busy) - (proc_cpu(self.pid) - self.own)
        return max(0.0, other / wall) if wall > 0 else None


class RssSampler:
    """Peak VmRSS of ``pid`` while running, polled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, proc_mem(self.pid).get("VmRSS", 0.0))
            await asyncio.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, proc_mem(self.pid).get("VmRSS", 0.0))


# ---- statistics ----


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(values_ns: list[int]) -> dict[str, float | None]:
    values = [v / 1e6 for v in values_ns]
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


@dataclass
class StreamResult:
    began: int = 0  # monotonic ns when the request went out
    first: int | None = None  # monotonic ns of the first text chunk
    ended: int = 0
    chunks: int = 0
    lateness: list[int] = field(default_factory=list)  # ns, per chunk
    received: dict[int, int] = field(default_factory=dict)  # chunk index -> receive ns
    error: str | None = None

    def on_text(self, text: bytes | str, now: int) -> None:
        found = (MARK if isinstance(text, bytes) else MARK_TEXT).findall(text)
        if found and self.first is None:
            self.first = now
        for index, scheduled_us in found:
            self.chunks += 1
            self.lateness.append(now - int(scheduled_us) * 1000)
            self.received.setdefault(int(index), now)

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first is None else (self.first - self.began) / 1e6

    @property
    def duration_ms(self) -> float:
        return (self.ended - self.began) / 1e6


# ---- the paced fake's control endpoints ----


class FakeControl:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=30)

    async def config(self, chunks: int, interval_ms: float) -> None:
        response = await self.http.post(
            "/config", json={"chunks": chunks, "interval_ms": interval_ms}
        )
        response.raise_for_status()

    async def reset(self) -> None:
        (await self.http.post("/reset")).raise_for_status()

    async def stats(self) -> dict:
        response = await self.http.get("/stats")
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self.http.aclose()


# ---- a minimal HTTP/1.1 client over asyncio streams (the load generator's side) ----


async def open_http(
    host: str, port: int, method: str, path: str, body: bytes | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
    """Send one request (``Connection: close``) and read the response head."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
    head += "Accept: text/event-stream\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + (body or b""))
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return reader, writer, status, headers


async def body_pieces(reader: asyncio.StreamReader, headers: dict[str, str]):
    """The response body as it arrives (chunked transfer decoded)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    else:
        while data := await reader.read(1 << 16):
            yield data


class FrameSplitter:
    """SSE frames from byte pieces (sse-starlette separates with CRLF, others with LF)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.sep: bytes | None = None

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        if self.sep is None:
            if b"\r\n\r\n" in self.buffer:
                self.sep = b"\r\n\r\n"
            elif b"\n\n" in self.buffer:
                self.sep = b"\n\n"
            else:
                return []
        if self.sep not in self.buffer:
            return []
        *frames, self.buffer = self.buffer.split(self.sep)
        return frames


def event_name(frame: bytes) -> bytes | None:
    match = EVENT_NAME.search(frame)
    return match.group(1) if match else None


# ---- targets ----


class Target(Protocol):
    name: str

    async def prepare(self, count: int) -> list[Any]: ...

    async def stream(self, context: Any) -> StreamResult: ...

    async def aclose(self) -> None: ...


class RawHttpxTarget:
    """The fake's OpenAI stream read with httpx, each event parsed with ``json.loads``.

    One ``httpx.AsyncClient`` per stream (made by ``prepare``, before the clock starts; one
    shared SSL context): with one shared client, httpcore's pool scans every connection on each
    request and response close (``_assign_requests_to_connections``), which at 200 streams
    costs more CPU than the streams themselves, and this row is meant to be the floor."""

    name = "raw-httpx"

    def __init__(self, fake_url: str) -> None:
        self.url = f"{fake_url}/v1/chat/completions"
        self.ssl = ssl.create_default_context()

    async def prepare(self, count: int) -> list[Any]:
        return [httpx.AsyncClient(timeout=120, verify=self.ssl) for _ in range(count)]

    async def stream(self, context: Any) -> StreamResult:
        async with context:
            return await self._stream(context)

    async def _stream(self, http: httpx.AsyncClient) -> StreamResult:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        result = StreamResult(began=time.monotonic_ns())
        done = False
        splitter = FrameSplitter()
        async with http.stream("POST", self.url, json=body) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}"
                return result
            async for data in response.aiter_raw():
                now = time.monotonic_ns()
                for frame in splitter.feed(data):
                    if not frame.startswith(b"data: "):
                        continue
                    if frame == b"data: [DONE]":
                        done = True
                        continue
                    event = json.loads(frame[6:])
                    choices = event.get("choices")
                    if choices and (text := choices[0].get("delta", {}).get("content")):
                        result.on_text(text, now)
        result.ended = time.monotonic_ns()
        if not done:
            result.error = "no [DONE]"
        return result

    async def aclose(self) -> None:
        pass


class LiteLLMTarget:
    """``litellm.acompletion(stream=True)`` against the fake, as the server's fallback calls it."""

    name = "direct-litellm"

    def __init__(self, fake_url: str) -> None:
        import litellm  # noqa: PLC0415  (heavy: only in the process that uses it)

        litellm.suppress_debug_info = True
        self.litellm = litellm
        self.base = f"{fake_url}/v1"

    async def prepare(self, count: int) -> list[Any]:
        return [None] * count

    async def stream(self, context: Any) -> StreamResult:
        result = StreamResult(began=time.monotonic_ns())
        response = await self.litellm.acompletion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
            api_base=self.base,
            api_key="bench",
            num_retries=0,
            max_retries=0,
            timeout=120,
        )
        usage = False
        async for chunk in response:
            now = time.monotonic_ns()
            if chunk.choices and (text := chunk.choices[0].delta.content):
                result.on_text(text, now)
            usage = usage or getattr(chunk, "usage", None) is not None
        result.ended = time.monotonic_ns()
        return result

    async def aclose(self) -> None:
        pass


class ServerTarget:
    """Turns through the server: ``POST /session/{id}/message`` read to ``done``, each on its
    own session (made by ``prepare`` before the clock starts), over raw asyncio sockets so the
    load generator stays cheap next to the fake on its core."""

    def __init__(self, name: str, server_url: str, model: str) -> None:
        self.name = name
        self.model = model
        parts = httpx.URL(server_url)
        self.host, self.port = parts.host, parts.port
        self.http = httpx.AsyncClient(base_url=server_url, timeout=60)

    async def prepare(self, count: int) -> list[Any]:
        sessions = []
        for _ in range(count):
            response = await self.http.post("/session", json={"title": "bench"})
            if response.status_code != 201:
                raise PathError(f"POST /session: {response.status_code} {response.text[:200]}")
            sessions.append(response.json()["id"])
        return sessions

    async def stream(self, context: Any) -> StreamResult:
        body = json.dumps({"content": "Hi", "model_id": self.model}).encode()
        result = StreamResult(began=time.monotonic_ns())
        reader, writer, status, headers = await open_http(
            self.host, self.port, "POST", f"/session/{context}/message", body
        )
        try:
            if status != 200:
                text = await reader.read(2000)
                result.error = f"HTTP {status}: {text.decode(errors='replace')[:300]}"
                return result
            splitter = FrameSplitter()
            async for data in body_pieces(reader, headers):
                now = time.monotonic_ns()
                for frame in splitter.feed(data):
                    name = event_name(frame)
                    if name == b"text":
                        result.on_text(frame, now)
                    elif name == b"done":
                        result.ended = now
                        return result
                    elif name == b"error":
                        result.ended = now
                        data_at = frame.find(b"data: ")
                        result.error = frame[data_at + 6 :].decode(errors="replace")[:300]
                        return result
            result.error = "stream ended without done"
            return result
        finally:
            writer.close()

    async def aclose(self) -> None:
        await self.http.aclose()


# ---- the procedure ----


@dataclass
class Plan:
    chunks: int = 200
    interval_ms: float = 10.0
    warmup: int = 3
    ttft_turns: int = 20
    levels: tuple[int, ...] = (25, 50, 100, 200, 300)
    must_reach: int = 200  # the sweep goes on past the lateness limit until this level
    extend_to: int = 1000  # and past the last level (x1.5 steps) while still within it
    step_timeout: float = 180.0


def log(message: str) -> None:
    print(message, flush=True, file=__import__("sys").stderr)


async def run_streams(target: Target, contexts: list[Any], limit: float) -> list[StreamResult]:
    """Every context's stream at once; TimeoutError after ``limit`` seconds."""

    async def one(context: Any) -> StreamResult:
        try:
            return await target.stream(context)
        except Exception as exc:  # one broken stream is counted, not fatal
            return StreamResult(error=f"{type(exc).__name__}: {exc}"[:300])

    async with asyncio.timeout(limit):
        return await asyncio.gather(*(one(c) for c in contexts))


def first_error(results: list[StreamResult]) -> str | None:
    return next((r.error for r in results if r.error), None)


async def measure(target: Target, fake: FakeControl, subject_pid: int, plan: Plan) -> dict:
    """Warm-up, burst TTFT/CPU, paced sweep; raises PathError when the warm-up fails."""
    out: dict[str, Any] = {}
    await fake.config(plan.chunks, 0)
    for context in await target.prepare(plan.warmup):
        result = (await run_streams(target, [context], 120))[0]
        if result.error or result.chunks != plan.chunks:
            raise PathError(result.error or f"{result.chunks} of {plan.chunks} chunks")

    # burst: sequential turns, chunks as fast as the fake can send them
    contexts = await target.prepare(plan.ttft_turns)
    await fake.reset()
    watch = CoreWatch(subject_pid)
    cpu = proc_cpu(subject_pid)
    began = time.monotonic()
    results = [(await run_streams(target, [c], 120))[0] for c in contexts]
    wall = time.monotonic() - began
    await asyncio.sleep(0.05)  # the turn's bookkeeping after done
    cpu = proc_cpu(subject_pid) - cpu
    chunks = sum(r.chunks for r in results)
    ttfts = [r.ttft_ms for r in results if r.ttft_ms is not None]
    out["burst"] = {
        "turns": len(results),
        "errors": sum(1 for r in results if r.error),
        "first_error": first_error(results),
        "chunks": chunks,
        "ttft_ms_p50": percentile(ttfts, 0.5),
        "ttft_ms_p90": percentile(ttfts, 0.9),
        "turn_ms_p50": percentile([r.duration_ms for r in results if r.ended], 0.5),
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_us_per_chunk": cpu / chunks * 1e6 if chunks else None,
        "other_on_core_share": watch.other_share(),
        "fake": await fake.stats(),
    }
    log(
        f"  {target.name}: burst TTFT p50 {out['burst']['ttft_ms_p50']} ms, "
        f"{out['burst']['cpu_us_per_chunk']} us/chunk"
    )

    # paced sweep
    await fake.config(plan.chunks, plan.interval_ms)
    sweep = []
    levels = list(plan.levels)
    index = 0
    while index < len(levels):
        level = levels[index]
        contexts = await target.prepare(level)
        await fake.reset()
        watch = CoreWatch(subject_pid)
        cpu = proc_cpu(subject_pid)
        began = time.monotonic()
        with RssSampler(subject_pid) as rss:
            try:
                results = await run_streams(target, contexts, plan.step_timeout)
            except TimeoutError:
                sweep.append({"streams": level, "error": f"timed out after {plan.step_timeout}s"})
                break
        wall = time.monotonic() - began
        await asyncio.sleep(0.05)
        cpu = proc_cpu(subject_pid) - cpu
        lateness = [v for r in results for v in r.lateness]
        chunks = len(lateness)
        step = {
            "streams": level,
            "errors": sum(1 for r in results if r.error),
            "first_error": first_error(results),
            "chunks": chunks,
            "chunks_expected": level * plan.chunks,
            "wall_s": wall,
            "lateness_ms": summary_ms(lateness),
            "ttft_ms_p50": percentile([r.ttft_ms for r in results if r.ttft_ms], 0.5),
            "ttft_ms_p99": percentile([r.ttft_ms for r in results if r.ttft_ms], 0.99),
            "cpu_s": cpu,
            "cpu_us_per_chunk": cpu / chunks * 1e6 if chunks else None,
            "cpu_share": cpu / wall,
            "other_on_core_share": watch.other_share(),
            "rss_peak_mib": rss.peak,
            "fake": await fake.stats(),
        }
        sweep.append(step)
        p99 = step["lateness_ms"]["p99"]
        log(
            f"  {target.name}: {level} streams: p99 lateness {p99 and round(p99, 1)} ms, "
            f"fake p99 {step['fake']['lateness_ms']['p99']} ms, errors {step['errors']}, "
            f"TTFT p50 {step['ttft_ms_p50']} ms, {wall:.1f} s, "
            f"other load on its core {step['other_on_core_share']}"
        )
        within = p99 is not None and p99 <= LATENESS_OK_MS and step["errors"] == 0
        if not within and level >= plan.must_reach:
            break
        if index == len(levels) - 1 and within and level < plan.extend_to:
            levels.append(min(plan.extend_to, int(level * 1.5 // 50 * 50)))
        index += 1
    out["sweep"] = sweep
    return out
