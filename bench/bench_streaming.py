"""Streaming overhead: what the server adds on top of the model, measured through the real server.

Run from the repo root: ``python -m bench.bench_streaming [--streams 100] [--chunks 50]
[--concurrency 10] [--litellm-openai]``.

The model is the loopback fake provider (``tests/fakes/provider.py``), which streams its scripted
chunks as fast as it can. Each configuration is run twice:

* ``provider``: the fake's OpenAI stream read directly with httpx, the floor any server sits on;
* ``server``: turns through ``uvicorn app:app`` in a subprocess (``tests/e2e/server.py``), each
  on a fresh session (created before the clock starts): ``POST /session/{id}/message`` read to
  its ``done`` event. The model is ``openai/gpt-4o-mini``, so the server streams it with its native
  OpenAI client, or through LiteLLM with ``--litellm-openai`` (``OPENCODE_NATIVE_OPENAI=false``).

Latencies are per stream: to the first chunk (provider) or first ``text`` event (server), and to
the end. The server's CPU seconds come from ``/proc/<pid>/stat`` of its process, because the fake
provider and this client share the benchmark's own process (its CPU is the ``bench cpu``
column). Then K=1 and K=200 at concurrency 1 and 20 split the server's cost into a fixed part
per turn and a part per chunk.
"""

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import server_env
from tests.e2e.server import ServerProcess
from tests.fakes.provider import FakeProvider, Reply
from tests.sse import SSEParser

TICKS = os.sysconf("SC_CLK_TCK")
SPLIT_CHUNKS = (1, 200)  # K for the fixed-vs-per-chunk split
SPLIT_CONCURRENCY = (1, 20)
WARMUP_TURNS = 5  # LiteLLM imports provider modules lazily, on the first call


class BenchError(Exception):
    """A stream that did not go as scripted: the numbers would mean nothing."""


@dataclass(frozen=True)
class Sample:
    first: float  # seconds from the request to the first chunk / text event
    total: float  # seconds from the request to the end of the stream


