"""What authentication adds to a request: each OPENCODE_AUTH mode side by side, in one run.

Run from the repo root: ``python -m bench.bench_auth [--requests 2000]``. The real app runs
in-process (lifespan included) over ``httpx.ASGITransport``, on a fresh SQLite file per mode;
each mode creates a session and then reads it ``--requests`` times (``GET /session/{id}``: the
owner check included), in interleaved rounds. "same token" is a browser's case (one token for an
hour: verified once, then remembered for up to a minute); "new tokens" sends a fresh token each
time, so every request pays the full parse and signature check. Supabase tokens are minted with generated keys; the ES256/RS256 JWKS is
served by the loopback fake of the Supabase auth endpoint (``tests/fakes/supabase_auth.py``),
fetched once and cached. Prints the median and p95 per request and the ratio to ``none``.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from itertools import repeat
from pathlib import Path

import httpx

from opencode.api.app import create_app
from opencode.core.settings import Settings
from tests.fakes.supabase_auth import SigningKeys, SupabaseAuthServer

ADMIN = "bench-admin-token-0123456789"
Headers = Iterator[dict[str, str]]


@asynccontextmanager
async def reader(settings: Settings, headers: Headers) -> AsyncIterator[Callable]:
    """A running app with one session; yields ``read()``, one timed ``GET /session/{id}``."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            created = await client.post("/session", headers=next(headers))
            assert created.status_code == 201, created.text
            path = f"/session/{created.json()['id']}"

            async def read() -> float:
                sent = next(headers)  # made before the clock starts
                started = time.perf_counter()
                response = await client.get(path, headers=sent)
                elapsed = (time.perf_counter() - started) * 1e6
                assert response.status_code == 200, response.text
                return elapsed

            yield read


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fresh_tokens(keys: SigningKeys, alg: str, count: int) -> Headers:
    """A new token (of one user) for every request: each one is parsed and verified."""
    sub = str(uuid.uuid4())
    return iter([bearer(keys.mint(alg, sub=sub)) for _ in range(count)])


def modes(keys: SigningKeys, auth_url: str, requests: int) -> dict[str, tuple[dict, Headers]]:
    supabase = {"SUPABASE_URL": auth_url, "SUPABASE_JWT_SECRET": keys.hs256_secret}
    supabase |= {"OPENCODE_AUTH": "supabase", "OPENCODE_ADMIN_TOKEN": ADMIN}
    basic = {"Authorization": httpx.BasicAuth("opencode", "pw")._auth_header}
    total = requests + 100  # the warm-up and the session's creation too
    return {
        "none": ({}, repeat({})),
        "password (Basic)": ({"OPENCODE_SERVER_PASSWORD": "pw"}, repeat(basic)),
        "admin token": (supabase, repeat(bearer(ADMIN))),
        "HS256, same token": (supabase, repeat(bearer(keys.mint("HS256")))),
        "ES256, same token": (supabase, repeat(bearer(keys.mint("ES256")))),
        "HS256, new tokens": (supabase, fresh_tokens(keys, "HS256", total)),
        "ES256, new tokens": (supabase, fresh_tokens(keys, "ES256", total)),
        "RS256, new tokens": (supabase, fresh_tokens(keys, "RS256", total)),
    }


async def main(requests: int, rounds: int = 20) -> None:
    keys = SigningKeys()
    with SupabaseAuthServer(keys) as auth, tempfile.TemporaryDirectory() as directory:
        async with AsyncExitStack() as stack:
            readers = {}
            for index, (name, (env, headers)) in enumerate(modes(keys, auth.url, requests).items()):
                database = f"sqlite:///{Path(directory) / f'{index}.db'}"
                settings = Settings(
                    _env_file=None, DATABASE_URL=database, OPENCODE_LOG_LEVEL="WARNING", **env
                )
                readers[name] = await stack.enter_async_context(reader(settings, headers))
            samples: dict[str, list[float]] = {name: [] for name in readers}
            for read in readers.values():  # warm up
                for _ in range(50):
                    await read()
            # Interleaved rounds, so drift (caches, CPU frequency) falls on every mode alike.
            for _ in range(rounds):
                for name, read in readers.items():
                    for _ in range(requests // rounds):
                        samples[name].append(await read())
        print(f"{requests} x GET /session/{{id}} per mode, in-process, interleaved; microseconds")
        print(f"{'mode':<20} {'median':>8} {'p95':>8} {'vs none':>8}")
        baseline = statistics.median(samples["none"])
        for name, values in samples.items():
            median, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
            print(f"{name:<20} {median:8.0f} {p95:8.0f} {median / baseline:7.2f}x")
        print(f"JWKS fetches: {auth.fetches} (one per supabase-mode app at startup)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
