"""The four services started as processes, as `make run` starts them."""

from __future__ import annotations

import signal

import httpx
import httpx_sse
import pytest

from tests.e2e.conftest import SERVICES, Stack
from tests.support.keys import WRITE

pytestmark = pytest.mark.e2e


async def test_all_four_services_come_up_ready_with_metrics(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=5, headers=WRITE) as client:
        ready = await client.get(stack.url("gateway") + "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"redis": "ok", "postgres": "ok"}
        for name in SERVICES:
            metrics = await client.get(stack.url(name) + "/metrics")
            assert metrics.status_code == 200
            wanted = "litestar_requests_total" if name == "gateway" else "conveyor_messages_total"
            assert wanted in metrics.text, name


async def test_sigterm_stops_every_service_promptly_even_with_open_streams(stack: Stack) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30, headers=WRITE) as client,
        httpx_sse.aconnect_sse(client, "GET", "/events") as feed,
    ):
        assert feed.response.status_code == 200
        for proc in stack.procs.values():
            proc.send_signal(signal.SIGTERM)
        events = [sse.event async for sse in feed.aiter_sse() if sse.event]
    assert events == ["closed"], "the gateway ends open streams when it stops"
    for name, proc in stack.procs.items():
        code = proc.wait(timeout=20)
        assert code in (0, -signal.SIGTERM), f"{name} exited with {code}"
