"""The front door: the auth matrix over every route, tickets, rate limits, body limit."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import httpx_sse
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar

from contracts import streams
from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.frontdoor.auth import is_public
from gateway.frontdoor.keys import BadKeys
from tests.support.http import uvicorn_serve
from tests.support.keys import READ, WRITE

pytestmark = pytest.mark.integration
PUBLIC = {"/healthz", "/readyz"}
SAMPLE = {"uuid": "00000000-0000-4000-8000-000000000001", "str": "x1", "int": "1"}


def every_route(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled in."""
    found = []
    for route in app.routes:
        path = re.sub(r"\{\w+:(\w+)\}", lambda m: SAMPLE.get(m[1], "x1"), route.path)
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
            found.append((method, path))
    return sorted(set(found))


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with uvicorn_serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        yield c


def assert_refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert words in response.json()["detail"]


async def test_every_route_but_health_needs_a_key_of_the_right_scope(
    app: Litestar, client: httpx.AsyncClient, redis: aioredis.Redis, settings: Settings
) -> None:
    routes = every_route(app)
    assert ("POST", "/moves") in routes
    assert ("GET", "/events") in routes
    public = [(m, p) for m, p in routes if is_public(p)]
    # the API's description, the console's sign-in and its static files; nothing else
    assert {p for _m, p in public} >= {"/schema/openapi.json", "/console/sign-in", *PUBLIC}
    assert all(p.startswith(("/schema", "/console/", "/healthz", "/readyz")) for _m, p in public)
    for method, path in routes:
        if is_public(path):
            continue
        nothing = await client.request(method, path)
        assert_refused(nothing, 401, "API key is required")
        assert nothing.headers["www-authenticate"].startswith("Bearer")
        bad = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert_refused(bad, 401, "not valid")
        if method != "GET" and path != "/auth/tickets":
            read_only = await client.request(method, path, headers=READ, json={})
            assert_refused(read_only, 403, "lacks the 'write' scope")
    for path in PUBLIC:
        assert (await client.get(path)).status_code == 200
    commands = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    assert await redis.xlen(commands) == 0, "a refused request published something"


async def test_sse_ticket_works_once_and_expires(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    ticket = (await client.post("/auth/tickets", headers=READ)).json()
    assert ticket["expires_in_s"] == settings.sse_ticket_ttl_s
    url = f"/events?topics=jobs&ticket={ticket['ticket']}"
    async with httpx_sse.aconnect_sse(client, "GET", url) as source:
        assert source.response.status_code == 200
    again = await client.get(url)
    assert_refused(again, 401, "unknown, expired or used")
    on_a_plain_route = await client.get(f"/jobs?ticket={ticket['ticket']}")
    assert_refused(on_a_plain_route, 401, "API key is required")


async def test_expired_ticket_is_refused(settings: Settings) -> None:
    short = msgspec.structs.replace(settings, sse_ticket_ttl_s=1)
    async with (
        uvicorn_serve(create_app(short)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        ticket = (await client.post("/auth/tickets", headers=WRITE)).json()["ticket"]
        await asyncio.sleep(1.5)  # the ticket's lifetime, the thing under test
        late = await client.get(f"/events?ticket={ticket}")
    assert_refused(late, 401, "unknown, expired or used")


async def test_burst_past_the_rate_limit_gets_429_with_retry_after(
    settings: Settings, redis: aioredis.Redis
) -> None:
    tight = msgspec.structs.replace(settings, rate_limit_per_s=1.0, rate_limit_burst=5)
    async with (
        uvicorn_serve(create_app(tight)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        answers = [await client.get("/jobs", headers=WRITE) for _ in range(8)]
        refused_post = await client.post("/moves", headers=WRITE, json={})
        other_key = await client.get("/jobs", headers=READ)

    codes = [a.status_code for a in answers]
    assert codes[:5] == [200] * 5
    assert 429 in codes[5:]
    limited = next(a for a in answers if a.status_code == 429)
    assert_refused(limited, 429, "more than 1 requests a second")
    assert int(limited.headers["retry-after"]) >= 1
    assert refused_post.status_code == 429
    assert other_key.status_code == 200, "each key has its own bucket"
    commands = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    assert await redis.xlen(commands) == 0


async def test_sse_streams_per_key_are_capped(settings: Settings) -> None:
    capped = msgspec.structs.replace(settings, sse_connections_per_key=2)
    async with (
        uvicorn_serve(create_app(capped)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        async with (
            httpx_sse.aconnect_sse(client, "GET", "/events", headers=WRITE) as one,
            httpx_sse.aconnect_sse(client, "GET", "/events", headers=WRITE) as two,
        ):
            assert one.response.status_code == two.response.status_code == 200
            third = await client.get("/events", headers=WRITE)
            assert_refused(third, 429, "has 2 streams open already")
            assert third.headers["retry-after"]
            other_key = await client.get("/jobs", headers=READ)
            assert other_key.status_code == 200
        async with httpx_sse.aconnect_sse(client, "GET", "/events", headers=WRITE) as again:
            assert again.response.status_code == 200, "closed streams free their places"


async def test_oversized_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    body = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    response = await client.post(
        "/collections", content=body, headers=WRITE | {"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


def test_no_keys_no_gateway(settings: Settings) -> None:
    with pytest.raises(BadKeys, match="no API keys"):
        create_app(msgspec.structs.replace(settings, api_keys=""))
    with pytest.raises(BadKeys, match="shorter than 16"):
        create_app(msgspec.structs.replace(settings, api_keys="k:short:read"))
