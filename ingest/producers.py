"""A run's producer: the background task that makes a batch's points.

It holds the batch's lease (contracts/runtime/batch_registry.py) for as long as it runs:

- every `tick` (1/rate, at least MIN_TICK_S) it emits one RecordPoints with the
  points due since the last one (so the rate is exact on average, and thousands
  of points a second travel as a few messages a second, not thousands), through
  the fenced `emit`: refused once the run is stopped or the lease is lost, and
  the producer ends at once;
- a second task renews the lease every RENEW_S; a renewal that finds the run
  stopped, or the lease gone, ends the producer too. So a stop takes effect on
  the next emission and is noticed within RENEW_S even at a slow rate;
- when Redis cannot be reached for longer than the lease, it stops (another
  process may own the batch by then) and the supervisor tries again later.

Values are drawn by `draw`, timestamps spread evenly over the tick by `spread`:
plain functions, tested without Redis. Draws are clamped to ±MAX_ABS_VALUE (a
normal draw can land anywhere), the bound every point is held to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import datetime, timedelta

from contracts.messages import Point, RecordPoints, StartBatch, new_id, utcnow
from contracts.runtime.batch_registry import MAX_ABS_VALUE, BatchRegistry
from contracts.runtime.tasks import cancel_and_wait

log = logging.getLogger("conveyor.ingest.producer")

MIN_TICK_S = 0.1
RENEW_S = 0.5
MAX_BACKLOG_S = 2.0  # after a stall, points older than this are skipped, not burst


def draw(start: StartBatch, rng: random.Random, n: int) -> list[float]:
    return [_clamp(value) for value in _draw(start, rng, n)]


def _draw(start: StartBatch, rng: random.Random, n: int) -> list[float]:
    if start.distribution == "uniform_int":
        low, high = int(start.low), int(start.high)
        return [float(rng.randint(low, high)) for _ in range(n)]
    if start.distribution == "uniform":
        return [rng.uniform(start.low, start.high) for _ in range(n)]
    return [rng.gauss(start.mean, start.stddev) for _ in range(n)]


def _clamp(value: float) -> float:
    return min(max(value, -MAX_ABS_VALUE), MAX_ABS_VALUE)


def spread(after: datetime, until: datetime, n: int) -> list[datetime]:
    """`n` event times evenly in (after, until], the last one at `until`."""
    step = (until - after) / n
    return [until - step * (n - 1 - i) for i in range(n)]


def tick_s(rate: float) -> float:
    return max(1.0 / rate, MIN_TICK_S)


class Producer:
    def __init__(
        self, start: StartBatch, registry: BatchRegistry, owner: str, lease_ms: int
    ) -> None:
        self.start = start
        self.registry = registry
        self.owner = owner
        self.lease_ms = lease_ms
        self.rng = random.Random()

    async def run(self) -> None:
        """Produce until stopped, fenced off, or cancelled; the lease is released at the end."""
        tasks = {asyncio.create_task(self._produce()), asyncio.create_task(self._keep_lease())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                await cancel_and_wait(task)
            with contextlib.suppress(Exception):
                await self.registry.release(self.start.batch_id, self.owner)

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        rate, tick = self.start.rate, tick_s(self.start.rate)
        began, emitted, last = loop.time(), 0, utcnow()
        ticks = 0
        while True:
            ticks += 1
            await asyncio.sleep(max(0.0, began + ticks * tick - loop.time()))
            due = int((loop.time() - began) * rate) - emitted
            if due > rate * MAX_BACKLOG_S:
                emitted += due - int(rate * MAX_BACKLOG_S)
                due = int(rate * MAX_BACKLOG_S)
            if due <= 0:
                continue
            now = utcnow()
            if not await self._emit(self._points(last, now, due), now):
                return
            emitted, last = emitted + due, now

    def _points(self, last: datetime, now: datetime, n: int) -> list[Point]:
        values = draw(self.start, self.rng, n)
        times = spread(max(last, now - timedelta(seconds=MAX_BACKLOG_S)), now, n)
        return [Point(key=k, ts=t) for k, t in zip(values, times, strict=True)]

    async def _emit(self, points: list[Point], now: datetime) -> bool:
        message = RecordPoints(
            id=new_id(),
            batch_id=self.start.batch_id,
            points=points,
            received_at=now,
            run_id=self.start.id,
            producer=self.owner,
        )
        try:
            return await self.registry.emit(message, run_id=self.start.id, owner=self.owner)
        except Exception as exc:  # Redis away: these points are lost, the run goes on
            log.warning("batch %s: emit failed: %s", self.start.batch_id, exc)
            return True

    async def _keep_lease(self) -> None:
        batch, run = self.start.batch_id, self.start.id
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(RENEW_S, self.lease_ms / 3000))
            try:
                if not await self.registry.renew(batch, run, self.owner, self.lease_ms):
                    log.info("batch %s run %s: stopped or lease lost; producer ends", batch, run)
                    return
                renewed = time.monotonic()
            except Exception as exc:
                if time.monotonic() - renewed > self.lease_ms / 1000:
                    log.warning(
                        "batch %s: lease not renewed in time (%s); producer ends", batch, exc
                    )
                    return
