"""Movers as processes: two share one job; one killed mid-job changes nothing twice."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from contracts.runtime.settings import Settings
from tests.support.mover_stack import MY_LIST, MoverWorld, mover_world
from tests.support.processes import free_port, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


class Movers:
    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings, self.logs = settings, logs
        self.procs: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        log = self.logs / f"mover-{len(self.procs)}.log"
        proc = start_module("mover", self.settings, log, MOVER_PORT=str(port))
        self.procs.append((proc, port))
        return proc, port

    async def applied_chunks(self, port: int) -> float:
        """Chunks this mover applied, from its own /metrics."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        total = 0.0
        for line in text.splitlines():
            counted = line.startswith("conveyor_messages_total{") and 'outcome="applied"' in line
            if counted and ("mover.chunks" in line or "mover.express" in line):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
def movers(settings: Settings, tmp_path: Path) -> Iterator[Movers]:
    group = Movers(settings, tmp_path)
    yield group
    for proc, _ in group.procs:
        kill(proc)


async def up(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 204
    except httpx.TransportError:
        return False


async def copy_all(w: MoverWorld) -> tuple[str, str]:
    target = await w.new_list()
    job = await w.move(source=MY_LIST, target=target, mode="copy", selection={"all": True})
    return job["id"], target


async def test_two_movers_share_one_job(
    settings: Settings, pool: asyncpg.Pool, movers: Movers
) -> None:
    started = [movers.start() for _ in range(2)]
    async with mover_world(
        settings, pool, companies=4000, my_list=3000, slow_ms=2, in_process_movers=0
    ) as w:
        for _, port in started:
            await wait_until(lambda p=port: up(p), timeout=30, what="mover up")
        job_id, target = await copy_all(w)
        job = await w.finished(job_id, within_s=60)
        per_mover = [await movers.applied_chunks(port) for _, port in started]

    assert (job["status"], job["added"]) == ("completed", 3000)
    assert len(await w.members(target)) == 3000
    assert all(n > 0 for n in per_mover), f"chunks applied per mover: {per_mover}"


async def test_mover_killed_mid_job_still_completes_with_exact_counts(
    settings: Settings, pool: asyncpg.Pool, movers: Movers
) -> None:
    (victim, victim_port), (survivor, survivor_port) = movers.start(), movers.start()
    async with mover_world(
        settings, pool, companies=4000, my_list=3000, slow_ms=20, in_process_movers=0
    ) as w:
        for port in (victim_port, survivor_port):
            await wait_until(lambda p=port: up(p), timeout=30, what="mover up")
        job_id, target = await copy_all(w)

        async def victim_working() -> bool:
            return await movers.applied_chunks(victim_port) > 0

        await wait_until(victim_working, timeout=30, what="the first mover applying chunks")
        assert kill(victim, signal.SIGKILL) == -signal.SIGKILL
        at_kill = await w.job(job_id)
        job = await w.finished(job_id, within_s=90)

    assert at_kill["status"] == "running"
    assert at_kill["done"] < 3000, "the mover should die mid-job"
    assert (job["status"], job["total"], job["done"]) == ("completed", 3000, 3000)
    assert (job["added"], job["already_present"]) == (3000, 0)
    assert len(await w.members(target)) == 3000
    assert survivor.poll() is None
