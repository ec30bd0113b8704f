"""Background work: one shape for it, one loop, and stopping it reliably.

- `Background` (start/stop) is how every service attaches work beside its consumers
  (`Service.background`); `Forever(fn, name)` makes one of a coroutine function.
- `every(interval, step, ...)`: the one `while True / try / log / sleep` loop.

`cancel_and_wait(task)` cancels a task and waits for it to end, cancelling it
again while it runs on. Why again: on Python 3.11, `asyncio.wait_for` returns
the inner result when a cancellation lands just as the inner future completes
(fixed in 3.12), and redis-py sends commands through `wait_for` when a socket
timeout is set. A task cancelled in the middle of a Redis command can therefore
carry on as if it had never been cancelled, and a plain `task.cancel(); await
task` waits for ever (seen in the batch tests' teardown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger("conveyor.tasks")

RETRY_S = 0.05


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` until it is done; log (not raise) an error it ended with."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RETRY_S)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("task %s ended with %r", task.get_name(), error)


class Background(Protocol):
    """Work a service runs beside its consumers: started once connected, stopped on
    shutdown before the broker stops (`Service.background`, gateway lifespans)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Forever:
    """A coroutine function as Background: run as a task from `start` until `stop`."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.run, self.name = run, name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    *,
    what: str,
    logger: logging.Logger,
    wake: asyncio.Event | None = None,
) -> None:
    """Run `step` every `interval_s` (sooner when `wake` is set) until cancelled; a step
    that fails is logged and the next one tries again."""
    while True:
        try:
            await step()
        except Exception as exc:
            logger.warning("%s failed (will retry): %s", what, exc)
        if wake is None:
            await asyncio.sleep(interval_s)
            continue
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that lands as the event is set (see cancel_and_wait above).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await wake.wait()
        wake.clear()
