"""Each ingest process runs the producers of the batches whose lease it holds.

Every RECONCILE_S (and at once when a StartBatch or StopBatch arrives) the
supervisor reads the admitted runs (`batches.running`) and, for each one with a
producing rate and no producer here, tries to take its lease (SET NX PX). Whoever
gets it runs the producer; everyone else leaves it alone. So:

- a start is picked up by exactly one ingest process, however many run;
- when a process dies (SIGKILL, OOM, host gone) its leases expire after
  `batch_lease_ms` and another, or the restarted, process takes its batches
  over: they carry on, a gap of at most the lease time and never twice;
- on SIGTERM the process stops its producers and releases their leases, so
  another process takes over within one reconcile, not after the lease time.

Points that would have been made while no process held the lease are not made
up afterwards: a producer makes live data, not a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from contracts.messages import StartBatch
from contracts.runtime.batch_registry import BatchRegistry, decode_start
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import cancel_and_wait, every
from ingest.metrics import IngestMetrics
from ingest.producers import Producer

log = logging.getLogger("conveyor.ingest.supervisor")

RECONCILE_S = 0.5


class Supervisor:
    def __init__(self, registry: BatchRegistry, settings: Settings, metrics: IngestMetrics) -> None:
        self.registry = registry
        self.lease_ms = settings.batch_lease_ms
        self.metrics = metrics
        # Unique per Supervisor, so two services in one process never share an owner.
        self.owner = f"{settings.consumer_name}:{uuid.uuid4().hex[:8]}"
        self.producers: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop reconciling, end every producer here and release its lease."""
        if self._loop is not None:
            await cancel_and_wait(self._loop)
        tasks = [task for _, task in self.producers.values()]
        await asyncio.gather(*(cancel_and_wait(task) for task in tasks))

    def poke(self) -> None:
        """Reconcile now (a batch started or stopped)."""
        self._wake.set()

    def producing(self) -> dict[str, str]:
        """batch_id -> run_id of the producers running in this process."""
        return {b: run for b, (run, task) in self.producers.items() if not task.done()}

    async def _run(self) -> None:
        await every(RECONCILE_S, self.reconcile, what="reconcile", logger=log, wake=self._wake)

    async def reconcile(self) -> None:
        running = await self.registry.running()
        wanted = {b: r for b, r in running.items() if b not in self.producing()}
        if not wanted:
            return
        starts = await self.registry.starts()
        for batch_id, run_id in wanted.items():
            start = decode_start(starts.get(batch_id))
            if start is None or start.id != run_id or start.rate <= 0:
                continue
            owner = f"{self.owner}/{run_id}"
            if await self.registry.acquire(batch_id, run_id, owner, self.lease_ms):
                self._launch(start, owner)

    def _launch(self, start: StartBatch, owner: str) -> None:
        log.info("batch %s run %s: producing here (%s/s)", start.batch_id, start.id, start.rate)
        self.metrics.leases.inc()
        producer = Producer(start, self.registry, owner, self.lease_ms)
        task = asyncio.create_task(producer.run())
        self.producers[start.batch_id] = (start.id, task)
        self.metrics.producers.inc()
        task.add_done_callback(lambda _t: self._ended(start.batch_id, task))

    def _ended(self, batch_id: str, task: asyncio.Task[None]) -> None:
        self.metrics.producers.dec()
        if self.producers.get(batch_id, (None, None))[1] is task:
            del self.producers[batch_id]
        self.poke()  # a newer run of the same batch may be waiting for this lease
