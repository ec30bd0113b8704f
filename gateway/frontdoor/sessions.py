"""Console sessions: an API key exchanged once for an HttpOnly cookie.

A person signs in to the console by pasting an API key (`POST /console/session`).
The gateway checks it, keeps `name|scopes` in Redis under a random token for
`console_session_ttl_s`, and answers with the token in a cookie that page scripts
cannot read (`HttpOnly`), that no other site's page sends (`SameSite=Strict`), and
that never appears in a URL. The key itself is not stored anywhere.

The front door (gateway/frontdoor/auth.py) takes the cookie as it takes a key, with
one more rule against cross-site requests: a request that changes something must
also carry `X-Conveyor-Console: 1`, a header no other site's form or image can set
(a script of another origin would need a CORS preflight, which the gateway never
grants). `POST /console/sign-out` forgets the session.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody
from redis.asyncio import Redis

from contracts.runtime.settings import Settings
from gateway.frontdoor.keys import ApiKey, Keys
from gateway.frontdoor.problems import ProblemError

COOKIE = "conveyor_session"
CSRF_HEADER = "x-conveyor-console"


class SignIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: str


class Session(msgspec.Struct, kw_only=True):
    name: str
    scopes: list[str]
    expires_in_s: int


def session_key(settings: Settings, token: str) -> str:
    return f"{settings.stream_prefix}auth.sessions:{token}"


async def session_of(redis: Redis, settings: Settings, token: str) -> ApiKey | None:
    """The key a session stands for, or None if it is unknown or has expired."""
    value = await redis.get(session_key(settings, token))
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    name, _, scopes = text.partition("|")
    return ApiKey(name, frozenset(scopes.split("+")))


def cookie_token(scope: Any) -> str | None:
    """The session token in the request's `Cookie` header, if any."""
    for name, value in scope["headers"]:
        if name != b"cookie":
            continue
        for part in value.decode(errors="replace").split(";"):
            key, _, token = part.strip().partition("=")
            if key == COOKIE and token:
                return str(token)
    return None


def _cookie(token: str, max_age: int, secure: bool) -> Cookie:
    return Cookie(
        key=COOKIE, value=token, max_age=max_age, path="/", httponly=True,
        samesite="strict", secure=secure,
    )  # fmt: skip


# The console's own routes: not part of the API's description (include_in_schema=False).
@post("/console/session", summary="Sign in to the console: an API key for a session cookie",
      status_code=HTTPStatus.OK, include_in_schema=False)  # fmt: skip
async def sign_in(request: Request[Any, Any, Any], data: JSONBody[SignIn]) -> Response[Session]:
    settings: Settings = request.app.state.settings
    keys: Keys = request.app.state.api_keys
    if request.headers.get(CSRF_HEADER) != "1":
        raise ProblemError(HTTPStatus.FORBIDDEN, f"sign in from the console (header {CSRF_HEADER})")
    key = keys.find(data.key.strip())
    if key is None:
        raise ProblemError(HTTPStatus.UNAUTHORIZED, "that API key is not valid")
    redis: Redis = request.app.state.redis
    token = secrets.token_urlsafe(32)
    ttl = settings.console_session_ttl_s
    await redis.set(session_key(settings, token), f"{key.name}|{'+'.join(sorted(key.scopes))}",
                    ex=ttl)  # fmt: skip
    secure = request.url.scheme == "https"
    body = Session(name=key.name, scopes=sorted(key.scopes), expires_in_s=ttl)
    return Response(body, cookies=[_cookie(token, ttl, secure)])


@post("/console/sign-out", summary="Sign out of the console (forget the session)",
      status_code=HTTPStatus.NO_CONTENT, include_in_schema=False)  # fmt: skip
async def sign_out(request: Request[Any, Any, Any]) -> Response[None]:
    settings: Settings = request.app.state.settings
    token = cookie_token(request.scope)
    if token:
        redis: Redis = request.app.state.redis
        await redis.delete(session_key(settings, token))
    return Response(None, status_code=HTTPStatus.NO_CONTENT,
                    cookies=[_cookie("", 0, request.url.scheme == "https")])  # fmt: skip
