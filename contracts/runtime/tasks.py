"""Stopping background tasks reliably.

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
import logging
from typing import Any

log = logging.getLogger("conveyor.tasks")

RETRY_S = 0.05


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` until it is done; log (not raise) an error it ended with."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RETRY_S)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("task %s ended with %r", task.get_name(), error)
