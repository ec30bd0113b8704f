"""The mover service: planning and applying bulk copy/move jobs.

`create_app(settings)` is its one composition root (see contracts/runtime/service.py).
"""

from __future__ import annotations

import msgspec
from faststream.asgi import AsgiFastStream

from contracts import streams
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings
from mover.dead_letters import DeadLetters
from mover.handlers import Mover


def register(service: Service) -> None:
    s = service.settings
    mover = Mover(service)
    dead = DeadLetters(mover)
    consume = service.delivery.consume
    consume(
        streams.MOVER_COMMANDS, streams.MOVER, mover.on_command, after_commit=mover.after_command,
        on_dead_letter=dead.command,
    )  # fmt: skip
    for spec, workers in (
        (streams.MOVER_CHUNKS, s.mover_concurrency),
        (streams.MOVER_EXPRESS, s.mover_express_concurrency),
    ):
        consume(spec, streams.MOVER, mover.apply, after_commit=mover.after_apply,
                on_dead_letter=dead.chunk, concurrency=workers, batch=workers)  # fmt: skip
    service.background(mover.schedule_due)


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    # Every worker holds a connection while it applies a chunk.
    needed = settings.mover_concurrency + settings.mover_express_concurrency + 4
    settings = msgspec.structs.replace(settings, db_pool_max=max(settings.db_pool_max, needed))
    return build_service("mover", settings, register)
