"""One server process per SQLite database, while running turns are coordinated in memory.

A running turn's busy lock, abort, question answers and event log live in the memory of the
process that runs it, and at start-up ``RunManager.recover`` marks every ``running`` reply of
the database interrupted. Several processes on one SQLite file (``uvicorn app:app --workers
4``) would answer 409 and 404 at random and break each other's live turns at every start. So a
server holds ``flock`` on ``<database>.lock`` for its whole life (the kernel drops it when the
process dies, ``kill -9`` included), and a second one refuses to start, saying why.

PostgreSQL and Supabase are left unlocked: several instances on one of them share sessions and
quotas, each serving its own turns (a deployment that keeps a session on one instance works
today); coordinating turns across them is issue 13's Redis coordinator.
"""

import asyncio
import fcntl
import os
from pathlib import Path
from typing import IO

from opencode.core.errors import OpencodeError

from .factory import StoreChoice


class AnotherInstance(OpencodeError):
    """A server process already serves this database."""

    status_code = 503
    error = "another_instance"


def _refusal(where: str) -> AnotherInstance:
    return AnotherInstance(
        f"Another OpenCode server process already uses {where}. Running turns are coordinated "
        "in each process's memory, so one SQLite database takes one server process: stop the "
        "other one, or run a single worker (no `--workers N`)."
    )


class InstanceLock:
    """Held from ``acquire()`` to ``release()`` (the lifespan's start and end)."""

    def __init__(self, choice: StoreChoice) -> None:
        self._choice = choice
        self._file: IO[bytes] | None = None

    async def acquire(self) -> None:
        """Take the lock, or raise ``AnotherInstance`` (and hold nothing)."""
        if self._choice.kind == "sqlite":
            await asyncio.to_thread(self._lock_file)

    async def release(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            await asyncio.to_thread(file.close)  # closing drops the flock

    def _lock_file(self) -> None:
        database = self._choice.host  # the file's path, for SQLite
        if database == ":memory:":
            return
        path = Path(f"{database}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("ab")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise _refusal(f"the SQLite database {database}") from None
        except BaseException:
            file.close()
            raise
        file.truncate(0)
        file.write(f"{os.getpid()}\n".encode())
        file.flush()
        self._file = file
