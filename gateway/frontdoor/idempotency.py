"""`Idempotency-Key`: one key, one request.

A POST that takes the header binds the key (per route, and per batch for pushes) to
a fingerprint of the decoded request (contracts/codec.py `fingerprint`) for 24 hours,
before anything is published. The same key with the same request replays: the append
that follows is itself once per key, so the first request's result comes back. The
same key with a different request is refused with 422 problem+json and publishes
nothing, as payment APIs do: a client that reuses a key by mistake learns it instead
of silently getting another request's result.

The binding is a key of its own beside the append-once records: a request that
crashed between binding and publishing is retried with the same body and goes on.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from litestar.params import HeaderParameter
from redis.asyncio import Redis

from contracts import codec
from contracts.messages import id_from_key
from gateway.frontdoor.problems import ProblemError

__all__ = ["TTL_S", "IdempotencyKey", "bind"]

TTL_S = 86_400  # as long as the append-once records (contracts/codec.py)

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", max_length=200, required=False,
        description="a retried request with the same key starts nothing new; "
        "the same key with another request body is 422",
    ),
]  # fmt: skip


async def bind(redis: Redis, prefix: str, scope: str, key: str, request: Any) -> None:
    """Bind `key` to `request` in `scope`, or raise 422 if it is bound to another request."""
    name = f"{prefix}idempotency.keys:{id_from_key(scope, key)}"
    if not await codec.bind_key(redis, name, codec.fingerprint(request), ttl_s=TTL_S):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"Idempotency-Key {key!r} was used for a different request in the last "
            f"{TTL_S // 3600} hours; send a new key with a new request",
            title="Idempotency-Key reused",
            key="Idempotency-Key",
        )
