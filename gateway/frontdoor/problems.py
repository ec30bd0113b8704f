"""Every error the gateway answers is an RFC 9457 `application/problem+json` body.

Routes raise `ProblemError` (404, 409, 429 with `Retry-After`, 503, ...); Litestar's
own exceptions (routing 404/405, validation 400, body limit 413) and anything
unexpected (500, logged here, never leaked) go through the same handler.

Litestar's `ProblemDetailsPlugin` was looked at and not used: it turns
`HTTPException.detail` into the `title`, sets no `instance` and leaves unexpected
exceptions to the default (non-problem) 500 page, so it would need these same
handlers around it anyway.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap
from redis.exceptions import RedisError

__all__ = [
    "PROBLEM_JSON",
    "ProblemDetails",
    "ProblemError",
    "exception_handlers",
    "problem",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
ABOUT_BLANK = "about:blank"


class ProblemDetails(msgspec.Struct, kw_only=True):
    """The shape of a problem body, for the OpenAPI document (`responses=` of a route)."""

    type: str = ABOUT_BLANK
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem(
    status: int,
    title: str | None = None,
    detail: str = "",
    *,
    type_: str = ABOUT_BLANK,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    """A problem+json response; `extra` members go into the body beside the standard ones."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": type_,
        "title": title or phrase,
        "status": status,
        "detail": detail or phrase,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class ProblemError(HTTPException):
    """Raise from a route to answer with a problem; `extra` members join the body.

    `retry_after` (seconds) sets the `Retry-After` header, as 429 and 503 should.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = ABOUT_BLANK,
        headers: dict[str, str] | None = None,
        retry_after: int | None = None,
        **extra: Any,
    ) -> None:
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers["Retry-After"] = str(retry_after)
        super().__init__(
            detail=detail, status_code=status, headers=all_headers or None, extra=extra
        )
        self.title = title
        self.type_ = type_
        self.members: dict[str, Any] = extra


def _default_detail(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    """Litestar's routing errors say only "Not Found"; say what was asked for instead."""
    if exc.detail != HTTPStatus(exc.status_code).phrase:
        return exc.detail
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return f"No resource at {request.url.path}"
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = (exc.headers or {}).get("allow", "")
        return f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return exc.detail


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    path = request.url.path
    if isinstance(exc, ProblemError):
        return problem(
            exc.status_code,
            exc.title,
            exc.detail,
            type_=exc.type_,
            instance=path,
            headers=exc.headers,
            **exc.members,
        )
    if (
        exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR
        and exc.status_code != HTTPStatus.SERVICE_UNAVAILABLE
    ):
        return _internal_error(request, exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        extra["errors"] = exc.extra
    elif isinstance(exc.extra, dict):
        extra.update(exc.extra)
    detail = _default_detail(request, exc)
    return problem(exc.status_code, None, detail, instance=path, headers=exc.headers, **extra)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        None,
        "The server could not complete the request; the error is logged.",
        instance=request.url.path,
    )


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Redis or PostgreSQL could not be reached or answered with a connection error."""
    log.warning("%s %s: a store is unavailable: %r", request.method, request.url.path, exc)
    if isinstance(exc, RedisError):
        detail = "Redis is unreachable"
    elif isinstance(
        exc,
        asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError | asyncpg.InterfaceError,
    ):
        detail = "PostgreSQL is unreachable"
    else:
        detail = "a backing service is unreachable"
    return problem(
        HTTPStatus.SERVICE_UNAVAILABLE, detail=detail, instance=request.url.path,
        headers={"Retry-After": "1"},
    )  # fmt: skip


def exception_handlers() -> ExceptionHandlersMap:
    """The app-level handlers (app level so that routing 404/405 reach them too)."""
    return {
        HTTPException: _http_exception,
        RedisError: _unavailable,
        asyncpg.PostgresConnectionError: _unavailable,
        asyncpg.CannotConnectNowError: _unavailable,  # PostgreSQL starting or shutting down
        asyncpg.InterfaceError: _unavailable,
        OSError: _unavailable,
        Exception: _internal_error,
    }


DOCUMENTED_PROBLEMS = (400, 401, 403, 404, 409, 413, 422, 429, 503)


def document_problems(app: Litestar) -> None:
    """Say in the OpenAPI document that every route's errors are problem+json."""
    specs = {
        code: ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_JSON,
            description=HTTPStatus(code).phrase,
            generate_examples=False,
        )
        for code in DOCUMENTED_PROBLEMS
    }
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            handler.responses = {**specs, **(handler.responses or {})}