@dataclass(frozen=True)
class Result:
    path: str  # "provider" | "server"
    streams: int
    chunks: int
    concurrency: int
    wall: float
    samples: list[Sample]
    bench_cpu: float
    server_cpu: float | None = None
    loop_thread_cpu: float | None = None  # the server's main (event loop) thread

    def cpu_per_turn_ms(self) -> float:
        return self.server_cpu / self.streams * 1e3 if self.server_cpu is not None else math.nan


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def process_cpu(pid: int, thread: int | None = None) -> float:
    """utime + stime in seconds of a process (all its threads) or of one of its threads."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # stat fields 14 and 15


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def run_concurrently(
    count: int, concurrency: int, one: Callable[[int], Awaitable[Sample]]
) -> list[Sample]:
    """``count`` calls of ``one(index)``, at most ``concurrency`` in flight."""
    indexes = iter(range(count))  # shared: each worker takes the next index
    samples: list[Sample] = []

    async def worker() -> None:
        for index in indexes:
            samples.append(await one(index))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, count)):
                group.create_task(worker())
    except* Exception as group:  # the first failure says what went wrong; the rest echo it
        first = group.exceptions[0]
        if isinstance(first, BenchError):
            raise first from None
        raise BenchError(f"{type(first).__name__}: {first}") from first
    return samples


def chunks_reply(chunks: int) -> Reply:
    """Distinct chunks: LiteLLM fails a stream that repeats one chunk 100 times in a row."""
    return Reply(text=[f"tok{index} " for index in range(chunks)], output_tokens=chunks)


def new_client(concurrency: int, **kwargs) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency + 5, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(timeout=60, limits=limits, **kwargs)


# ---- the provider alone ----


async def provider_stream(client: httpx.AsyncClient, url: str, chunks: int) -> Sample:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    began = time.perf_counter()
    first, seen, ended = None, 0, False
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise BenchError(
                f"fake provider answered {response.status_code}: {await response.aread()}"
            )
        async for line in response.aiter_lines():  # OpenAI's "data: [DONE]" is not JSON
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                ended = True
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                seen += 1
                first = first or time.perf_counter()
    if not ended or seen != chunks:
        raise BenchError(f"fake provider stream: {seen} of {chunks} chunks, [DONE] seen: {ended}")
    return Sample(first - began, time.perf_counter() - began)


async def bench_provider(fake: FakeProvider, streams: int, chunks: int, concurrency: int) -> Result:
    fake.reset()
    fake.script(*[chunks_reply(chunks)] * streams)
    url = f"{fake.openai_base}/chat/completions"
    async with new_client(concurrency) as client:
        cpu, began = own_cpu(), time.perf_counter()
        samples = await run_concurrently(
            streams, concurrency, lambda _: provider_stream(client, url, chunks)
        )
        wall, cpu = time.perf_counter() - began, own_cpu() - cpu
    return Result("provider", streams, chunks, concurrency, wall, samples, cpu)


# ---- through the server ----


async def new_session(client: httpx.AsyncClient) -> str:
    response = await client.post("/session", json={"title": "bench"})
    if response.status_code != 201:
        raise BenchError(f"POST /session answered {response.status_code}: {response.text}")
    return response.json()["id"]


async def server_turn(client: httpx.AsyncClient, session_id: str, chunks: int) -> Sample:
    began = time.perf_counter()
    first, texts, last = None, 0, None
    async with client.stream(
        "POST", f"/session/{session_id}/message", json={"content": "Hi"}
    ) as response:
        if response.status_code != 200:
            raise BenchError(
                f"POST /session/{session_id}/message answered {response.status_code}: "
                f"{(await response.aread()).decode(errors='replace')}"
            )
        parser = SSEParser()
        async for line in response.aiter_lines():
            frame = parser.feed(line)
            if frame is None:
                continue
            if frame.type == "text":
                texts += 1
                first = first or time.perf_counter()
            last = frame
    if last is None or last.type != "done" or texts != chunks:
        ending = last.data if last is not None else "nothing"
        raise BenchError(f"turn in {session_id}: {texts} of {chunks} text events, ended {ending}")
    return Sample(first - began, time.perf_counter() - began)


async def bench_server(
    server: ServerProcess, fake: FakeProvider, streams: int, chunks: int, concurrency: int
) -> Result:
    pid = server.proc.pid
    async with new_client(concurrency, base_url=server.url) as client:
        sessions = [await new_session(client) for _ in range(streams)]
        fake.reset()
        fake.script(*[chunks_reply(chunks)] * streams)
        server_cpu, loop_cpu = process_cpu(pid), process_cpu(pid, pid)
        cpu, began = own_cpu(), time.perf_counter()
        samples = await run_concurrently(
            streams, concurrency, lambda index: server_turn(client, sessions[index], chunks)
        )
        wall, cpu = time.perf_counter() - began, own_cpu() - cpu
        await asyncio.sleep(0.05)  # the run task's last bookkeeping after ``done``
        server_cpu = process_cpu(pid) - server_cpu
        loop_cpu = process_cpu(pid, pid) - loop_cpu
    if len(fake.requests) != streams:
        raise BenchError(f"{streams} turns made {len(fake.requests)} provider requests")
    return Result("server", streams, chunks, concurrency, wall, samples, cpu, server_cpu, loop_cpu)


def start_server(fake: FakeProvider, workdir: Path, *, litellm_openai: bool) -> ServerProcess:
    """No retries: a failed provider call must fail the turn, not be hidden in its latency."""
    env = server_env(
        fake,
        workdir,
        OPENCODE_MAX_RETRIES="0",
        OPENCODE_LOG_LEVEL="WARNING",
        OPENCODE_NATIVE_OPENAI=str(not litellm_openai).lower(),
    )
    try:
        return ServerProcess(workdir, env).start()
    except RuntimeError as exc:  # its message carries the server's log
        raise BenchError(str(exc)) from None


def server_log_tail(server: ServerProcess, lines: int = 20) -> str:
    """The server's last log lines, without uvicorn's access lines."""
    kept = [line for line in server.log().splitlines() if 'HTTP/1.1" ' not in line]
    return "\n".join(kept[-lines:]) or "(nothing but access lines)"


# ---- report ----

LEGEND = """
first: to the first chunk (provider) or the first text event (server); total: to the end.
srv cpu: the server process's user+sys CPU; ms/turn and us/chunk divide it by N and N*K.
srv %: server CPU / wall (100 = one core busy); loop %: the share on its event-loop thread.
bench cpu: this process (the fake provider's thread plus the httpx client)."""

HEADER = (
    f"{'path':<9}{'K':>5}{'C':>4}{'N':>5}{'wall s':>8}{'str/s':>7}"
    f"{'first p50/p95 ms':>18}{'total p50/p95 ms':>18}"
    f"{'srv cpu s':>10}{'ms/turn':>8}{'us/chunk':>9}{'srv %':>6}{'loop %':>7}{'bench cpu s':>12}"
)


def row(result: Result) -> str:
    firsts = [s.first * 1e3 for s in result.samples]
    totals = [s.total * 1e3 for s in result.samples]
    line = (
        f"{result.path:<9}{result.chunks:>5}{result.concurrency:>4}{result.streams:>5}"
        f"{result.wall:>8.2f}{result.streams / result.wall:>7.1f}"
        f"{percentile(firsts, 0.5):>9.1f}/{percentile(firsts, 0.95):<8.1f}"
        f"{percentile(totals, 0.5):>9.1f}/{percentile(totals, 0.95):<8.1f}"
    )
    if result.server_cpu is None:
        return line + f"{'':>10}{'':>8}{'':>9}{'':>6}{'':>7}{result.bench_cpu:>12.2f}"
    per_chunk = result.server_cpu / (result.streams * result.chunks) * 1e6
    busy = result.server_cpu / result.wall * 100
    loop = result.loop_thread_cpu / result.server_cpu * 100 if result.server_cpu else math.nan
    return line + (
        f"{result.server_cpu:>10.2f}{result.cpu_per_turn_ms():>8.2f}{per_chunk:>9.0f}"
        f"{busy:>6.0f}{loop:>7.0f}{result.bench_cpu:>12.2f}"
    )


def find(results: list[Result], path: str, chunks: int, concurrency: int) -> Result:
    return next(
        r for r in results if (r.path, r.chunks, r.concurrency) == (path, chunks, concurrency)
    )


def median_total_ms(result: Result) -> float:
    return percentile([s.total for s in result.samples], 0.5) * 1e3


def print_split(results: list[Result]) -> None:
    """Server CPU per turn = fixed + K * per_chunk, solved from the two K of ``SPLIT_CHUNKS``;
    added latency = the server's median turn minus the provider's median stream."""
    low, high = SPLIT_CHUNKS
    print(f"\nserver cost split (from K={low} and K={high}):")
    for concurrency in SPLIT_CONCURRENCY:
        server = {k: find(results, "server", k, concurrency) for k in SPLIT_CHUNKS}
        floor = {k: find(results, "provider", k, concurrency) for k in SPLIT_CHUNKS}
        per_turn = {k: server[k].cpu_per_turn_ms() for k in SPLIT_CHUNKS}
        per_chunk = (per_turn[high] - per_turn[low]) / (high - low)
        fixed = per_turn[low] - low * per_chunk
        added = {k: median_total_ms(server[k]) - median_total_ms(floor[k]) for k in SPLIT_CHUNKS}
        print(
            f"  C={concurrency:<3} CPU {fixed:6.2f} ms per turn + {per_chunk * 1e3:5.0f} us per "
            f"chunk;  added turn latency p50 {added[low]:7.1f} ms at K={low}, "
            f"{added[high]:7.1f} ms at K={high}"
        )


async def run(args: argparse.Namespace, workdir: Path) -> list[Result]:
    configs = [(args.chunks, args.concurrency)]
    configs += [(k, c) for k in SPLIT_CHUNKS for c in SPLIT_CONCURRENCY if (k, c) not in configs]
    results: list[Result] = []
    fake = FakeProvider().start()
    server: ServerProcess | None = None
    try:
        for chunks, concurrency in configs:
            results.append(await bench_provider(fake, args.streams, chunks, concurrency))
            print(row(results[-1]), flush=True)
        server = start_server(fake, workdir, litellm_openai=args.litellm_openai)
        try:
            await bench_server(server, fake, WARMUP_TURNS, args.chunks, 1)
            for chunks, concurrency in configs:
                results.append(await bench_server(server, fake, args.streams, chunks, concurrency))
                print(row(results[-1]), flush=True)
        except BenchError as exc:
            raise BenchError(f"{exc}\nlast server log lines:\n{server_log_tail(server)}") from None
    finally:
        if server is not None:
            server.stop()
        fake.stop()
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100, help="streams (turns) per row (N)")
    parser.add_argument("--chunks", type=int, default=50, help="chunks per stream (K)")
    parser.add_argument("--concurrency", type=int, default=10, help="streams in flight (C)")
    parser.add_argument(
        "--litellm-openai",
        action="store_true",
        help="stream openai/* through LiteLLM (OPENCODE_NATIVE_OPENAI=false), not the native client",
    )
    args = parser.parse_args()
    if min(args.streams, args.chunks, args.concurrency) < 1:
        parser.error("--streams, --chunks and --concurrency must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; chunks are 'tok<n> '")
    print(f"server streams openai/* {'through LiteLLM' if args.litellm_openai else 'natively'}")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as directory:
        try:
            results = asyncio.run(run(args, Path(directory)))
        except BenchError as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 1
    print(LEGEND)
    print_split(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
