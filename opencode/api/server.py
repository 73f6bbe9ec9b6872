"""The launcher (``serve``, what ``python app.py`` runs) and the HTTP protocol guard.

uvicorn's h11 protocol holds a connection for as long as the client keeps it open: one that
never finishes its headers or its body costs a file descriptor forever, and a few hundred of
them stop the server accepting anything. ``GuardedH11Protocol`` adds, per connection:

* a header deadline: the request head must be complete ``header_timeout`` seconds after the
  connection opened, or after the first byte of the next request on a kept-alive connection
  (absolute, so trickling bytes does not extend it); then a 408 and close;
* a body inactivity timeout: ``body_timeout`` seconds without request body data closes the
  connection (the app sees a disconnect). Time during which we hold the client back (reading
  paused by uvicorn's flow control, or a ``100 Continue`` not sent yet) does not count, and it
  never applies while a response streams (SSE responses run for minutes);
* a connection cap: a connection beyond ``max_connections`` closes the oldest one that is idle
  or still sending its head (the slow-loris victim); only when there is none is it refused
  (503, ``Retry-After``).

What it relies on in uvicorn 0.54 (``protocols/http/h11_impl.py``, ``server.py``):

* ``Server.startup`` builds each protocol as ``http_protocol_class(config=, server_state=,
  app_state=, _loop=)``; ``Config(http=...)`` takes any such callable (here a ``partial``);
* the ``H11Protocol`` hooks ``connection_made``, ``data_received``, ``on_response_complete`` and
  ``connection_lost``, each extended by calling ``super()`` first;
* its attributes ``conn`` (the ``h11.Connection``: ``their_state``, ``our_state`` and
  ``trailing_data`` are h11's public API), ``cycle`` (a new object per request;
  ``waiting_for_100_continue``), ``flow.read_paused``, ``connections`` (the server-wide set
  from ``ServerState``), ``transport`` and ``loop``.
"""

import asyncio
import functools
import json
import logging
import resource
import socket
import sys
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from opencode.core.errors import OpencodeError
from opencode.core.redact import redact
from opencode.core.settings import Settings
from opencode.storage.factory import build_store, choose_store, describe_failure

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 5
SHUTDOWN_BACKSTOP_SECONDS = 5  # beyond the app's own drain (OPENCODE_SHUTDOWN_GRACE)
FD_LIMIT_CAP = 65536
RESERVED_FDS = 64  # the database, provider connections, log files, the listener, epoll
LISTEN_BACKLOG = 2048  # uvicorn's default: the kernel's queue of connections to accept
# asyncio accepts up to ``backlog`` sockets each time the listener wakes up, before any of
# their protocols runs, and a few wake-ups can pass before an eviction closes its socket.
ACCEPT_BURSTS = 3


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the header deadline, body timeout and connection cap."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.opened_at = 0.0
        # loop time by which the pending request's head must be complete; None while no
        # request is pending (an idle kept-alive connection: uvicorn's keep-alive timeout)
        self._header_deadline: float | None = None
        self._deadline_after: object = None  # the cycle before the request the deadline is for
        self._body_active_at = 0.0
        self._body_held = False
        self._watchdog: Any = None  # asyncio.TimerHandle

    @classmethod
    def factory(cls, limits: ConnectionLimits) -> functools.partial:
        """What ``uvicorn.Config(http=...)`` takes: builds one protocol per connection."""
        return functools.partial(cls, limits=limits)

    # uvicorn's hooks

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.opened_at = self.loop.time()
        self._header_deadline = self.opened_at + self.limits.header_timeout
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            log.warning(
                "Refused a connection: all %d connections are busy", self.limits.max_connections
            )
            self._answer_and_close(503, "service_unavailable", _FULL, retry_after=1)
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._body_active_at = self.loop.time()
        super().data_received(data)
        self._note_request_progress()
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._note_request_progress()  # a pipelined request may be waiting in h11's buffer
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_watchdog()
        super().connection_lost(exc)

    # the deadlines

    def waiting_for_request(self) -> bool:
        """Idle, or still receiving a request's head: what the connection cap may close."""
        return (
            self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
            and self.transport.get_protocol() is self
        )

    def _note_request_progress(self) -> None:
        if self.cycle is not self._deadline_after:
            self._header_deadline = None  # a request's head arrived: its deadline is met
            self._deadline_after = self.cycle
        if (
            self._header_deadline is None
            and self.conn.their_state is h11.IDLE
            and self.conn.trailing_data[0]
        ):
            self._header_deadline = self.loop.time() + self.limits.header_timeout

    def _due(self) -> float | None:
        """Loop time of the next deadline in the connection's current state, if any."""
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return None  # closing, or upgraded to a WebSocket
        their_state = self.conn.their_state
        if their_state is h11.IDLE:
            return self._header_deadline
        if their_state is not h11.SEND_BODY or self.conn.our_state is h11.SEND_BODY:
            return None  # the body is in, or a response is streaming
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            self._body_held = True
        elif self._body_held:
            self._body_held = False
        else:
            return self._body_active_at + self.limits.body_timeout
        # we hold the client back (or just stopped): its clock starts again from here
        self._body_active_at = self.loop.time()
        return self._body_active_at + self.limits.body_timeout

    def _arm(self) -> None:
        due = self._due()
        if due is None:
            self._cancel_watchdog()
        elif self._watchdog is None or self._watchdog.when() > due:
            # an earlier check re-arms itself when it finds more time left
            self._cancel_watchdog()
            self._watchdog = self.loop.call_at(due, self._on_watchdog)

    def _on_watchdog(self) -> None:
        self._watchdog = None
        due = self._due()
        if due is None:
            return
        if due > self.loop.time():
            self._watchdog = self.loop.call_at(due, self._on_watchdog)
        elif self.conn.their_state is h11.IDLE:
            log.debug("Closing %s: request head not complete in time", self._peer())
            self._expire_head()
        else:
            log.debug("Closing %s: request body stalled", self._peer())
            self.transport.close()  # the app's receive() now gives http.disconnect

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    # the connection cap

    def _make_room(self) -> bool:
        """Close the oldest connection still waiting for a request; False if there is none."""
        open_connections = [c for c in self.connections if not c.transport.is_closing()]
        if len(open_connections) <= self.limits.max_connections:
            return True  # the excess is already closing
        waiting = [
            c
            for c in open_connections
            if c is not self and isinstance(c, GuardedH11Protocol) and c.waiting_for_request()
        ]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: c.opened_at)
        log.debug("Connection limit reached: closing %s", victim._peer())
        victim._expire_head()
        return True

    def _expire_head(self) -> None:
        if self._header_deadline is None:
            self.transport.close()  # idle kept-alive connection: nothing to answer
        else:
            detail = f"The request headers did not arrive within {self.limits.header_timeout:g} s."
            self._answer_and_close(408, "request_timeout", detail)

    def _answer_and_close(
        self, status: int, error: str, detail: str, retry_after: int | None = None
    ) -> None:
        """A JSON error, written past h11 since no request has been parsed, then close."""
        if self.conn.our_state is h11.IDLE:
            self.transport.write(_error_bytes(status, error, detail, retry_after))
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"


