"""The front door: who is calling, may they, and not too often.

An ASGI middleware in front of every route but `/healthz` and `/readyz`:

1. **Who.** `Authorization: Bearer <key>`, or, on SSE routes only (paths ending
   in `/events`), `?ticket=<ticket>`: browsers' `EventSource` cannot send headers,
   so a client with a key asks `POST /auth/tickets` for a ticket that works once,
   within `sse_ticket_ttl_s` (30 s), and never puts its key in a URL. Nothing, a
   bad key or a used/expired ticket: 401.
2. **May they.** GET/HEAD need the `read` scope, anything else `write`
   (`POST /auth/tickets` needs only `read`): 403 otherwise.
3. **Not too often.** A token bucket per key in Redis (`rate_limit_per_s`,
   `rate_limit_burst`), shared by every gateway process: 429 with `Retry-After`.
   A busy key costs one Redis round trip per lease of tokens, not per request
   (gateway/frontdoor/ratelimit.py).
   At most `sse_connections_per_key` open SSE streams per key and process: 429.

A refused request never reaches its route, so nothing refused is published.
Every refusal is problem+json and is counted in `conveyor_http_refusals_total`.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter as Tally
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlencode

import msgspec
from litestar import Request, post
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.runtime.settings import Settings
from gateway.frontdoor import sessions
from gateway.frontdoor.keys import READ, WRITE, ApiKey, Keys
from gateway.frontdoor.ratelimit import RateLimit

PUBLIC = frozenset({"/healthz", "/readyz", "/console/sign-in", "/console/session",
                    "/console/sign-out"})  # fmt: skip
# The API's description (/schema, Swagger, ReDoc) is no secret, nor are the console's
# own scripts and styles; every operation and every page with data still needs a key.
PUBLIC_TREES = ("/schema", "/console/static/", "/console/vendor/")
READ_POSTS = frozenset({"/auth/tickets"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_TREES)


def needed_scope(method: str, path: str) -> str:
    return READ if method in SAFE_METHODS or path in READ_POSTS else WRITE


def is_sse(path: str) -> bool:
    return path.endswith("/events")


class Ticket(msgspec.Struct):
    ticket: str
    expires_in_s: int
    usage: str


def ticket_key(settings: Settings, ticket: str) -> str:
    return f"{settings.stream_prefix}auth.tickets:{ticket}"


@post("/auth/tickets", summary="A single-use ticket for an SSE stream (for EventSource)")
async def create_ticket(request: Request[ApiKey, Any, Any]) -> Ticket:
    settings: Settings = request.app.state.settings
    redis: Redis = request.app.state.redis
    ticket = secrets.token_urlsafe(24)
    value = f"{request.user.name}|{'+'.join(sorted(request.user.scopes))}"
    await redis.set(ticket_key(settings, ticket), value, ex=settings.sse_ticket_ttl_s)
    return Ticket(ticket, settings.sse_ticket_ttl_s, f"GET /events?ticket={ticket}")


class Door:
    """What every instance of the middleware shares (Litestar builds one per route)."""

    def __init__(self, settings: Settings, keys: Keys, registry: CollectorRegistry) -> None:
        self.settings, self.keys = settings, keys
        self.streams: Tally[str] = Tally()
        self.rate = RateLimit(settings)
        self.refused = Counter(
            "conveyor_http_refusals_total", "Requests the front door refused, by reason.",
            ["reason"], registry=registry,
        )  # fmt: skip


class FrontDoor:
    def __init__(self, app: ASGIApp, door: Door) -> None:
        self.app, self.door = app, door
        self.settings, self.keys, self.streams = door.settings, door.keys, door.streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        redis: Redis = scope["app"].state.redis
        try:
            key = await self._who(scope, redis)
            refusal = key if isinstance(key, tuple) else await self._refusal(scope, key, redis)
        except (OSError, RedisError) as exc:  # Redis away or out of connections
            refusal = (HTTPStatus.SERVICE_UNAVAILABLE, "unavailable",
                       f"Redis is unreachable: {exc}", {"Retry-After": "1"})  # fmt: skip
        if refusal is not None:
            await self._refuse(send, scope, *refusal)
            return
        assert isinstance(key, ApiKey)
        scope["user"] = key
        if not is_sse(scope["path"]):
            await self.app(scope, receive, send)
            return
        self.streams[key.name] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.streams[key.name] -= 1

    async def _who(self, scope: Any, redis: Redis) -> ApiKey | tuple[Any, ...]:
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode(errors="replace")
        if auth:
            scheme, _, secret = auth.partition(" ")
            key = self.keys.find(secret.strip()) if scheme.lower() == "bearer" else None
            if key is None:
                return HTTPStatus.UNAUTHORIZED, "unauthenticated", "the API key is not valid", {}
            return key
        query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        if "ticket" in query and is_sse(scope["path"]) and scope["method"] == "GET":
            value = await redis.getdel(ticket_key(self.settings, query["ticket"][0]))
            if value is None:
                return (HTTPStatus.UNAUTHORIZED, "unauthenticated",
                        "the ticket is unknown, expired or used already", {})  # fmt: skip
            text = value.decode() if isinstance(value, bytes) else str(value)
            name, _, scopes = text.partition("|")
            return ApiKey(name, frozenset(scopes.split("+")))
        token = sessions.cookie_token(scope)
        if token is not None:
            return await self._session(scope, redis, token)
        return (HTTPStatus.UNAUTHORIZED, "unauthenticated",
                "an API key is required: Authorization: Bearer <key>", {})  # fmt: skip

    async def _session(self, scope: Any, redis: Redis, token: str) -> ApiKey | tuple[Any, ...]:
        """The console's session cookie (gateway/frontdoor/sessions.py): a key, if the
        session lives and, for a request that changes something, the console sent it."""
        key = await sessions.session_of(redis, self.settings, token)
        if key is None:
            gone = "the console session has expired or was signed out; sign in again"
            return HTTPStatus.UNAUTHORIZED, "unauthenticated", gone, {}
        csrf = dict(scope["headers"]).get(sessions.CSRF_HEADER.encode())
        if scope["method"] not in SAFE_METHODS and csrf != b"1":
            return (HTTPStatus.FORBIDDEN, "forbidden",
                    "a console session changes something only with the header "
                    f"{sessions.CSRF_HEADER}: 1 (the console's pages send it)", {})  # fmt: skip
        return key

    async def _refusal(self, scope: Any, key: ApiKey, redis: Redis) -> tuple[Any, ...] | None:
        scope_needed = needed_scope(scope["method"], scope["path"])
        if not key.allows(scope_needed):
            return (HTTPStatus.FORBIDDEN, "forbidden",
                    f"key {key.name!r} lacks the {scope_needed!r} scope", {})  # fmt: skip
        s = self.settings
        wait_ms = await self.door.rate.spend(key.name, redis)
        if wait_ms:
            retry = max(1, math.ceil(wait_ms / 1000))
            return (HTTPStatus.TOO_MANY_REQUESTS, "rate_limited",
                    f"more than {s.rate_limit_per_s:g} requests a second for key {key.name!r}",
                    {"Retry-After": str(retry)})  # fmt: skip
        if is_sse(scope["path"]) and self.streams[key.name] >= s.sse_connections_per_key:
            return (HTTPStatus.TOO_MANY_REQUESTS, "sse_cap",
                    f"key {key.name!r} has {s.sse_connections_per_key} streams open already",
                    {"Retry-After": "5"})  # fmt: skip
        return None

    async def _refuse(
        self, send: Send, scope: Scope, status: HTTPStatus, reason: str, detail: str,
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        self.door.refused.labels(reason).inc()
        if status == HTTPStatus.UNAUTHORIZED and _is_page(scope):
            await _see_other(send, sign_in_url(scope))
            return
        body = msgspec.json.encode(
            {"type": "about:blank", "title": status.phrase, "status": int(status),
             "detail": detail, "instance": scope["path"]}
        )  # fmt: skip
        extra = dict(headers)
        if status == HTTPStatus.UNAUTHORIZED:
            extra["WWW-Authenticate"] = 'Bearer realm="conveyor"'
        raw = [(b"content-type", b"application/problem+json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
        raw += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        start: Any = {"type": "http.response.start", "status": int(status), "headers": raw}
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _is_page(scope: Any) -> bool:
    """A person's browser asking for a console page (not a script, fragment or feed)."""
    headers = dict(scope["headers"])
    return (
        scope["method"] == "GET" and scope["path"].startswith("/console")
        and b"hx-request" not in headers and b"text/html" in headers.get(b"accept", b"")
    )  # fmt: skip


def sign_in_url(scope: Any) -> str:
    """The sign-in page, coming back to where the person was (a console path only)."""
    here = scope["path"]
    if query := scope.get("query_string", b"").decode(errors="replace"):
        here += f"?{query}"
    return f"/console/sign-in?{urlencode({'next': here})}"


async def _see_other(send: Send, location: str) -> None:
    raw = [(b"location", location.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": raw})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
