"""A worker's `/healthz` (liveness, no I/O) and `/readyz` (its stores answer, it consumes).

The same contract as the gateway's (gateway/frontdoor/health.py), on FastStream's small ASGI
handlers: `/readyz` is 200 `{"status": "ready", "checks": {...}}` when every check is
`ok`, else 503 `application/problem+json` whose `detail` names what is not, e.g.
`{"redis": "ConnectionError: ...", "postgres": "ok", "consumers": "waiting for redis"}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope

OK = "ok"
PROBE_TIMEOUT_S = 1.0
Checks = Callable[[], Awaitable[Mapping[str, str]]]


async def probe(check: Awaitable[object], within_s: float = PROBE_TIMEOUT_S) -> str:
    """`ok`, or what went wrong as `<ErrorType>: <message>`."""
    try:
        await asyncio.wait_for(check, within_s)
    except TimeoutError:
        return f"TimeoutError: no answer within {within_s}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return OK


def readiness_response(checks: Mapping[str, str]) -> AsgiResponse:
    """200 when every check is ok, else the 503 problem naming what is not."""
    down = {name: state for name, state in checks.items() if state != OK}
    if not down:
        body = {"status": "ready", "checks": dict(checks)}
        return AsgiResponse(msgspec.json.encode(body), 200, {"content-type": "application/json"})
    problem = {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "; ".join(f"{name}: {state}" for name, state in down.items()),
        "checks": dict(checks),
    }
    headers = {"content-type": "application/problem+json", "retry-after": "1"}
    return AsgiResponse(msgspec.json.encode(problem), 503, headers)


def health_routes(checks: Checks) -> list[tuple[str, ASGIApp]]:
    """(`/healthz`, `/readyz`) handlers for `AsgiFastStream(asgi_routes=...)`."""

    @get(description="The process is alive (no I/O)")
    async def healthz(scope: Scope) -> AsgiResponse:
        return AsgiResponse(b"", 204)

    @get(description="Redis and PostgreSQL answer and the consumers run")
    async def readyz(scope: Scope) -> AsgiResponse:
        return readiness_response(await checks())

    return [("/healthz", healthz), ("/readyz", readyz)]
