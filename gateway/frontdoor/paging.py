"""Offset paging shared by every listing: bounded `limit`, a page with its `total`."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

T = TypeVar("T")
MAX_LIMIT = 500  # rows in one page of any listing

Offset = Annotated[int, QueryParameter(ge=0, le=10_000_000, description="rows to skip")]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="rows in the page")]


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    total: int
    offset: int
    limit: int
