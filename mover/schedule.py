"""The mover's scheduler: jobs planned with a start time (`not_before`) are started
when it comes.

Every mover process runs `Scheduler.schedule_due` in the background (the task's name,
`mover:schedule_due`, as before the split). It sends StartJob on
`mover.commands` for each planned job that is due; the StartJob ids are derived from
the job (and sent once per minute at most), so several movers start a job once, and
StartJob itself starts only a job that is still scheduled (mover/commands.py).
"""

from __future__ import annotations

import logging

from contracts import codec
from contracts.messages import StartJob, derived_id
from contracts.runtime.tasks import every
from mover import sql
from mover.jobs import Jobs

log = logging.getLogger("conveyor.mover")
SCHEDULER_INTERVAL_S = 1.0


class Scheduler:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def schedule_due(self) -> None:
        """Send StartJob for due jobs, every `SCHEDULER_INTERVAL_S`, until cancelled."""
        await every(SCHEDULER_INTERVAL_S, self._start_due, what="scheduler", logger=log)

    async def _start_due(self) -> None:
        jobs = self.jobs
        for job_id in await sql.due_jobs(conn=jobs.pool()):
            start = StartJob(id=derived_id(job_id, "start"), job_id=job_id)
            await codec.publish_once(jobs.redis, jobs.commands_stream, start, ttl_s=60)
