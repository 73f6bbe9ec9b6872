"""Copy every session, with everything it owns, from one store to another.

    python -m opencode.storage.copy SRC_URL DST_URL

Both are ``DATABASE_URL`` values (``sqlite:///…`` or ``postgresql://…``). Each session moves
as one ``SessionBundle`` (``export_session`` then ``import_session``, one transaction in the
destination), so an interrupted copy leaves whole sessions only, and running it again copies
what is missing: a session already in the destination is skipped, and compared with the
source (``differ`` counts those that no longer match). Every user's sessions are copied, each
keeping its owner (``user_id``). Progress goes to stderr (updated in place on a terminal), the
summary to stdout; any failure is one line on stderr and exit status 1, with passwords masked.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from opencode.core.errors import OpencodeError

from .base import Store
from .factory import create_store, mask_url

PAGE = 200  # sessions listed per list_sessions call
PLAIN_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


@dataclass
class CopyTally:
    total: int = 0
    copied: int = 0
    skipped: int = 0  # already in the destination
    differ: int = 0  # of the skipped, those whose destination copy does not match the source
    messages: int = 0  # messages copied

    @property
    def seen(self) -> int:
        return self.copied + self.skipped

    def progress(self) -> str:
        return (
            f"copied {self.copied:,}/{self.total:,} sessions, {self.messages:,} messages"
            f" ({self.skipped:,} already there)"
        )

    def summary(self) -> str:
        differ = f", {self.differ:,} of them differ from the source" if self.differ else ""
        return (
            f"done: {self.total:,} sessions in the source; copied {self.copied:,} "
            f"({self.messages:,} messages), skipped {self.skipped:,} already in the "
            f"destination{differ}"
        )


async def session_ids(store: Store) -> list[str]:
    """Every session id, listed up front so pages do not shift while sessions are copied."""
    ids: list[str] = []
    offset = 0
    while True:
        page, total = await store.list_sessions(limit=PAGE, offset=offset)
        ids += [session.id for session in page]
        offset += len(page)
        if not page or offset >= total:
            return list(dict.fromkeys(ids))  # a session touched mid-listing can appear twice


async def copy_sessions(
    source: Store, destination: Store, on_progress: Callable[[CopyTally], None] = lambda _: None
) -> CopyTally:
    ids = await session_ids(source)
    tally = CopyTally(total=len(ids))
    on_progress(tally)
    for session_id in ids:
        bundle = await source.export_session(session_id)
        if bundle is None:  # deleted since it was listed
            tally.total -= 1
        elif await destination.import_session(bundle):
            tally.copied += 1
            tally.messages += len(bundle.messages)
        else:
            tally.skipped += 1
            tally.differ += int(await destination.export_session(session_id) != bundle)
        on_progress(tally)
    return tally


class Progress:
    """In place on a terminal; otherwise a plain line every ``PLAIN_EVERY`` seconds."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = float("-inf")

    def __call__(self, tally: CopyTally) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r{tally.progress()}\x1b[K")
        elif now - self.last >= PLAIN_EVERY or tally.seen == tally.total:
            self.stream.write(f"{tally.progress()}\n")
        else:
            return
        self.last = now
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


async def open_store(role: str, url: str) -> Store:
    try:
        store = create_store(url)
        await store.initialize()
    except Exception as exc:
        raise CopyFailed(f"cannot open the {role} {mask_url(url)}: {_reason(exc)}") from None
    return store


async def run(source_url: str, destination_url: str, progress: Progress) -> CopyTally:
    source = await open_store("source", source_url)
    try:
        destination = await open_store("destination", destination_url)
        try:
            return await copy_sessions(source, destination, progress)
        finally:
            progress.finish()
            await destination.close()
    finally:
        await source.close()


class CopyFailed(Exception):
    """A failure already phrased as the one line to print."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opencode.storage.copy",
        description="Copy every session (messages, todos, questions, compaction, usage) "
        "from one store to another; sessions already in the destination are skipped.",
    )
    parser.add_argument("source", metavar="SRC_URL", help="DATABASE_URL to copy from")
    parser.add_argument("destination", metavar="DST_URL", help="DATABASE_URL to copy into")
    args = parser.parse_args(argv)
    secrets = [args.source, args.destination]
    try:
        tally = asyncio.run(run(args.source, args.destination, Progress(sys.stderr)))
    except CopyFailed as exc:
        return _fail(str(exc), secrets)
    except Exception as exc:
        return _fail(f"copy failed: {_reason(exc)}", secrets)
    print(tally.summary())
    return 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OpencodeError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(line: str, urls: list[str]) -> int:
    for url in urls:  # whatever a driver echoed back, never print a password
        line = line.replace(url, mask_url(url))
        password = _password(url)
        if password:
            line = line.replace(password, "***")
    print(f"error: {line}", file=sys.stderr)
    return 1


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
