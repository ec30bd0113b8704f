"""Batch ids: what a batch may be called, checked on every batch route.

`BATCH_ID` is the pattern the OpenAPI schema states: a letter or digit, then up
to 63 of letters, digits and `_ . : -` (so no NUL, no whitespace, nothing a
PostgreSQL `text` or a Redis key could choke on). It is checked whole
(`fullmatch`): a JSON-Schema `$` and Python's `$` differ on a trailing newline,
and "a\\n" is not an id.

A start with a bad id is a 400 naming the field; any other route with an id that
no batch can have answers 404 ("no batch"), never a 500 from the store.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Annotated

import msgspec

from gateway.frontdoor.problems import ProblemError

__all__ = ["BATCH_ID", "BatchId", "existing_batch_id", "is_batch_id", "valid_batch_id"]

BATCH_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")

BatchId = Annotated[
    str,
    msgspec.Meta(
        pattern=BATCH_ID,
        description="a letter or digit, then up to 63 of letters, digits and _ . : -",
    ),
]


def is_batch_id(batch_id: str) -> bool:
    return _BATCH_ID.fullmatch(batch_id) is not None


def valid_batch_id(batch_id: str) -> str:
    """`batch_id` for a start, or a 400 problem naming the field."""
    if not is_batch_id(batch_id):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            f"batch id {batch_id!r} does not match {BATCH_ID}",
            errors=[{"key": "batch_id", "message": f"does not match {BATCH_ID}"}],
        )
    return batch_id


def existing_batch_id(batch_id: str) -> str:
    """`batch_id` for a route about an existing batch, or 404: no batch has that id."""
    if not is_batch_id(batch_id):
        raise ProblemError(HTTPStatus.NOT_FOUND, f"no batch {batch_id!r}")
    return batch_id
