"""The client rows of ``bench.compare`` in their own process (pinned like the server would be):
``python -m bench.compare_client '<json: {"kind": "raw"|"litellm", "fake_url", "plan"}>'``.

Reads the paced fake directly, with httpx or ``litellm.acompletion``, runs
``compare_core.measure`` with itself as the measured process and prints one JSON object on
stdout (progress goes to stderr).
"""

import asyncio
import json
import os
import sys
import time

from bench.compare_core import (
    FakeControl,
    LiteLLMTarget,
    PathError,
    Plan,
    RawHttpxTarget,
    affinity_of,
    measure,
    proc_mem,
)


async def run(config: dict) -> dict:
    began = time.monotonic()
    kind = config["kind"]
    target = (
        RawHttpxTarget(config["fake_url"]) if kind == "raw" else LiteLLMTarget(config["fake_url"])
    )
    ready = time.monotonic() - began
    fake = FakeControl(config["fake_url"])
    pid = os.getpid()
    out: dict = {"import_s": ready, "rss_idle_mib": proc_mem(pid)["VmRSS"]}
    try:
        plan = Plan(**{**config["plan"], "levels": tuple(config["plan"]["levels"])})
        out.update(await measure(target, fake, pid, plan))
    except PathError as exc:
        out["error"] = str(exc)
    finally:
        await target.aclose()
        await fake.aclose()
    out["vm_hwm_mib"] = proc_mem(pid)["VmHWM"]
    out["affinity"] = affinity_of(pid)
    return out


def main() -> None:
    config = json.loads(sys.argv[1])
    try:
        import resource  # noqa: PLC0415

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    result = asyncio.run(run(config))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
