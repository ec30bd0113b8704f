"""StartBatch and StopBatch: the gateway admitted or stopped a run
(contracts/runtime/batch_registry.py); ingest wakes its supervisor and tells the
world with BatchStarted / BatchStopped.

Neither command writes to PostgreSQL here: which runs are admitted lives in Redis
(the truth the producers are fenced by), and the aggregator projects the events
into `batch_runs` for the API. The delivery rules still record each command as
applied, and publish the event after the commit on every delivery, with an id
derived from the command's, so the aggregator applies it once.

**A command that cannot be applied ends its batch, visibly** (`on_dead_letter`,
told by the delivery rules when an `ingest.commands` entry is dead-lettered):

- a dead-lettered StartBatch: its run is dropped from the admitted runs (if it is
  still the batch's run: a newer start is left alone), which frees its slot and
  fences off any producer of it; then BatchStarted and BatchStopped with the reason
  `failed: ...` are published, so `GET /batches/{id}` shows the run `failed` with
  the reason and the batch's feed says the same;
- a dead-lettered StopBatch: the run was already removed by the stop itself; its
  BatchStopped is published with the reason, so the run shows as stopped in
  PostgreSQL too.

Both events carry ids derived from the command's (the BatchStarted the same as a
normal delivery's), so a repeat changes nothing.
"""

from __future__ import annotations

import logging

import msgspec
import redis.asyncio as aioredis

from contracts import codec
from contracts.messages import (
    BatchStarted,
    BatchStopped,
    IngestCommand,
    Message,
    StartBatch,
    StopBatch,
    derived_id,
    utcnow,
)
from contracts.runtime.batch_registry import FAILED_REASON
from contracts.runtime.db import DbConnection
from ingest.supervisor import Supervisor

log = logging.getLogger("conveyor.ingest.lifecycle")


def event_for(command: IngestCommand) -> BatchStarted | BatchStopped:
    if isinstance(command, StartBatch):
        return BatchStarted(
            id=derived_id(command.id, "started"),
            batch_id=command.batch_id,
            run_id=command.id,
            started_at=command.at,
            rate=command.rate,
            distribution=command.distribution,
        )
    return BatchStopped(
        id=derived_id(command.id, "stopped"),
        batch_id=command.batch_id,
        run_id=command.run_id,
        stopped_at=command.at,
    )


class Lifecycle:
    def __init__(self, redis: aioredis.Redis, events_stream: str, supervisor: Supervisor) -> None:
        self.redis = redis
        self.events_stream = events_stream
        self.supervisor = supervisor

    async def handle(self, command: IngestCommand, conn: DbConnection) -> None:
        """Nothing to write: see the module docstring."""

    async def after_commit(self, command: IngestCommand) -> None:
        self.supervisor.poke()
        await codec.publish(self.redis, self.events_stream, event_for(command))

    async def on_dead_letter(self, message: Message | None, reason: str) -> None:
        """An `ingest.commands` entry was dead-lettered: end its run, visibly."""
        if isinstance(message, StartBatch):
            await self.supervisor.registry.drop(message.batch_id, message.id)
            self.supervisor.poke()
            await codec.publish(self.redis, self.events_stream, event_for(message))
            await codec.publish(self.redis, self.events_stream, failed(message, reason))
        elif isinstance(message, StopBatch):
            stopped = msgspec.structs.replace(
                event_for(message), reason=f"stopped; its StopBatch was dead-lettered: {reason}"
            )
            await codec.publish(self.redis, self.events_stream, stopped)
        else:
            log.error("an undecodable ingest command was dead-lettered: %s", reason)


def failed(start: StartBatch, reason: str) -> BatchStopped:
    """The end of a run whose StartBatch could not be applied."""
    return BatchStopped(
        id=derived_id(start.id, "failed"),
        batch_id=start.batch_id,
        run_id=start.id,
        stopped_at=utcnow(),
        reason=f"{FAILED_REASON}StartBatch dead-lettered: {reason}",
    )
