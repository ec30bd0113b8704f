"""Every dashboard query and every alert rule against a real Prometheus scraping the
services as processes (two movers), after a little real work: a copy that completes,
a batch whose minute closes, a late point, a poison command, an unknown route, a
refused key, an open SSE feed.

Dashboards: every panel's query (Grafana's variables replaced: intervals by a
duration, a dashboard variable by its "All" value) and every variable's
`label_values` must return at least one series. Alert rules: a rule that does not
fire returns nothing, and cutting its threshold off is not always possible (`and`,
a comparison with other series), so each rule's expression must evaluate without
error, Prometheus must report each rule healthy, and every selector it reads must
have series with every label it matches on (`status_code=~"5.."` is read as
`status_code=~".+"`: the run has no 5xx, and a renamed label still fails). A
query that fails names what is missing: the metric, its label, or the label value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import httpx_sse
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import streams
from contracts.codec import DATA_FIELD
from contracts.messages import utcnow
from contracts.runtime.settings import Settings
from gateway.catalog import demo
from tests.e2e.conftest import Stack
from tests.support.keys import READ_KEY, WRITE
from tests.support.processes import free_port, start_module
from tests.support.prometheus import (
    PrometheusApi,
    PrometheusServer,
    Query,
    alert_rules,
    config_for,
    dashboard_queries,
)
from tests.support.promql import selectors
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BATCH = "metrics-e2e"
# A minute closes this long after it ends (the default 10 s only makes the test longer).
GRACE_S = 1.0
# Up to a minute for the batch's first minute to end, then the grace and the closer.
WORK_WITHIN_S = 120.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, late_grace_s=GRACE_S)


@pytest.fixture
async def second_mover(stack: Stack, settings: Settings, tmp_path: Path) -> AsyncIterator[int]:
    """Another mover process beside the stack's (compose runs two)."""
    port = free_port()
    proc = start_module("mover", settings, tmp_path / "mover-2.log", MOVER_PORT=str(port))
    try:
        async with httpx.AsyncClient(timeout=2) as client:

            async def up() -> bool:
                assert proc.poll() is None, (tmp_path / "mover-2.log").read_text()
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success
                return False

            await wait_until(up, timeout=30, what="the second mover healthy")
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
async def prometheus(
    stack: Stack, second_mover: int, tmp_path: Path
) -> AsyncIterator[PrometheusApi]:
    key_file = tmp_path / "prometheus_key"
    key_file.write_text(READ_KEY)
    local = "127.0.0.1:{}".format
    targets = {name: [local(port)] for name, port in stack.ports.items()}
    targets["mover"].append(local(second_mover))
    server = PrometheusServer(tmp_path, config_for(targets, key_file))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:

            async def ready() -> bool:
                assert server.process.poll() is None, server.log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get("/-/ready")).is_success
                return False

            await wait_until(ready, timeout=30, what="prometheus ready")
            yield PrometheusApi(client)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


async def test_every_dashboard_and_alert_query_has_series(
    stack: Stack, prometheus: PrometheusApi, settings: Settings, pool: asyncpg.Pool
) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.url("gateway"), timeout=10, headers=WRITE) as client,
        _sse_client(stack.url("gateway")),
    ):
        await _do_some_work(client, settings, pool)
        await _until_every_target_is_up(prometheus)
        await _until_every_query_has_series(prometheus, dashboard_queries())
        await _check_alert_rules(prometheus)
        await _check_the_figures(prometheus, settings)


