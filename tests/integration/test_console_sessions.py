"""Console sessions at the front door: an API key exchanged for an HttpOnly cookie,
taken like the key it stands for, refused for writes without the console's header,
ended by sign-out and by time; a page without a session goes to the sign-in page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.frontdoor.sessions import COOKIE
from tests.support.http import uvicorn_serve
from tests.support.keys import READ_KEY, WRITE_KEY

pytestmark = pytest.mark.integration
CONSOLE = {"X-Conveyor-Console": "1"}


@pytest.fixture
async def url(settings: Settings) -> AsyncIterator[str]:
    async with uvicorn_serve(create_app(settings)) as base:
        yield base


async def signed_in(client: httpx.AsyncClient, key: str) -> httpx.AsyncClient:
    response = await client.post("/console/session", json={"key": key}, headers=CONSOLE)
    assert response.status_code == 200, response.text
    assert response.json()["name"] in {"writer", "reader"}
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "samesite=strict", "path=/"):
        assert attribute.lower() in cookie.lower()
    return client


async def test_a_session_is_taken_like_its_key(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await signed_in(client, WRITE_KEY)
        assert (await client.get("/jobs")).status_code == 200
        # a write with the console's header works ...
        made = await client.post("/collections", json={"name": "from the console"},
                                 headers=CONSOLE)  # fmt: skip
        assert made.status_code == 201, made.text
        # ... and without it is refused: another site's form cannot set a header
        forged = await client.post("/collections", json={"name": "forged"})
        assert forged.status_code == 403
        assert "x-conveyor-console" in forged.json()["detail"]
        assert (await client.post("/auth/tickets", headers=CONSOLE)).status_code == 201


async def test_a_read_only_session_cannot_write(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await signed_in(client, READ_KEY)
        refused = await client.post("/collections", json={"name": "x"}, headers=CONSOLE)
        assert refused.status_code == 403
        assert "lacks the 'write' scope" in refused.json()["detail"]


async def test_sign_in_refuses_a_bad_key_and_a_request_from_elsewhere(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        bad = await client.post("/console/session", json={"key": "nope-nope-nope-nope"},
                                headers=CONSOLE)  # fmt: skip
        assert bad.status_code == 401
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["detail"] == "that API key is not valid"
        assert COOKIE not in bad.headers.get("set-cookie", "")
        elsewhere = await client.post("/console/session", json={"key": WRITE_KEY})
        assert elsewhere.status_code == 403
        assert (await client.post("/console/session", content=b"{")).status_code == 400


async def test_sign_out_and_expiry_end_a_session(
    url: str, redis: aioredis.Redis, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await signed_in(client, WRITE_KEY)
        token = client.cookies[COOKIE]
        assert await redis.ttl(f"{settings.stream_prefix}auth.sessions:{token}") > 0
        out = await client.post("/console/sign-out", headers=CONSOLE)
        assert out.status_code == 204
        assert not await redis.exists(f"{settings.stream_prefix}auth.sessions:{token}")
        client.cookies.set(COOKIE, token)  # a copy of the cookie kept from before
        gone = await client.get("/jobs")
        assert gone.status_code == 401
        assert "expired or was signed out" in gone.json()["detail"]


async def test_a_page_without_a_session_goes_to_sign_in(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        html = {"Accept": "text/html,application/xhtml+xml"}
        page = await client.get("/console/jobs?status=failed", headers=html)
        assert page.status_code == 303
        assert (
            page.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fjobs%3Fstatus%3Dfailed"
        )
        # a fragment (htmx) or a script gets the problem instead, to act on it itself
        fragment = await client.get("/console/jobs", headers={**html, "HX-Request": "true"})
        assert fragment.status_code == 401
        assert (await client.get("/console/sign-in?next=//evil.example")).status_code == 200
        sign_in = await client.get("/console/sign-in?next=//evil.example")
        assert 'data-next="/console/lists"' in sign_in.text
        assert (await client.get("/console/static/console.js")).status_code == 200


async def test_the_api_description_is_public_and_says_how_to_authorize(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        schema = await client.get("/schema/openapi.json")
        assert schema.status_code == 200
        spec = msgspec.json.decode(schema.content)
        assert spec["components"]["securitySchemes"]["apiKey"] == {
            "type": "http", "scheme": "bearer",
            "description": "An API key: Authorization: Bearer <key>",
        }  # fmt: skip
        assert spec["security"] == [{"apiKey": []}]
        assert "/console/session" not in spec["paths"]
        swagger = await client.get("/schema/swagger")
        assert swagger.status_code == 200
        assert "/console/vendor/swagger-ui/swagger-ui-bundle.js" in swagger.text
        assert (
            await client.get("/console/vendor/swagger-ui/swagger-ui-bundle.js")
        ).status_code == 200
        assert (await client.get("/jobs")).status_code == 401
