"""The server's lifetime: the resources built at startup, and a shutdown that loses nothing.

On SIGTERM (or Ctrl+C) the server stops taking new turns (503), gives running turns
``OPENCODE_SHUTDOWN_GRACE`` seconds, then stops them with ``done`` ``stop_reason: "shutdown"``
(their partial replies stored ``aborted``), and ends every ``/event`` stream with a final
``server.shutdown`` event. All of that has to happen before uvicorn's own shutdown waits for the
connections to close, so the drain starts from the signal itself: ``ExitSignals`` chains onto the
handlers uvicorn installs before the lifespan starts. A second Ctrl+C skips the grace period.
"""

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any, NoReturn

import httpx
from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from opencode.api.deps import Services
from opencode.core.ids import EventIds
from opencode.core.redact import register_secrets
from opencode.core.settings import Settings
from opencode.events.bus import EventBus
from opencode.llm.anthropic_native import AnthropicStreamClient
from opencode.llm.gemini_native import GeminiStreamClient
from opencode.llm.http_stream import PooledClient
from opencode.llm.lazy_litellm import LazyLiteLLMClient
from opencode.llm.openai_native import OpenAIStreamClient
from opencode.llm.router import ProviderRouter
from opencode.schemas.common import PROVIDER_IDS
from opencode.services.auth import Authenticator
from opencode.services.codex_history import CodexHistory
from opencode.services.compaction import CompactionPolicy, Compactor
from opencode.services.draft_writer import DraftWriter
from opencode.services.gate import Gate
from opencode.services.providers import ProviderCatalog
from opencode.services.questions import QuestionBroker
from opencode.services.quota import QuotaService
from opencode.services.retry import RetryPolicy
from opencode.services.runs import RunManager
from opencode.services.sessions import SessionService
from opencode.services.titles import TitleService
from opencode.services.todos import TodoService
from opencode.services.turns import TurnBuilder
from opencode.storage.factory import build_store, choose_store
from opencode.storage.instance_lock import AnotherInstance, InstanceLock
from opencode.tools.registry import default_registry

log = logging.getLogger(__name__)

EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PASS_ON_MARGIN = 10.0  # seconds past the grace period after which the signal goes on anyway


JWKS_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


def build_authenticator(settings: Settings, http: httpx.AsyncClient) -> Authenticator:
    verifier = jwks = None
    if settings.auth_mode == "supabase":
        # here: PyJWT and cryptography cost other modes ~40 ms of start-up for nothing
        from opencode.services.tokens import JwksCache, TokenVerifier

        assert settings.supabase_url is not None  # Settings checks it
        auth_url = settings.supabase_url.rstrip("/") + "/auth/v1"
        jwks = JwksCache(auth_url + "/.well-known/jwks.json", http)
        verifier = TokenVerifier(
            issuer=auth_url,
            audience=settings.jwt_audience,
            hs256_secret=settings.supabase_jwt_secret,
            jwks=jwks,
        )
    return Authenticator(
        settings.auth_mode,
        password=settings.server_password,
        admin_token=settings.admin_token,
        verifier=verifier,
        jwks=jwks,
    )


def freeze_startup_objects() -> None:
    """Move everything start-up made (the app's modules, schemas and cost map: ~100k tracked
    objects; LiteLLM's import, when it was needed, ~340k more) out of the garbage collector's
    reach. They live as long as the process, yet every full collection walked them all: a
    ~120 ms pause of every stream on the loop, each time, with LiteLLM (``python -m
    bench.bench_gc``). A LiteLLM imported later is frozen by ``lazy_litellm`` once its import
    is done. Only the young generations are collected first: a full collection would walk all
    of it for the few dozen unreachable objects start-up leaves (~60 ms of start-up)."""
    gc.collect(1)
    gc.freeze()


def litellm_needed(settings: Settings, native: Mapping[str, Any]) -> bool:
    """Whether requests are bound to go through LiteLLM: a provider without a native client
    (its ``OPENCODE_NATIVE_*`` switched off) that has an API key, or that ``OPENCODE_MODEL`` or
    ``OPENCODE_TITLE_MODEL`` names. (A provider without a key cannot be used at all.)"""
    named = {ref.partition("/")[0] for ref in (settings.default_model, settings.title_model) if ref}
    return any(
        provider not in native
        and (bool(getattr(settings, f"{provider}_api_key")) or provider in named)
        for provider in PROVIDER_IDS
    )


