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
  than guessed), and `utc()` checks they are a time in UTC at all (years 1..9999).

A body that has the schema's shape but a value outside these bounds is 422 (routes
opt in with `exception_handlers=BOUNDS_AS_422`); a body of the wrong shape (a wrong
type, an unknown enum value or field, not JSON) stays Litestar's 400.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import QueryParameter
from litestar.types import ExceptionHandlersMap

from gateway.frontdoor.problems import ProblemError, exception_handlers, problem

INT64_MAX = 2**63 - 1
MAX_ABS_VALUE = 1e15
# No NUL anywhere: PostgreSQL text cannot store it. (msgspec's `pattern` is a search.)
NO_NUL = r"^[^\x00]*$"
# Visible text: not empty and not only whitespace, no NUL.
NAME = r"^[^\x00]*[^\s\x00][^\x00]*$"  # (NUL itself is no whitespace)

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


# The ends of Python's range are PostgreSQL's -infinity and infinity to asyncpg (a naive
# datetime.min/max on the way back), so a time must lie strictly between them in UTC.
FIRST_TIME = datetime.min.replace(tzinfo=UTC)
LAST_TIME = datetime.max.replace(tzinfo=UTC)
TIME_RANGE = "strictly between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"


def utc(value: datetime, field: str) -> datetime:
    """`value` in UTC, or a 422 naming `field` when it is outside TIME_RANGE."""
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = FIRST_TIME
    if FIRST_TIME < in_utc < LAST_TIME:
        return in_utc
    raise ProblemError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        f"{field}: {value.isoformat()} is not a time {TIME_RANGE}",
        errors=[{"key": field, "message": f"not a time {TIME_RANGE}"}],
    )


# msgspec's words for a value of the right type outside its bounds (>=, <=, a length,
# a pattern, a timezone) as opposed to a wrong type ("Expected `int`, got `str`").
_OUT_OF_BOUNDS = re.compile(r"^Expected `\w+` (?:[<>]=?|of length|matching|with a timezone)")


def _bounds_as_422(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    if errors and all(
        e.get("source") == "body" and _OUT_OF_BOUNDS.match(str(e.get("message", "")))
        for e in errors
    ):
        said = "; ".join(f"{e.get('key', 'body')}: {e['message']}" for e in errors)
        return problem(
            HTTPStatus.UNPROCESSABLE_ENTITY, None, said, instance=request.url.path, errors=errors
        )
    return exception_handlers()[HTTPException](request, exc)


BOUNDS_AS_422: ExceptionHandlersMap = {ValidationException: _bounds_as_422}
