"""A tiny consumer built exactly like the real services, for testing the delivery rules.

Its handler appends a row to `probe_effects` (no unique key: a message applied
twice shows as two rows), can sleep inside the transaction (to be killed
mid-handler) and can fail on purpose (to become a poison message).
Run as a process: `python -m tests.support.probe` with CONVEYOR_* settings in the env.
"""

from __future__ import annotations

import asyncio
import os

from faststream.asgi import AsgiFastStream

from contracts.messages import Message
from contracts.runtime.db import DbConnection
from contracts.runtime.run import serve
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings
from contracts.streams import HOUR_MS, StreamSpec

GROUP = "probe"
TABLES_DDL = """
CREATE TABLE IF NOT EXISTS probe_effects (
    message_id text NOT NULL, key text NOT NULL, pid int NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS probe_poison (key text PRIMARY KEY);
"""


class Tally(Message, frozen=True, kw_only=True):
    key: str
    sleep_s: float = 0.0


PROBE = StreamSpec("probe.commands", (GROUP,), HOUR_MS, Tally)


async def apply_tally(message: Tally, conn: DbConnection) -> None:
    await conn.execute(
        "INSERT INTO probe_effects (message_id, key, pid) VALUES ($1, $2, $3)",
        message.id,
        message.key,
        os.getpid(),
    )
    if message.sleep_s:
        await asyncio.sleep(message.sleep_s)
    if await conn.fetchval("SELECT true FROM probe_poison WHERE key = $1", message.key):
        raise RuntimeError(f"tally {message.key} is poison")


def create_app(settings: Settings, *, concurrency: int = 1) -> tuple[AsgiFastStream, Service]:
    def register(service: Service) -> None:
        service.delivery.consume(PROBE, GROUP, apply_tally, concurrency=concurrency)

    return build_service("probe", settings, register)


if __name__ == "__main__":
    app, _ = create_app(Settings.from_env(), concurrency=int(os.environ.get("PROBE_WORKERS", "1")))
    serve(app, name="probe", default_port=0)