def build_services(settings: Settings) -> Services:
    store_choice = choose_store(settings.database_url, settings.supabase_url, settings.supabase_key)
    store = build_store(store_choice)
    http = httpx.AsyncClient(timeout=JWKS_TIMEOUT)
    quota = QuotaService(store, daily_limit=settings.daily_token_limit)
    ids = EventIds()  # one clock for the bus and every run's stream
    bus = EventBus(ids=ids)
    catalog = ProviderCatalog(settings)
    gate = Gate()
    idle = settings.stream_idle_timeout
    # The main providers skip LiteLLM's per-chunk cost (~9x less CPU; bench/README.md).
    native: dict[str, Any] = {}
    if settings.native_openai:
        native["openai"] = OpenAIStreamClient(idle_timeout=idle)
    if settings.native_anthropic:
        native["anthropic"] = AnthropicStreamClient(idle_timeout=idle)
    if settings.native_gemini:
        native["gemini"] = GeminiStreamClient(idle_timeout=idle)
    # Every other request goes through LiteLLM, imported on first use in a thread (~2 s, ~150
    # MiB): a server whose requests all go native never loads it. One that will need it starts
    # the import now, in the background; startup does not wait for it.
    litellm = LazyLiteLLMClient(idle_timeout=idle)
    if litellm_needed(settings, native):
        litellm.warm()
    models = ProviderRouter(litellm, native)
    retry = RetryPolicy(
        max_retries=settings.max_retries,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
    )
    questions = QuestionBroker(store, bus, timeout=settings.question_timeout)
    compactor = Compactor(
        store=store,
        bus=bus,
        client=retry.client(models),
        catalog=catalog,
        quota=quota,
        policy=CompactionPolicy(
            max_messages=settings.compact_messages, ratio=settings.compact_ratio
        ),
    )
    registry = default_registry(settings)
    builder = TurnBuilder(
        store=store,
        bus=bus,
        catalog=catalog,
        registry=registry,
        compactor=compactor,
        quota=quota,
        ids=ids,
        max_output_tokens=settings.max_output_tokens,
        max_step_output_chars=settings.max_step_output_chars,
    )
    writer = DraftWriter(store)
    runs = RunManager(
        store=store,
        bus=bus,
        catalog=catalog,
        registry=registry,
        models=models,
        retry=retry,
        builder=builder,
        todos=TodoService(store, bus),
        questions=questions,
        compactor=compactor,
        gate=gate,
        writer=writer,
        turn_timeout=settings.turn_timeout,
    )
    titles = TitleService(
        store=store,
        bus=bus,
        catalog=catalog,
        models=models,
        retry=retry,
        gate=gate,
        quota=quota,
        title_model=settings.title_model,
    )
    return Services(
        settings=settings,
        models=models,
        store=store,
        bus=bus,
        catalog=catalog,
        questions=questions,
        runs=runs,
        sessions=SessionService(store=store, bus=bus, catalog=catalog, runs=runs),
        history=CodexHistory(store=store, bus=bus, runs=runs),
        titles=titles,
        registry=registry,
        compactor=compactor,
        store_choice=store_choice,
        auth=build_authenticator(settings, http),
        quota=quota,
        http=http,
        writer=writer,
    )


class Shutdown:
    """The drain, started once (by a signal, or by the lifespan's end)."""

    def __init__(self, services: Services, grace: float) -> None:
        self._services = services
        self._grace = grace
        self._hurry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return self._task is not None

    def begin(self, sig: int | None = None) -> asyncio.Task[None]:
        if self._task is None:
            name = signal.Signals(sig).name if sig else "the lifespan's end"
            log.info("shutting down (%s): no new turns", name)
            self._task = asyncio.get_running_loop().create_task(self._drain())
        elif sig is not None:
            log.warning("second %s: stopping running turns now", signal.Signals(sig).name)
            self._hurry.set()
        return self._task

    async def finish(self) -> None:
        """Drain now if no signal did; wait for the drain either way."""
        if self._task is None:
            self._hurry.set()  # nothing waits for the grace period without a signal
        await self.begin()

    async def _drain(self) -> None:
        try:
            await self._services.runs.drain(self._grace, hurry=self._hurry)
        finally:
            self._services.bus.close()


