"""A batch through the four services as processes: start, points aggregated, stop."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from contracts.messages import utcnow
from tests.e2e.conftest import Stack
from tests.support.keys import WRITE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def test_a_batch_runs_end_to_end(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=5, headers=WRITE) as client:
        started = await client.put("/batches/e2e", json={"rate": 50})
        assert started.status_code == 201, started.text

        async def points_so_far() -> int:
            return int((await client.get("/batches/e2e")).json()["points"])

        await wait_until(points_so_far, timeout=30, what="generated points aggregated")
        pushed = await client.post("/batches/e2e/points", json=[{"key": 1e6}])
        assert pushed.status_code == 202

        async def pushed_point_in_a_minute() -> bool:
            since = (utcnow() - timedelta(minutes=2)).isoformat()
            series = (await client.get("/batches/e2e/agg", params={"from": since})).json()
            return any(row["max"] == 1e6 for row in series["minutes"])

        await wait_until(pushed_point_in_a_minute, timeout=30, what="the pushed point aggregated")
        assert (await client.get("/stats")).json()["batches_running"] == 1
        assert (await client.delete("/batches/e2e")).status_code == 200
        assert (await client.get("/batches/e2e")).json()["status"] == "stopped"
        metrics = (await client.get(stack.url("ingest") + "/metrics")).text
        assert 'conveyor_points_ingested_total{source="pushed"} 1.0' in metrics
