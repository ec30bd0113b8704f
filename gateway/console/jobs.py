"""The console's Jobs section: the dashboard (/console/jobs) and a job's page
(/console/jobs/{id}).

The dashboard: counts by status, attempts completed and failed per minute over the
last hour (drawn by static/jobs.js from GET /jobs/stats/minutes), and the job list
with its filters, sort and page in the URL. An htmx request for the list (a filter,
a sort, a page) gets the list alone (`HX-Target: jobs-results`, with `HX-Push-Url`
the clean URL) or the table alone (`jobs-table`, the live refresh); anything else,
a history restore included, gets the whole page. A job's page: the job, and its
timeline (job_events) that jobs.js extends from the last entry shown, live.

Reads go through the SQL and views the JSON routes use; writes (cancel, retry) go
from the page to the JSON API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import urlencode

import asyncpg
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from contracts.codec import entry_key, is_entry_id
from contracts.jobs import ACTIVE, RETRYABLE, STATUSES
from gateway.catalog import sql as catalog_sql
from gateway.console.render import fragment, page
from gateway.frontdoor.keys import WRITE, ApiKey
from gateway.jobs import sql
from gateway.jobs.views import stats_of, timeline_item, view

KINDS = ("copy", "move", "remove", "delete")
SORTS = {"-created_at": "newest first", "created_at": "oldest first", "-priority":
         "highest priority", "priority": "lowest priority", "status": "status"}  # fmt: skip
PAGE_SIZES = (10, 25, 50, 100)
TIMELINE_PAGE = 500
MAX_LISTS = 2000  # names for the list filter and for sources and targets
Text = Annotated[str | None, QueryParameter(max_length=100)]
NO_CACHE = {"Cache-Control": "no-store", "Vary": "HX-Request, HX-Target"}


@dataclass(frozen=True)
class Filters:
    """The list's filters, sort and page as the URL says them; `problems`: what in the
    URL could not be used (and was left out), for the page to say."""

    status: str | None = None
    kind: str | None = None
    collection: uuid.UUID | None = None
    sort: str = "-created_at"
    offset: int = 0
    limit: int = 25
    problems: tuple[str, ...] = field(default=())

    def url(self, **changes: Any) -> str:
        """The dashboard's URL with these filters, `changes` applied (defaults left out)."""
        f = replace(self, **changes)
        query = {
            "status": f.status, "kind": f.kind, "list": f.collection,
            "sort": f.sort if f.sort != "-created_at" else None,
            "offset": f.offset or None, "limit": f.limit if f.limit != 25 else None,
        }  # fmt: skip
        text = urlencode({k: str(v) for k, v in query.items() if v is not None})
        return f"/console/jobs?{text}" if text else "/console/jobs"


def parse(
    status: str | None, kind: str | None, list_: str | None, sort: str | None,
    offset: str | None, limit: str | None,
) -> Filters:  # fmt: skip
    problems: list[str] = []

    def one_of(name: str, value: str | None, allowed: Any) -> str | None:
        if value and value not in allowed:
            problems.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
            return None
        return value or None

    collection = None
    if list_:
        try:
            collection = uuid.UUID(list_)
        except ValueError:
            problems.append(f"list {list_!r} is not a list id")
    numbers = {"offset": 0, "limit": 25}
    for name, text in (("offset", offset), ("limit", limit)):
        if text:
            if text.isdigit() and (name == "offset" or int(text) in PAGE_SIZES):
                numbers[name] = int(text)
            else:
                problems.append(f"{name} {text!r} is not a page {name} we show")
    return Filters(
        status=one_of("status", status, STATUSES), kind=one_of("kind", kind, KINDS),
        collection=collection, sort=one_of("sort", sort, list(SORTS)) or "-created_at",
        offset=numbers["offset"], limit=numbers["limit"], problems=tuple(problems),
    )  # fmt: skip


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "\u2013"


async def list_names(pool: asyncpg.Pool) -> dict[uuid.UUID, str]:
    rows, _ = await catalog_sql.collections(conn=pool, offset=0, limit=MAX_LISTS)
    return {r["id"]: r["name"] for r in rows}


def list_name(names: dict[uuid.UUID, str], list_id: uuid.UUID | None) -> str:
    if list_id is None:
        return "\u2013"
    return names.get(list_id) or f"deleted list {str(list_id)[:8]}"


def _shared(names: dict[uuid.UUID, str]) -> dict[str, Any]:
    """What every jobs template uses to show a job."""
    return {"when": when, "names": names, "list_name": lambda i: list_name(names, i),
            "active": ACTIVE, "retryable": RETRYABLE}  # fmt: skip


