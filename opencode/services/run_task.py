"""The body of a run's task: drive the agent loop into the ``RunDriver`` and always end the
stream with ``done`` or ``error``, whatever happens (abort, shutdown, timeout, failure, crash)."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from opencode.agent.loop import Turn, run_turn
from opencode.core.errors import OpencodeError
from opencode.core.ids import new_id
from opencode.llm.types import ModelClient, ProviderError
from opencode.services.run_driver import RunDriver, uncancel, wait_through_cancels
from opencode.services.run_tools import RunTools
from opencode.tools.registry import ToolRegistry

log = logging.getLogger(__name__)


async def drive(
    driver: RunDriver,
    client: ModelClient,
    registry: ToolRegistry,
    turn: Turn,
    tools: RunTools,
    *,
    turn_timeout: float | None = None,
) -> None:
    """The body of a run's task. Always ends the stream with ``done`` or ``error``, keeping
    what was generated: aborted, timed out, failed or crashed."""
    deadline = asyncio.timeout(turn_timeout)
    try:
        async with (
            deadline,
            contextlib.aclosing(run_turn(client, registry, turn, tools.context_for)) as events,
        ):
            async for event in events:
                await driver.apply(event)
    except asyncio.CancelledError:
        # Aborted (or the server is stopping): keep what was generated. The cancel is consumed
        # here (this task is the run's owner), and so is any further one while the final
        # write runs, so the stream cannot end without its ``done``.
        uncancel()
        reason = driver.run.stop_reason or "aborted"
        await _through_cancels(driver.finish("aborted", reason))
    except TimeoutError:
        if not deadline.expired():
            raise
        await driver.fail(
            f"The turn took longer than {turn_timeout:g} s (OPENCODE_TURN_TIMEOUT) and was "
            "stopped; what was generated is kept.",
            504,
        )
    except (ProviderError, OpencodeError) as exc:
        await driver.fail(exc.message, exc.status_code)
    except Exception:
        reference = new_id("err")
        log.exception("run %s failed (%s)", driver.run.message_id, reference)
        await driver.fail(f"internal error (id {reference})")


async def _through_cancels(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end however many times this task is cancelled meanwhile."""
    task = asyncio.ensure_future(work)
    await wait_through_cancels(task)
    uncancel()
    task.result()
