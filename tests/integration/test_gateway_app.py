"""The gateway skeleton against real Redis and PostgreSQL: health, OpenAPI, problems,
body limit, metrics.

Probe routes are added through `create_app(..., extra_route_handlers=...)`; the
production app has none of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.frontdoor.problems import ProblemError
from tests.support.gateway import serve

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT = 1024


class Note(msgspec.Struct):
    text: str


def probe_stream(settings: Settings) -> str:
    return f"{settings.stream_prefix}gateway.probe"


@post("/probe/notes")
async def publish_note(
    data: JSONBody[Note], redis: NamedDependency[Redis], settings: NamedDependency[Settings]
) -> dict[str, str]:
    await redis.xadd(probe_stream(settings), {"text": data.text})
    return {"status": "published"}


@get("/probe/items/{item_id:int}")
async def probe_item(item_id: FromPath[int]) -> dict[str, int]:
    return {"id": item_id}


@get("/probe/boom")
async def probe_boom() -> None:
    raise RuntimeError("secret-internal-detail")


@get("/probe/busy")
async def probe_busy() -> None:
    raise ProblemError(429, "Too many probes", retry_after=7, limit=5)


PROBES = [publish_note, probe_item, probe_boom, probe_busy]


@pytest.fixture
async def client(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        msgspec.structs.replace(settings, max_body_bytes=BODY_LIMIT),
        extra_route_handlers=PROBES,
    )
    async with serve(app) as test_client:
        yield test_client


def assert_problem(response: httpx.Response, status: int, instance: str) -> dict[str, object]:
    assert response.status_code == status, response.json()
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["instance"] == instance
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_with_real_services(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"redis": "ok", "postgres": "ok"}}


async def test_openapi_lists_health_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Conveyor"
    assert {"/healthz", "/readyz"} <= schema["paths"].keys()
    assert "/metrics" not in schema["paths"]
    not_ready = schema["paths"]["/readyz"]["get"]["responses"]["503"]
    assert PROBLEM_JSON in not_ready["content"]


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no/such/thing"), 404, "/no/such/thing")
    assert body["title"] == "Not Found"
    assert "/no/such/thing" in str(body["detail"])


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    body = assert_problem(response, 405, "/healthz")
    assert "GET" in response.headers["allow"]
    assert "DELETE" in str(body["detail"])


async def test_oversized_body_is_413_and_nothing_published(
    client: httpx.AsyncClient, settings: Settings, redis: aioredis.Redis
) -> None:
    response = await client.post("/probe/notes", json={"text": "x" * (BODY_LIMIT + 1)})
    assert_problem(response, 413, "/probe/notes")
    assert await redis.exists(probe_stream(settings)) == 0
    # The same route does publish a body under the limit.
    assert (await client.post("/probe/notes", json={"text": "small"})).status_code == 201
    assert await redis.xlen(probe_stream(settings)) == 1


async def test_malformed_json_is_400_and_nothing_published(
    client: httpx.AsyncClient, settings: Settings, redis: aioredis.Redis
) -> None:
    response = await client.post(
        "/probe/notes", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "/probe/notes")
    assert await redis.exists(probe_stream(settings)) == 0


async def test_invalid_field_lists_errors(
    client: httpx.AsyncClient, settings: Settings, redis: aioredis.Redis
) -> None:
    response = await client.post("/probe/notes", json={"text": 42})
    body = assert_problem(response, 400, "/probe/notes")
    assert body["errors"] == [
        {"message": "Expected `str`, got `int`", "key": "text", "source": "body"}
    ]
    assert await redis.exists(probe_stream(settings)) == 0


async def test_unexpected_error_is_500_without_traceback(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/probe/boom")
    body = assert_problem(response, 500, "/probe/boom")
    assert "secret-internal-detail" not in response.text
    assert "Traceback" not in response.text
    assert body["title"] == "Internal Server Error"


async def test_problem_error_keeps_members_and_retry_after(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/probe/busy")
    body = assert_problem(response, 429, "/probe/busy")
    assert response.headers["retry-after"] == "7"
    assert body["detail"] == "Too many probes"
    assert body["title"] == "Too Many Requests"
    assert body["limit"] == 5


def request_counts(exposition: str) -> dict[tuple[str, str, str], float]:
    """litestar_requests_total by (method, path, status_code)."""
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "litestar_requests_total":
                key = (sample.labels["method"], sample.labels["path"], sample.labels["status_code"])
                counts[key] = sample.value
    return counts


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/healthz")
    await client.get("/probe/items/1")
    await client.get("/probe/items/2")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "litestar_request_duration_seconds_bucket" in response.text
    counts = request_counts(response.text)
    assert counts[("GET", "/healthz", "200")] == 1
    assert counts[("GET", "/probe/items/{item_id}", "200")] == 2


async def test_each_app_has_its_own_registry(client: httpx.AsyncClient, settings: Settings) -> None:
    await client.get("/healthz")
    async with serve(create_app(settings)) as other:
        counts = request_counts((await other.get("/metrics")).text)
    assert ("GET", "/healthz", "200") not in counts