async def _do_some_work(client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:  # My List: 1..200; Liked Companies: 1..10
        await demo.seed(conn, companies=300, my_list=200, liked=10, ignore=20)
    move = await client.post(
        "/moves",
        json={"source": str(demo.MY_LIST), "target": str(demo.LIKED), "mode": "copy",
              "selection": {"all": True}},
    )  # fmt: skip
    assert move.status_code == 202, move.text
    started = await client.put(f"/batches/{BATCH}", json={"rate": 20})
    assert started.status_code == 201, started.text
    late = (utcnow() - timedelta(minutes=10)).isoformat()
    points = [{"key": 1.5}, {"key": 2, "ts": late}]  # the second one is late
    pushed = await client.post(f"/batches/{BATCH}/points", json=points)
    assert pushed.status_code == 202, pushed.text
    redis = aioredis.from_url(settings.redis_url)
    try:  # a command nobody can decode: dead-lettered at once
        commands = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
        await redis.xadd(commands, {DATA_FIELD: b'{"type": "NoSuchCommand"}'})
    finally:
        await redis.aclose()
    assert (await client.get("/no/such/route")).status_code == 404
    refused = await client.get("/jobs", headers={"Authorization": "Bearer not-a-key"})
    assert refused.status_code == 401
    job = move.json()["id"]

    async def completed() -> bool:
        return (await client.get(f"/jobs/{job}")).json()["status"] == "completed"

    await wait_until(completed, timeout=30, what="the copy completed")


@contextlib.asynccontextmanager
async def _sse_client(gateway: str) -> AsyncIterator[None]:
    """A client following GET /events while the test runs."""
    opened = asyncio.Event()

    async def follow() -> None:
        async with (
            httpx.AsyncClient(base_url=gateway, timeout=None, headers=WRITE) as client,
            httpx_sse.aconnect_sse(client, "GET", "/events") as feed,
        ):
            assert feed.response.status_code == 200
            opened.set()
            async for _ in feed.aiter_sse():
                pass

    task = asyncio.create_task(follow())
    try:
        await wait_until(lambda: _done_or(opened, task), timeout=10, what="the SSE feed open")
        if task.done():
            task.result()  # what it failed with
            raise AssertionError("the SSE feed ended at once")
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _done_or(event: asyncio.Event, task: asyncio.Task[None]) -> bool:
    return event.is_set() or task.done()


async def _until_every_target_is_up(api: PrometheusApi) -> None:
    async def all_up() -> bool:
        found = await api.query("up")
        return len(found) == 5 and all(s["value"][1] == "1" for s in found)

    await wait_until(all_up, timeout=30, interval=0.5, what="the 5 targets scraped and up")


async def _until_every_query_has_series(api: PrometheusApi, queries: list[Query]) -> None:
    """Poll until every query returns a series (the work takes a while to show: the
    batch's minute closes at the next minute); at the deadline, fail naming for each
    empty query what Prometheus lacks."""
    deadline = time.monotonic() + WORK_WITHIN_S
    while True:
        empty = [q for q in queries if not await _series(api, q)]
        if not empty:
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    report = []
    for q in empty:
        report.append(f"{q.where}\n    {q.expr}")
        report += [f"      {why}" for why in await api.missing(q.expr)]
    head = f"{len(empty)} of {len(queries)} dashboard queries return no series:"
    pytest.fail("\n".join([head, *report]))


async def _series(api: PrometheusApi, query: Query) -> int:
    try:
        return len(await api.query(query.expr))
    except AssertionError as exc:
        raise AssertionError(f"{query.where}: Prometheus refuses the query: {exc}") from None


async def _check_alert_rules(api: PrometheusApi) -> None:
    rules = alert_rules()
    for name, expr in rules:
        await _series(api, Query(f"alert {name}", expr))  # evaluates, may be empty
        loose = [str(s.loosened()) for s in selectors(expr)]
        for selector in loose:
            assert await api.query(selector), f"alert {name} reads {selector}: " + "; ".join(
                await api.missing(selector)
            )
    loaded = (await api.client.get("/api/v1/rules")).json()["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError")) for g in loaded for r in g["rules"]}
    assert {name for name, _ in rules} <= set(health), "prometheus did not load every rule"

    async def evaluated() -> dict[str, tuple[str, object]] | None:
        groups = (await api.client.get("/api/v1/rules")).json()["data"]["groups"]
        now = {r["name"]: (r["health"], r.get("lastError")) for g in groups for r in g["rules"]}
        return now if all(h != "unknown" for h, _ in now.values()) else None

    health = await wait_until(evaluated, timeout=15, interval=0.5, what="every rule evaluated")
    assert all(h == "ok" for h, _ in health.values()), health


async def _value(api: PrometheusApi, expr: str) -> float | None:
    found = await api.query(expr)
    assert len(found) <= 1, f"{expr}: {found}"
    return float(found[0]["value"][1]) if found else None


async def _shows(api: PrometheusApi, expr: str, want: float, *, at_least: bool = False) -> None:
    """Wait until `expr` is `want` (or more): gauges are read every few seconds, and
    a minute closes up to a minute after the batch started."""

    async def there() -> bool:
        value = await _value(api, expr)
        return value is not None and (value >= want if at_least else value == want)

    try:
        await wait_until(there, timeout=WORK_WITHIN_S, interval=0.5, what=expr)
    except AssertionError:
        raise AssertionError(f"{expr} is {await _value(api, expr)}, not {want}") from None


async def _check_the_figures(api: PrometheusApi, settings: Settings) -> None:
    """What the work should show, and that one process exports the streams' gauges."""
    prefix = settings.stream_prefix
    one_each = await api.query("count by (stream) (conveyor_stream_length)")
    assert {s["metric"]["stream"] for s in one_each} == {
        spec.prefixed(prefix).name for spec in streams.ALL
    }
    assert {s["value"][1] for s in one_each} == {"1"}, "a stream exported twice"
    await _shows(api, "count(count by (instance) (conveyor_stream_length))", 1)
    await _shows(api, 'sum(up{service="mover"})', 2)
    await _shows(api, 'sum(conveyor_rows_total{kind="copy", outcome="added"})', 190)
    await _shows(api, 'sum(conveyor_rows_total{kind="copy", outcome="already_present"})', 10)
    await _shows(api, 'sum(conveyor_jobs_by_status{kind="copy", status="completed"})', 1)
    await _shows(api, f'sum(conveyor_stream_dead_letters{{stream="{prefix}mover.commands"}})', 1)
    await _shows(api, 'sum(conveyor_messages_total{outcome="dead_lettered"})', 1)
    await _shows(api, 'sum(litestar_requests_total{path="unmatched"})', 1, at_least=True)
    await _shows(api, "sum(conveyor_late_points_total)", 1)
    await _shows(api, "sum(conveyor_sse_clients)", 1, at_least=True)
    await _shows(api, "sum(conveyor_minutes_closed_total)", 1, at_least=True)
    # And a query that lost its metric or label value says which.
    assert await api.missing("sum(conveyor_stream_lagg)") == [
        "conveyor_stream_lagg: no such metric is scraped (gone, or renamed?)"
    ]
    assert await api.missing('conveyor_stream_lag{group="aggregatorr"}') == [
        'conveyor_stream_lag{group="aggregatorr"}: no series; '
        "group is one of ['aggregator', 'ingest', 'mover']"
    ]
