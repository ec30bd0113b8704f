"""The mover service: planning and applying bulk copy/move/remove/delete jobs.

`create_app(settings)` is its one composition root (see contracts/runtime/service.py).
Where each stream is handled:

- `mover.commands`: mover/commands.py (MoveCompanies, StartJob, CancelJob, RetryJob;
  a job of one page is applied there at once: mover/short.py);
- `mover.chunks` and `mover.express`: mover/chunks.py (ApplyChunk);
- their dead letters: mover/dead_letters.py;
- jobs with a start time: mover/schedule.py, in the background.

What they share (releasing chunks, publishing job events) is mover/jobs.py, their
decisions are mover/planning.py, and their SQL is mover/sql.py.
"""

from __future__ import annotations

import msgspec
from faststream.asgi import AsgiFastStream

from contracts import streams
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings
from contracts.runtime.tasks import Forever
from mover.chunks import Chunks
from mover.commands import Commands
from mover.dead_letters import DeadLetters
from mover.jobs import Jobs
from mover.metrics import MoverMetrics
from mover.schedule import Scheduler

# Commands read together (up to this many, `mover_command_concurrency` reads in flight)
# are applied in one transaction, in stream order (contracts/delivery: `many`); a small
# job's rows go in that transaction too (mover/short.py).
COMMANDS_MANY = 16


def register(service: Service) -> None:
    s = service.settings
    jobs = Jobs(service)
    metrics = MoverMetrics(service.metrics.registry)
    chunks = Chunks(jobs, metrics)
    commands, dead = Commands(jobs, metrics), DeadLetters(jobs)
    consume = service.delivery.consume
    consume(
        streams.MOVER_COMMANDS, streams.MOVER, commands.handle, after_commit=commands.after,
        after_commit_many=commands.after_many, on_dead_letter=dead.command,
        concurrency=s.mover_command_concurrency, many=COMMANDS_MANY,
    )  # fmt: skip
    for spec, workers in (
        (streams.MOVER_CHUNKS, s.mover_concurrency),
        (streams.MOVER_EXPRESS, s.mover_express_concurrency),
    ):
        consume(spec, streams.MOVER, chunks.apply, after_commit=chunks.after_apply,
                on_dead_letter=dead.chunk, concurrency=workers, batch=workers)  # fmt: skip
    service.background(Forever(Scheduler(jobs).schedule_due, name="mover:schedule_due"))


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    # Every worker holds a connection while it applies a chunk or a command.
    s = settings
    needed = s.mover_concurrency + s.mover_express_concurrency + s.mover_command_concurrency + 4
    settings = msgspec.structs.replace(settings, db_pool_max=max(settings.db_pool_max, needed))
    return build_service("mover", settings, register)
