"""Problem bodies and readiness decisions, without Redis or PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from gateway.frontdoor.health import check_dependencies, readiness_failure
from gateway.frontdoor.problems import PROBLEM_JSON, ProblemError, problem

pytestmark = pytest.mark.unit


def body_of(response: Any) -> dict[str, Any]:
    return cast(
        dict[str, Any], msgspec.json.decode(response.render(response.content, PROBLEM_JSON))
    )


def test_problem_has_rfc9457_members_and_extras() -> None:
    response = problem(409, None, "Job 7 is already running", instance="/jobs/7", job_id=7)
    assert response.status_code == 409
    assert response.media_type == PROBLEM_JSON
    assert body_of(response) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Job 7 is already running",
        "instance": "/jobs/7",
        "job_id": 7,
    }


def test_problem_defaults_detail_to_the_status_phrase() -> None:
    assert body_of(problem(404))["detail"] == "Not Found"


def test_problem_error_sets_retry_after_and_keeps_members() -> None:
    error = ProblemError(429, "Slow down", retry_after=3, limit=100)
    assert error.status_code == 429
    assert error.headers == {"Retry-After": "3"}
    assert error.members == {"limit": 100}
    assert error.detail == "Slow down"


def test_ready_when_every_check_is_ok() -> None:
    assert readiness_failure({"redis": "ok", "postgres": "ok"}) is None


def test_not_ready_names_what_is_down() -> None:
    checks = {"redis": "ok", "postgres": "ConnectionRefusedError: no"}
    failure = readiness_failure(checks)
    assert failure is not None
    assert failure.status_code == 503
    assert failure.detail == "postgres: ConnectionRefusedError: no"
    assert failure.members == {"checks": checks}


class HangingRedis:
    async def ping(self) -> bool:
        await asyncio.Event().wait()
        return True


class BrokenPool:
    async def fetchval(self, query: str) -> object:
        raise ConnectionRefusedError("Connect call failed")


async def test_checks_report_timeouts_and_errors() -> None:
    checks = await check_dependencies(
        cast(Redis, HangingRedis()), cast(asyncpg.Pool, BrokenPool()), within_s=0.05
    )
    assert checks == {
        "redis": "TimeoutError: no answer within 0.05s",
        "postgres": "ConnectionRefusedError: Connect call failed",
    }
