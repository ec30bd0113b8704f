"""What a dead letter of the mover means: the job it belongs to fails, with the reason.

Wired as `on_dead_letter` of the mover's subscriptions (contracts/delivery/consumer.py),
so it runs once the entry is in `<stream>.dlq`. The failure is recorded in the job's
row (`finished_by` = an id derived from the dead message, so it is said once) and
published as JobFailed on jobs.events:

- a MoveCompanies the mover could not plan: the job gets a failed row that keeps the
  command, so a retry plans it (mover/commands.py `_restart`);
- any other command of a job that is not final (StartJob, CancelJob): the job fails;
- a RetryJob: that attempt failed (a new attempt number, with the reason);
- a chunk (ApplyChunk) of the job's current run: the job fails; a retry releases its
  pending pages again.
"""

from __future__ import annotations

import logging

from contracts import codec
from contracts.messages import ApplyChunk, Message, MoveCompanies, RetryJob, derived_id
from mover import sql
from mover.jobs import Jobs

log = logging.getLogger("conveyor.mover")


class DeadLetters:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def command(self, msg: Message | None, reason: str) -> None:
        job_id = getattr(msg, "job_id", None)
        if msg is None or not isinstance(job_id, str):
            return
        by = derived_id(msg.id, "dead-lettered")
        await sql.fail_unapplied(
            conn=self.jobs.pool(), job_id=job_id, by=by,
            error=f"{type(msg).__name__} could not be applied: {reason}",
            command=codec.encode(msg).decode() if isinstance(msg, MoveCompanies) else None,
            retry=isinstance(msg, RetryJob),
        )  # fmt: skip
        await self._said(job_id, by)

    async def chunk(self, msg: Message | None, reason: str) -> None:
        if not isinstance(msg, ApplyChunk):
            return
        by = derived_id(msg.id, "dead-lettered")
        await sql.fail_job(
            conn=self.jobs.pool(), job_id=msg.job_id, by=by, run=msg.run,
            error=f"pages {msg.pages[0]}..{msg.pages[-1]} could not be applied: {reason}",
        )  # fmt: skip
        await self._said(msg.job_id, by)

    async def _said(self, job_id: str, by: str) -> None:
        job = await sql.job(conn=self.jobs.pool(), job_id=job_id)
        if job is not None and job["finished_by"] == by:
            log.error("job %s failed: %s", job_id, job["error"])
            await self.jobs.finished(job, by)
