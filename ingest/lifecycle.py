"""StartBatch and StopBatch: the gateway admitted or stopped a run (contracts/batches.py);
ingest wakes its supervisor and tells the world with BatchStarted / BatchStopped.

Neither command writes to PostgreSQL here: which runs are admitted lives in Redis
(the truth the producers are fenced by), and the aggregator projects the events
into `batch_runs` for the API. The delivery rules still record each command as
applied, and publish the event after the commit on every delivery, with an id
derived from the command's, so the aggregator applies it once.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from contracts import codec
from contracts.db import DbConnection
from contracts.messages import (
    BatchStarted,
    BatchStopped,
    IngestCommand,
    StartBatch,
    derived_id,
)
from ingest.supervisor import Supervisor


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
