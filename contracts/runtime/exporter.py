"""Figures that one process exports for the whole deployment, whichever processes run.

Some gauges describe shared state, not a process: a stream's length and a group's
pending entries, the jobs by status. If every process exported them, a `sum` over the
processes would count them once per replica (two movers: twice). So one process at a
time holds a Redis lock (`SET key owner NX PX ttl`, renewed by the holder in one
script) and exports them; every other process exports nothing for them. When the
holder stops it deletes the lock, and when it dies the lock expires: another process
takes it at its next round, within `interval_s` (or `ttl` after a crash).

`SoleExport` is the lock, a loop and a prometheus Collector in one: every
`interval_s` it takes or renews the lock and, while it holds it, reads the figures
(`read`, which returns metric families). The collector yields the last figures only
while the lock is surely still held: it counts the ttl from before the command that
took the lock was sent, so its own deadline passes before Redis lets anyone else take
the lock. Two processes never export the same figures at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

import redis.asyncio as aioredis
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from contracts.runtime.tasks import cancel_and_wait, every

log = logging.getLogger("conveyor.exporter")

Read = Callable[[], Awaitable[Sequence[Metric]]]

# Take the lock if it is free, renew it if we hold it. ARGV: owner, ttl ms. Returns 1 if held.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# Delete the lock if we hold it. ARGV: owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SoleExport(Collector):
    def __init__(
        self,
        redis: aioredis.Redis,
        key: str,
        read: Read,
        *,
        owner: str,
        interval_s: float,
        ttl_s: float | None = None,
    ) -> None:
        self.redis = redis
        self.key = key
        self.read = read
        # Unique even for two services in one process (tests): the name plus a token.
        self.owner = f"{owner}/{uuid.uuid4().hex[:8]}"
        self.interval_s = interval_s
        self.ttl_s = 3 * interval_s if ttl_s is None else ttl_s
        self._held_until = 0.0  # time.monotonic() deadline; 0: not held
        self._figures: Sequence[Metric] = ()
        self._task: asyncio.Task[None] | None = None

    def held(self) -> bool:
        return time.monotonic() < self._held_until

    def collect(self) -> Iterable[Metric]:
        return self._figures if self.held() else ()

    def describe(self) -> Iterable[Metric]:
        return ()  # the families vary with what is read; no names reserved at registration

    async def hold(self) -> bool:
        """Take or renew the lock; True if this process holds it now."""
        asked = time.monotonic()
        ttl_ms = int(self.ttl_s * 1000)
        if int(await self.redis.eval(_HOLD, 1, self.key, self.owner, ttl_ms)):
            self._held_until = asked + self.ttl_s
            return True
        self._drop()
        return False

    async def refresh(self) -> None:
        """One round: hold the lock, then read the figures (or drop them)."""
        try:
            if await self.hold():
                self._figures = list(await self.read())
        except Exception:
            self._drop()  # stale figures are not exported: the lock may be lost meanwhile
            raise

    async def release(self) -> None:
        if self._held_until:
            self._drop()
            await self.redis.eval(_RELEASE, 1, self.key, self.owner)

    def _drop(self) -> None:
        self._held_until = 0.0
        self._figures = ()

    # --- Background (contracts/runtime/tasks.py) ---------------------------------------

    async def start(self) -> None:
        what = f"exporting {self.key}"
        self._task = asyncio.create_task(
            every(self.interval_s, self.refresh, what=what, logger=log), name=what
        )

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        try:
            await self.release()
        except Exception as exc:  # Redis away: the lock expires by itself
            log.info("%s: lock left to expire (%s)", self.key, exc)
