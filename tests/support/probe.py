"""A tiny consumer built exactly like the real services, for testing the delivery rules.

Its handler appends a row to `probe_effects` (no unique key: a message applied
twice shows as two rows), can sleep inside the transaction (to be killed
mid-handler) and can fail on purpose (to become a poison message).

It consumes one of two ways (`MODES`), so that one contract suite covers both:
`one_by_one` (a transaction per entry) and `batched` (`many=BATCH` entries read
together, applied by `apply_tallies` in one transaction).
Run as a process: `python -m tests.support.probe` with CONVEYOR_* settings in the env
(PROBE_WORKERS: concurrency, PROBE_MODE: one of MODES).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

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
BATCH = 8
MODES = ("one_by_one", "batched")


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


async def apply_tallies(messages: list[Tally], conn: DbConnection) -> None:
    """The batched effect: every row in one statement, then the longest sleep, then the
    poison check for them all."""
    await conn.execute(
        """INSERT INTO probe_effects (message_id, key, pid)
           SELECT m, k, $3 FROM unnest($1::text[], $2::text[]) AS t(m, k)""",
        [m.id for m in messages],
        [m.key for m in messages],
        os.getpid(),
    )
    if longest := max(m.sleep_s for m in messages):
        await asyncio.sleep(longest)
    poison = await conn.fetchval(
        "SELECT min(key) FROM probe_poison WHERE key = ANY($1::text[])", [m.key for m in messages]
    )
    if poison:
        raise RuntimeError(f"tally {poison} is poison")


def consume_kwargs(mode: str) -> dict[str, Any]:
    """How `consume` is called in each of MODES."""
    if mode == "batched":
        return {"many": BATCH, "handle_many": apply_tallies}
    assert mode == "one_by_one", mode
    return {}


def create_app(
    settings: Settings, *, concurrency: int = 1, mode: str = "one_by_one"
) -> tuple[AsgiFastStream, Service]:
    def register(service: Service) -> None:
        service.delivery.consume(
            PROBE, GROUP, apply_tally, concurrency=concurrency, **consume_kwargs(mode)
        )

    return build_service("probe", settings, register)


if __name__ == "__main__":
    app, _ = create_app(
        Settings.from_env(),
        concurrency=int(os.environ.get("PROBE_WORKERS", "1")),
        mode=os.environ.get("PROBE_MODE", "one_by_one"),
    )
    serve(app, name="probe", default_port=0)
