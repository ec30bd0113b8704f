"""For benchmarks: what some processes' PostgreSQL connections are doing, sampled.

`Sampler(database_url, pids)` polls `pg_stat_activity` for the backends whose client
port belongs to one of the processes (found in /proc: Linux only; elsewhere nothing is
sampled), so that other work on the same server is not counted. Each sample counts
the backends running an `INSERT INTO memberships` (the chunks applied at that
moment; on the throttled database they sleep in the trigger) and those waiting for a
lock (a row another transaction holds: the job's row, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

_LOCK_WAITS = {"transactionid", "tuple", "relation"}


def client_ports(pids: list[int], pg_port: int = 5432) -> set[int]:
    """Local TCP ports of the processes' connections to PostgreSQL (`pg_port`)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    ports: set[int] = set()
    remote_port = f":{pg_port:04X}"
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[2].endswith(remote_port):
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Sampler:
    """`async with Sampler(url, pids) as s:` samples every `every_s` until the block ends."""

    def __init__(self, database_url: str, pids: list[int], every_s: float = 0.01) -> None:
        self.url, self.pids, self.every_s = database_url, pids, every_s
        self.inserting: list[int] = []
        self.lock_waits: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            pg_port = urlsplit(self.url).port or 5432
            ports, found_at = list(client_ports(self.pids, pg_port)), time.monotonic()
            while True:
                if time.monotonic() - found_at > 0.25:  # pools open connections as they go
                    ports, found_at = list(client_ports(self.pids, pg_port)), time.monotonic()
                rows = await conn.fetch(
                    """SELECT state, wait_event, position('INSERT INTO memberships' IN query) > 0
                              AS inserting
                       FROM pg_stat_activity WHERE client_port = ANY ($1::int[])""",
                    ports,
                )
                active = [r for r in rows if r["state"] == "active"]
                self.inserting.append(sum(1 for r in active if r["inserting"]))
                self.lock_waits.append(sum(1 for r in active if r["wait_event"] in _LOCK_WAITS))
                await asyncio.sleep(self.every_s)
        finally:
            await conn.close()

    def summary(self) -> dict[str, object]:
        """Chunks applied at once (backends inserting: on average over the whole copy, and
        while any is) and backends waiting on a lock."""
        if not self.inserting:
            return {"samples": 0}
        busy = [n for n in self.inserting if n > 0] or [0]
        return {
            "samples": len(self.inserting),
            "inserts_in_flight_mean": round(statistics.mean(self.inserting), 1),
            "inserts_in_flight_mean_while_inserting": round(statistics.mean(busy), 1),
            "inserts_in_flight_max": max(self.inserting),
            "lock_waits_mean": round(statistics.mean(self.lock_waits), 2),
        }
