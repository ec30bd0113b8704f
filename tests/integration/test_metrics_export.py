"""Figures one process exports for all (contracts/runtime/exporter.py) on real Redis:
the lock passes between processes and never lets two export at once; the streams'
gauges say what XINFO and XPENDING say; the gateway counts requests no route takes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from contracts import streams
from contracts.codec import entry_fields
from contracts.delivery.stream_gauges import stream_exporter
from contracts.messages import StopBatch
from contracts.runtime.exporter import SoleExport
from contracts.runtime.settings import Settings
from gateway.app import create_app
from tests.support.gateway import serve
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _figures(value: float) -> Sequence[Metric]:
    family = GaugeMetricFamily("conveyor_probe", "A probe figure.")
    family.add_metric([], value)
    return [family]


def _exporter(redis: aioredis.Redis, key: str, value: float, ttl_s: float = 30) -> SoleExport:
    async def read() -> Sequence[Metric]:
        return _figures(value)

    return SoleExport(redis, key, read, owner=f"probe-{value}", interval_s=0.05, ttl_s=ttl_s)


def _exported(exporter: SoleExport) -> list[float]:
    registry = CollectorRegistry()
    registry.register(exporter)
    text = generate_latest(registry).decode()
    return [s.value for f in text_string_to_metric_families(text) for s in f.samples]


@pytest.fixture
def lock(settings: Settings, redis: aioredis.Redis) -> str:
    """A lock key under the test's prefix (the `redis` fixture deletes it afterwards)."""
    return f"{settings.stream_prefix}exporter.probe"


async def test_one_holder_exports_and_the_other_takes_over_when_it_stops(
    redis: aioredis.Redis, lock: str
) -> None:
    first, second = _exporter(redis, lock, 1), _exporter(redis, lock, 2)
    await first.refresh()
    await second.refresh()
    assert (_exported(first), _exported(second)) == ([1], [])
    await first.refresh()  # the holder renews; the other still waits
    await second.refresh()
    assert (first.held(), second.held()) == (True, False)

    await first.release()  # a clean stop
    assert _exported(first) == []
    await second.refresh()
    assert _exported(second) == [2]
    assert await redis.get(lock) == second.owner.encode()


async def test_a_dead_holders_lock_expires_and_it_stops_exporting_before_that(
    redis: aioredis.Redis, lock: str
) -> None:
    dead, live = _exporter(redis, lock, 1, ttl_s=0.3), _exporter(redis, lock, 2, ttl_s=0.3)
    await dead.refresh()
    await live.refresh()
    assert (_exported(dead), _exported(live)) == ([1], [])

    # `dead` renews no more. Its own deadline passes no later than Redis's expiry, so
    # whenever `live` gets the lock, `dead` has stopped exporting.
    async def live_takes_over() -> bool:
        return await live.hold()

    await wait_until(live_takes_over, timeout=5, interval=0.01, what="the lock expired")
    assert (dead.held(), _exported(dead)) == (False, [])
    await live.refresh()
    assert _exported(live) == [2]


async def test_a_failed_read_drops_the_figures(redis: aioredis.Redis, lock: str) -> None:
    calls = 0

    async def read() -> Sequence[Metric]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("PostgreSQL away")
        return _figures(7)

    exporter = SoleExport(redis, lock, read, owner="probe", interval_s=0.05)
    await exporter.refresh()
    assert _exported(exporter) == [7]
    with pytest.raises(ConnectionError):
        await exporter.refresh()
    assert _exported(exporter) == []  # never yesterday's figures as today's


async def test_the_background_loop_exports_and_releases_on_stop(
    redis: aioredis.Redis, lock: str
) -> None:
    exporter = _exporter(redis, lock, 3)
    await exporter.start()
    try:

        async def held() -> bool:
            return exporter.held()

        await wait_until(held, timeout=30, interval=0.02, what="the exporter holding the lock")
        assert _exported(exporter) == [3]
    finally:
        await exporter.stop()
    assert await redis.exists(lock) == 0
    assert _exported(exporter) == []


def _samples(exporter: SoleExport) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(exporter)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


async def test_the_stream_gauges_say_what_redis_says(
    settings: Settings, redis: aioredis.Redis
) -> None:
    spec = streams.INGEST_COMMANDS.prefixed(settings.stream_prefix)
    group = streams.INGEST
    for n in range(5):
        await redis.xadd(spec.name, entry_fields(StopBatch(id=str(n), batch_id="b", run_id="r")))
    await redis.xadd(f"{spec.name}.dlq", {"reason": "poison"})
    await redis.xgroup_create(spec.name, group, id="0")
    await redis.xreadgroup(group, "c1", {spec.name: ">"}, count=2)  # 2 pending, 3 unread
    await asyncio.sleep(0.05)  # so that the oldest pending entry has an age

    exporter = stream_exporter(redis, settings, owner="probe")
    await exporter.refresh()
    found = _samples(exporter)

    on = (("stream", spec.name),)
    of_group = (("group", group), ("stream", spec.name))
    assert found[("conveyor_stream_length", on)] == 5
    assert found[("conveyor_stream_dead_letters", on)] == 1
    assert found[("conveyor_stream_pending", of_group)] == 2
    assert found[("conveyor_stream_lag", of_group)] == 3
    assert found[("conveyor_stream_consumers", of_group)] == 1
    assert 0.05 <= found[("conveyor_stream_oldest_pending_seconds", of_group)] < 30
    assert found[("conveyor_stream_claim_idle_seconds", ())] == settings.claim_idle_ms / 1000
    other = streams.POINTS.prefixed(settings.stream_prefix).name  # not created: length 0
    assert found[("conveyor_stream_length", (("stream", other),))] == 0
    await exporter.release()


async def test_the_gateway_counts_unmatched_routes_under_one_label(settings: Settings) -> None:
    async with serve(create_app(settings)) as client:
        assert (await client.get("/no/such/path/1")).status_code == 404
        assert (await client.get("/no/such/path/2")).status_code == 404
        assert (await client.delete("/healthz")).status_code == 405
        text = (await client.get("/metrics")).text
    counts = {
        (s.labels["method"], s.labels["path"], s.labels["status_code"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "litestar_requests_total"
    }
    assert counts[("GET", "unmatched", "404")] == 2
    assert counts[("DELETE", "unmatched", "405")] == 1
    assert not any("/no/such" in path for _, path, _ in counts)
    timed = (
        'litestar_request_duration_seconds_count{app_name="litestar",method="GET",path="unmatched"'
    )
    assert timed in text
