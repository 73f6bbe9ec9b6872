"""``/event`` fan-out for ``bench.compare``: K raw-socket subscribers on ``GET /event``, one paced
turn, and how late each ``message.part.delta`` reaches the subscribers compared with the same
chunk on the turn's own stream."""

from __future__ import annotations

import asyncio
import contextlib
import time

from bench.compare_core import (
    MARK,
    FakeControl,
    FrameSplitter,
    ServerTarget,
    StreamResult,
    body_pieces,
    event_name,
    log,
    open_http,
    percentile,
    proc_cpu,
)

CONNECT_BATCH = 100


class Subscriber:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.ready = asyncio.Event()
        self.received: dict[int, int] = {}
        self.error: str | None = None
        self.task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        try:
            reader, self._writer, status, headers = await open_http(
                self.host, self.port, "GET", "/event"
            )
            if status != 200:
                self.error = f"HTTP {status}"
                return
            splitter = FrameSplitter()
            async for data in body_pieces(reader, headers):
                now = time.monotonic_ns()
                for frame in splitter.feed(data):
                    name = event_name(frame)
                    if name == b"message.part.delta" or b'"message.part.delta"' in frame:
                        for index, _ in MARK.findall(frame):
                            self.received.setdefault(int(index), now)
                    elif not self.ready.is_set() and b"server.connected" in frame:
                        self.ready.set()
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()  # a failed subscriber must not hold the start
            if self._writer is not None:
                self._writer.close()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


async def one_turn(target: ServerTarget) -> StreamResult:
    [session] = await target.prepare(1)
    return await target.stream(session)


async def fanout(
    target: ServerTarget,
    fake: FakeControl,
    pid: int,
    chunks: int,
    interval_ms: float,
    counts: tuple[int, ...],
) -> dict:
    await fake.config(chunks, interval_ms)
    base = await one_turn(target)
    if base.error:
        return {"error": f"baseline turn: {base.error}"}
    out: dict = {"baseline_turn_ms": base.duration_ms, "levels": []}
    log(f"  fan-out baseline turn {base.duration_ms:.0f} ms")
    for count in counts:
        subscribers = [Subscriber(target.host, target.port) for _ in range(count)]
        began = time.monotonic()
        for start in range(0, count, CONNECT_BATCH):
            batch = subscribers[start : start + CONNECT_BATCH]
            for sub in batch:
                sub.task = asyncio.get_running_loop().create_task(sub.run())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in batch)), 60)
        connect_s = time.monotonic() - began
        failed = [s.error for s in subscribers if s.error]
        await fake.reset()
        cpu = proc_cpu(pid)
        turn = await one_turn(target)
        deadline = time.monotonic() + 60
        want = set(turn.received)
        while time.monotonic() < deadline and any(  # noqa: ASYNC110 (polls K subscribers)
            not want <= s.received.keys() for s in subscribers if not s.error
        ):
            await asyncio.sleep(0.05)
        drained_s = time.monotonic() - began - connect_s
        cpu = proc_cpu(pid) - cpu
        for sub in subscribers:
            sub.stop()
        await asyncio.gather(*(s.task for s in subscribers), return_exceptions=True)
        delays = [
            (sub.received[i] - at) / 1e6
            for sub in subscribers
            for i, at in turn.received.items()
            if i in sub.received
        ]
        expected = len(turn.received) * count
        level = {
            "subscribers": count,
            "connect_s": connect_s,
            "subscriber_errors": len(failed),
            "first_subscriber_error": failed[0] if failed else None,
            "turn_error": turn.error,
            "turn_ms": turn.duration_ms,
            "turn_slowdown": turn.duration_ms / base.duration_ms,
            "turn_lateness_ms_p99": percentile([v / 1e6 for v in turn.lateness], 0.99),
            "deltas_expected": expected,
            "deltas_missing": expected - len(delays),
            "delay_ms": {
                "p50": percentile(delays, 0.5),
                "p99": percentile(delays, 0.99),
                "max": max(delays) if delays else None,
            },
            "all_delivered_s": drained_s,
            "server_cpu_s": cpu,
            "server_cpu_us_per_delivery": cpu / len(delays) * 1e6 if delays else None,
        }
        out["levels"].append(level)
        log(
            f"  fan-out {count}: delay p99 {level['delay_ms']['p99']} ms, slowdown "
            f"{level['turn_slowdown']:.2f}x, missing {level['deltas_missing']}, "
            f"sub errors {len(failed)}"
        )
    return out