_FULL = "The server is at its connection limit; retry shortly."


def _error_bytes(status: int, error: str, detail: str, retry_after: int | None) -> bytes:
    body = json.dumps({"error": error, "detail": detail}).encode()
    phrase = {408: "Request Timeout", 503: "Service Unavailable"}[status]
    headers = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        headers.append(f"retry-after: {retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


# the launcher


@dataclass(frozen=True)
class ConnectionBudget:
    """What the file descriptor limit leaves for client connections.

    ``accept_batch`` is what asyncio accepts per wake-up (it passes ``backlog`` to both
    ``listen()`` and its accept loop): small under a small limit, so that a wave of new
    connections cannot take the last descriptors before the cap evicts anyone (asyncio then
    stops accepting for a second); ``GuardedServer`` gives the kernel queue its full length.
    """

    fd_limit: int
    accept_batch: int
    max_connections: int

    @classmethod
    def for_fd_limit(cls, fd_limit: int, wanted: int) -> "ConnectionBudget":
        batch = min(LISTEN_BACKLOG, max(16, fd_limit // 32))
        room = fd_limit - RESERVED_FDS - ACCEPT_BURSTS * batch
        return cls(fd_limit, accept_batch=batch, max_connections=max(1, min(wanted, room)))


class GuardedServer(uvicorn.Server):
    """``uvicorn.Server`` whose listening sockets queue ``LISTEN_BACKLOG`` connections however
    few asyncio accepts at a time (relies on uvicorn's ``Server.servers``, the asyncio servers
    ``startup`` made, and on Linux updating the queue length of a listening socket)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", []):  # absent when startup failed
            for listener in server.sockets:
                relisten = socket.socket(fileno=listener.fileno())
                try:
                    relisten.listen(LISTEN_BACKLOG)
                finally:
                    relisten.detach()  # the fd stays asyncio's


def raise_fd_limit(cap: int = FD_LIMIT_CAP) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``cap``); the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("Could not raise the file descriptor limit from %d: %s", soft, exc)
        return soft
    return target


def check_store(settings: Settings) -> str | None:
    """Open and close the configured store once (creating or migrating its schema), so that a
    store that cannot be reached stops the launch with one line instead of a traceback from
    inside uvicorn's lifespan. The problem as that line, or None."""
    try:
        choice = choose_store(settings.database_url, settings.supabase_url, settings.supabase_key)
        store = build_store(choice)
    except OpencodeError as exc:
        return exc.message

    async def probe() -> None:
        await store.initialize()
        await store.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return describe_failure(choice, exc)
    return None


def serve(app: Any, settings: Settings) -> None:
    """Run ``app`` with uvicorn on ``settings.host:settings.port`` behind the guards above;
    exit with status 1 and one line on stderr when the store cannot be opened."""
    problem = check_store(settings)
    if problem is not None:
        print(f"opencode: {redact(problem)}", file=sys.stderr, flush=True)
        raise SystemExit(1)
    budget = ConnectionBudget.for_fd_limit(raise_fd_limit(), settings.max_connections)
    log.info(
        "Accepting up to %d connections (file descriptor limit %d)",
        budget.max_connections,
        budget.fd_limit,
    )
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=budget.max_connections,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=GuardedH11Protocol.factory(limits),  # type: ignore[arg-type]
        loop="asyncio",  # the accept-burst arithmetic above is asyncio's
        backlog=budget.accept_batch,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # the app drains itself on SIGTERM (OPENCODE_SHUTDOWN_GRACE); this is the backstop
        timeout_graceful_shutdown=settings.shutdown_grace + SHUTDOWN_BACKSTOP_SECONDS,
        log_config=None,  # uvicorn's loggers propagate to the root logger the app set up
        access_log=False,  # it would print query strings, and tokens travel in them
    )
    GuardedServer(config).run()
