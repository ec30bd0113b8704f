"""What the gateway accepts, bounded by the store each value ends in.

"Accepted means done" (DESIGN.md): a field the API takes must fit the column and the
arithmetic it ends in, so nothing accepted can fail later for a reason known at the
door. Every request body and query parameter uses these types instead of bare
`int`, `float`, `str` and `datetime`; msgspec checks them and the OpenAPI schema
states the same bounds.

- ids end in PostgreSQL `bigint`: 1 .. 2^63 - 1;
- point values end in `double precision` sums of up to `max_points_per_minute`
  points: |value| <= MAX_ABS_VALUE keeps every sum far inside the double range and
  every integer value exact (2^53 > 1e15);
- text ends in `text`/`varchar`, which cannot hold NUL;
- times end in `timestamptz`: they carry an offset (a naive time is refused rather
  than guessed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar.params import QueryParameter

INT64_MAX = 2**63 - 1
MAX_ABS_VALUE = 1e15
# No NUL anywhere: PostgreSQL text cannot store it. (msgspec's `pattern` is a search.)
NO_NUL = r"^[^\x00]*$"
# Visible text: not empty and not only whitespace, no NUL.
NAME = r"^[^\x00]*\S[^\x00]*$"

Int64Id = Annotated[
    int, msgspec.Meta(ge=1, le=INT64_MAX, description="a positive 64-bit integer id")
]
Value = Annotated[
    float,
    msgspec.Meta(
        ge=-MAX_ABS_VALUE,
        le=MAX_ABS_VALUE,
        description=f"a finite number within ±{MAX_ABS_VALUE:.0e}",
    ),
]
AwareDatetime = Annotated[
    datetime, msgspec.Meta(tz=True, description="an RFC 3339 time with an offset (or Z)")
]


ListName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=200, pattern=NAME,
        description="a list's name: visible characters, no NUL, at most 200",
    ),
]  # fmt: skip
Search = Annotated[
    str | None,
    QueryParameter(
        max_length=100, pattern=NO_NUL,
        description="name contains (matched literally: % and _ are not wildcards)",
    ),
]  # fmt: skip


def like_pattern(q: str) -> str:
    """`%q%` for LIKE/ILIKE with `q`'s own `%`, `_` and `\\` matched literally."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