@get("/jobs", name="console-jobs")
async def jobs_page(
    request: Request[Any, Any, Any],
    pool: NamedDependency[asyncpg.Pool],
    status: Text = None,
    kind: Text = None,
    list_: Annotated[str | None, QueryParameter(name="list", max_length=100)] = None,
    sort: Text = None,
    offset: Text = None,
    limit: Text = None,
) -> Template:
    filters = parse(status, kind, list_, sort, offset, limit)
    rows, total = await sql.jobs(
        conn=pool, status=filters.status, kind=filters.kind, collection=filters.collection,
        sort=filters.sort, offset=filters.offset, limit=filters.limit,
    )  # fmt: skip
    names = await list_names(pool)
    context = {
        "filters": filters, "jobs": [view(r) for r in rows], "total": total,
        "statuses": STATUSES, "kinds": KINDS, "sorts": SORTS, "page_sizes": PAGE_SIZES,
        **_shared(names),
    }  # fmt: skip
    target = request.headers.get("hx-target")
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        if target == "jobs-table":
            return _no_cache(fragment("jobs/_table.html", **context))
        if target == "jobs-results":
            answer = _no_cache(fragment("jobs/_results.html", **context))
            answer.headers["HX-Push-Url"] = filters.url()
            return answer
    stats = stats_of(await sql.stats(conn=pool))
    return _no_cache(page(request, "jobs/index.html", "jobs", stats=stats, **context))


def _no_cache(template: Template) -> Template:
    """The same URL answers a page or a fragment: let no cache mix them up."""
    template.headers.update(NO_CACHE)
    return template


async def _row(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    row = None if len(job_id) > 64 or "\x00" in job_id else await sql.job(conn=pool, job_id=job_id)
    if row is None:
        raise NotFoundException(f"job {job_id} does not exist")
    return row


async def _timeline(pool: asyncpg.Pool, job_id: str, after: str | None) -> dict[str, Any]:
    start = entry_key(after) if after and is_entry_id(after) else (0, 0)
    rows = await sql.timeline(conn=pool, job_id=job_id, after=start, limit=TIMELINE_PAGE + 1)
    items = [timeline_item(r) for r in rows[:TIMELINE_PAGE]]
    return {"items": items, "more": len(rows) > TIMELINE_PAGE}


def _resume_from(job: asyncpg.Record) -> str:
    """Where the live feed of a job with no event in its timeline yet starts: just
    before the newest event its row knows (its JobQueued, for a job just accepted)."""
    ms, seq = entry_key(job["feed_from"]) if job["feed_from"] else (0, 0)
    return f"{ms}-{seq - 1}" if seq else f"{max(ms - 1, 0)}-0"


@get("/jobs/{job_id:str}", name="console-job")
async def job_page(
    request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool], job_id: FromPath[str]
) -> Template:
    try:
        row = await _row(pool, job_id)
    except NotFoundException as missing:
        answer = page(request, "jobs/missing.html", "jobs", detail=missing.detail)
        answer.status_code = HTTPStatus.NOT_FOUND
        return answer
    timeline = await _timeline(pool, job_id, None)
    items = timeline["items"]
    cursor = items[-1].entry_id if items else _resume_from(row)
    names = await list_names(pool)
    return _no_cache(page(
        request, "jobs/job.html", "jobs", job=view(row), cursor=cursor, **timeline,
        **_shared(names),
    ))  # fmt: skip


@get("/jobs/{job_id:str}/summary", name="console-job-summary")
async def job_summary(
    request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool], job_id: FromPath[str]
) -> Template:
    job = view(await _row(pool, job_id))
    names = await list_names(pool)
    who: ApiKey = request.user
    return _no_cache(fragment(
        "jobs/_summary.html", job=job, can_write=who.allows(WRITE), **_shared(names)
    ))  # fmt: skip


@get("/jobs/{job_id:str}/timeline", name="console-job-timeline")
async def job_timeline_rows(
    pool: NamedDependency[asyncpg.Pool], job_id: FromPath[str], after: Text = None
) -> Template:
    """The timeline's rows after entry `after`; `X-Timeline-More: 1` when more follow."""
    await _row(pool, job_id)
    timeline = await _timeline(pool, job_id, after)
    answer = _no_cache(fragment("jobs/_timeline_rows.html", **timeline, when=when))
    answer.headers["X-Timeline-More"] = "1" if timeline["more"] else "0"
    return answer


ROUTES = [jobs_page, job_page, job_summary, job_timeline_rows]
