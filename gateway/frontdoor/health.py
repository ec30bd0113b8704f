"""Liveness (`/healthz`, no I/O) and readiness (`/readyz`, Redis and PostgreSQL answer).

Readiness runs a Redis `PING` and a PostgreSQL `SELECT 1` concurrently, each
with its own deadline, and answers 503 problem+json naming what is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from http import HTTPStatus

import asyncpg
import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from redis.asyncio import Redis

from contracts.runtime.readiness import OK, PROBE_TIMEOUT_S, probe
from gateway.frontdoor.problems import PROBLEM_JSON, ProblemDetails, ProblemError

__all__ = ["check_dependencies", "healthz", "readiness_failure", "readyz"]

CHECK_TIMEOUT_S = PROBE_TIMEOUT_S


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


class NotReady(ProblemDetails, kw_only=True):
    checks: dict[str, str]


async def check_dependencies(
    redis: Redis, pool: asyncpg.Pool, *, within_s: float = CHECK_TIMEOUT_S
) -> dict[str, str]:
    """Each dependency's state, "ok" or the error; both probed at once."""
    redis_state, pg_state = await asyncio.gather(
        probe(redis.ping(), within_s), probe(pool.fetchval("SELECT 1"), within_s)
    )
    return {"redis": redis_state, "postgres": pg_state}


def readiness_failure(checks: Mapping[str, str]) -> ProblemError | None:
    """The 503 to answer when a check is not ok, or None when all are."""
    down = {name: state for name, state in checks.items() if state != OK}
    if not down:
        return None
    detail = "; ".join(f"{name}: {state}" for name, state in down.items())
    return ProblemError(HTTPStatus.SERVICE_UNAVAILABLE, detail, checks=dict(checks))


@get("/healthz", tags=["health"], summary="The process is alive (no I/O)")
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    tags=["health"],
    summary="Redis and PostgreSQL answer",
    responses={
        503: ResponseSpec(
            data_container=NotReady,
            media_type=PROBLEM_JSON,
            description="A dependency is down; `detail` and `checks` say which",
        )
    },
)
async def readyz(redis: NamedDependency[Redis], pool: NamedDependency[asyncpg.Pool]) -> Readiness:
    checks = await check_dependencies(redis, pool)
    if failure := readiness_failure(checks):
        raise failure
    return Readiness(status="ready", checks=checks)
