"""Fuzz the gateway from its own OpenAPI schema (schemathesis): no 5xx, and every
documented response conforms to the schema."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import msgspec
import pytest

from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.catalog import demo as seed
from tests.support.http import uvicorn_serve
from tests.support.keys import WRITE_KEY

pytestmark = pytest.mark.integration
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


async def test_no_server_error_and_responses_conform(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await seed.seed(conn, companies=200, my_list=100, liked=10, ignore=20)
    roomy = msgspec.structs.replace(settings, rate_limit_per_s=1e6, rate_limit_burst=10**6)
    async with uvicorn_serve(create_app(roomy)) as url:
        st = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli", "run", f"{url}/schema/openapi.json",
            "--checks", CHECKS, "--max-examples", "15", "--phases", "examples,fuzzing",
            "--exclude-path-regex", "/events$",  # live streams never end
            "--header", f"Authorization: Bearer {WRITE_KEY}", "--request-timeout", "10",
            "--generation-deterministic", "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(st.communicate(), timeout=240)
    report = output.decode(errors="replace")
    assert st.returncode == 0, report[-6000:]
    assert "No issues found" in report or "passed" in report.lower(), report[-3000:]
