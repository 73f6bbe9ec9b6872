"""What ``gc.freeze()`` after start-up saves: a full garbage collection's pause, before and after.

Run from the repo root: ``python -m bench.bench_gc [--repeat 20]``. It starts the real app's
lifespan in-process (LiteLLM imported, the model catalog built, as in production) on a throwaway
SQLite file, then times full collections (``gc.collect()``, what the collector's generation 2
pass does on the loop, stopping every stream) with the start-up objects tracked, and again
after ``freeze_startup_objects()``, in one run; prints medians and the ratio.
"""

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path

from opencode.api import lifecycle
from opencode.api.app import create_app
from opencode.core.settings import Settings


def pauses(repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        gc.collect()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(repeat: int) -> None:
    real_freeze = lifecycle.freeze_startup_objects
    lifecycle.freeze_startup_objects = lambda: None  # measure both states in this one process
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{Path(directory) / 'bench.db'}"
        app = create_app(
            Settings(_env_file=None, DATABASE_URL=database, OPENCODE_LOG_LEVEL="WARNING")
        )
        async with app.router.lifespan_context(app):
            tracked = len(gc.get_objects())
            before = pauses(repeat)
            real_freeze()
            after = pauses(repeat)
            frozen = gc.get_freeze_count()
    lifecycle.freeze_startup_objects = real_freeze
    print(f"tracked objects after start-up: {tracked}; frozen: {frozen}")
    not_frozen, frozen_ms = statistics.median(before), statistics.median(after)
    print(
        f"full collection pause, median of {repeat}: not frozen {not_frozen:.1f} ms, "
        f"frozen {frozen_ms * 1000:.1f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    asyncio.run(main(parser.parse_args().repeat))