class ExitSignals:
    """Holds SIGINT/SIGTERM back from the handler that was installed (uvicorn's) until the
    drain is over, so the server keeps answering meanwhile (503 for new turns) and every stream
    gets its final event before uvicorn closes the connections.

    Only in the main thread, and only on top of a Python handler: a default handler would kill
    the process, and ignoring the signal ourselves could keep it from ever exiting. Once the
    signal is passed on, later ones go straight through (a third Ctrl+C forces uvicorn out)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]) -> None:
        self._loop = loop
        self._on_signal = on_signal
        self._previous: dict[int, Any] = {}
        self._held: list[tuple[int, FrameType | None]] = []
        self._passed_on = False

    def install(self) -> bool:
        """Install if a server (uvicorn) handles SIGTERM in this thread; False otherwise (a
        test running the app in-process keeps its own Ctrl+C)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if not callable(signal.getsignal(signal.SIGTERM)):
            return False
        for sig in EXIT_SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return bool(self._previous)

    def pass_on(self) -> None:
        """Give the held signals to the handler they were meant for."""
        self._passed_on = True
        held, self._held = self._held, []
        for sig, frame in held:
            self._previous[sig](sig, frame)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self._passed_on:
            self._previous[sig](sig, frame)
            return
        self._held.append((sig, frame))
        self._loop.call_soon_threadsafe(self._on_signal, sig)


def make_lifespan(settings: Settings) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        register_secrets(settings.secret_values())
        services = build_services(settings)
        await services.store.initialize()
        instance = InstanceLock(services.store_choice)
        try:
            await instance.acquire()
        except AnotherInstance as exc:
            await services.store.close()
            refuse_to_serve(exc)
        services.writer.start()
        log.info("storage: %s (%s)", services.store_choice.kind, services.store_choice.shown)
        log.info("auth: %s", _describe_auth(settings))
        await services.auth.prime()
        await services.runs.recover()
        # Read LiteLLM's cost map (its JSON file, not LiteLLM) and build the model lists now,
        # off the loop, not in a first request.
        await asyncio.to_thread(services.catalog.list_providers)
        freeze_startup_objects()
        for client in services.models.by_provider.values():
            if isinstance(client, PooledClient):
                client.warm()  # its HTTP client, made in a thread now, not by the first turn
        shutdown = Shutdown(services, settings.shutdown_grace)
        app.state.services = services
        app.state.shutdown = shutdown
        loop = asyncio.get_running_loop()

        def on_signal(sig: int) -> None:
            drain = shutdown.begin(sig)
            drain.add_done_callback(lambda _: signals.pass_on())
            # A drain that cannot finish must not keep the process alive.
            loop.call_later(settings.shutdown_grace + PASS_ON_MARGIN, signals.pass_on)

        signals = ExitSignals(loop, on_signal)
        if signals.install():
            # We end every SSE stream ourselves, each with its final event; sse-starlette's own
            # drain would cut them at the signal, before the turns are stopped.
            AppStatus.disable_automatic_graceful_drain()
        try:
            yield
        finally:
            signals.restore()
            await shutdown.finish()
            await services.writer.close()  # after the runs: their last writes go through it
            await services.models.aclose()  # after the runs: they stream through it
            await services.store.close()
            await instance.release()
            await services.http.aclose()
            gc.unfreeze()  # what the app held can be collected again (tests run many apps)

    return lifespan


def refuse_to_serve(exc: AnotherInstance) -> NoReturn:
    """Stop start-up with ``exc``'s message. A worker of ``uvicorn --workers N`` also stops its
    supervisor, which would otherwise start it again and again: several workers on one
    database are refused as a whole, not left to fight over it."""
    log.error("%s", exc.message)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        log.error("stopping the worker supervisor (pid %d): one database, one worker", parent.pid)
        os.kill(parent.pid, signal.SIGTERM)
    raise SystemExit(exc.message)


def _describe_auth(settings: Settings) -> str:
    mode = settings.auth_mode
    parts = [mode]
    if mode == "supabase":
        algorithms = "ES256/RS256 via JWKS" + (" + HS256" if settings.supabase_jwt_secret else "")
        parts.append(f"({algorithms}, audience {settings.jwt_audience!r})")
    if settings.admin_token:
        parts.append("+ admin token")
    limit = settings.daily_token_limit
    return " ".join(parts) + f"; daily token limit {limit or 'unlimited'}"
