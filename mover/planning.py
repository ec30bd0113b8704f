"""The mover's decisions, as plain functions (no Redis, no PostgreSQL).

A job's plan is its company ids, sorted and cut into pages of `mover_page_size`
rows, smaller for a large job (down to `MIN_PAGE_ROWS`, so that it has about
`PAGES_PER_JOB` pages; one page for a job that fits in one). A page is the smallest
piece of work, so on a database that sleeps 100 ms per inserted row a 10,000-row job
is 2,000 pages of 5 rows (0.5 s each) that as many connections as there are apply
side by side, instead of 500 pages of 2 s whose last round leaves most of them idle.
Pages are released to workers as *chunks* of one or more pages, a few at a time:

- **Size follows cost.** A job starts with one-page chunks; every applied chunk
  measures what a row cost, and later chunks hold enough rows to take about
  `chunk_target_s`, at most `mover_max_pages_per_chunk` pages of `mover_page_size`
  rows (5,000 rows). On a fast database a 50,000-row copy is about ten chunks that
  the movers apply side by side on every core; on a database that sleeps 100 ms per
  inserted row they stay at one page, so many run side by side.
- **Window.** A job starts with `PROBE_CHUNKS` one-page chunks; once one is
  applied (and a row's cost is known), every applied chunk refills the job's
  chunks in flight up to `window(priority)`. The window is larger than the workers
  of a few movers, so a worker that frees up finds the next chunk waiting; a job
  never floods the stream beyond it, so other jobs' chunks interleave with it.
- **Lanes.** Small jobs (`total <= express_rows`) and urgent ones (priority >= 4)
  go to the express stream, read by workers of their own: a move of a handful of
  ids is not queued behind a 50,000-row job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Lane = Literal["bulk", "express"]
URGENT_PRIORITY = 4
PROBE_CHUNKS = 2
# Pages of a large job shrink to as few rows as this, so that it has about as many
# pages as PAGES_PER_JOB (mover/sql.py `cut_pages`).
MIN_PAGE_ROWS = 5
PAGES_PER_JOB = 2_000


def lane(*, total: int, priority: int, express_rows: int) -> Lane:
    return "express" if total <= express_rows or priority >= URGENT_PRIORITY else "bulk"


def first_status(*, total: int, not_before: datetime | None, now: datetime) -> str:
    """A freshly planned job: completed (nothing to do), running, or scheduled for later.
    A `not_before` without an offset is taken as UTC."""
    if total == 0:
        return "completed"
    if not_before is None:
        return "running"
    aware = not_before if not_before.tzinfo is not None else not_before.replace(tzinfo=UTC)
    return "running" if aware <= now else "scheduled"


def window(priority: int, base: int) -> int:
    """Chunks in flight for a job: `base` at priority 5, proportionally fewer below."""
    return max(1, base * priority // 5)


def pages_per_chunk(
    row_cost_us: float | None, *, page_size: int, target_s: float, max_pages: int
) -> int:
    if row_cost_us is None:
        return 1
    rows = target_s * 1_000_000 / max(row_cost_us, 0.01)
    return max(1, min(max_pages, int(rows // page_size)))


def max_pages(rows_per_page: int, *, page_size: int, max_pages: int) -> int:
    """The most pages a chunk holds: `max_pages` pages of `page_size` rows, in pages of
    the job's own size (`rows_per_page`)."""
    return max(1, max_pages * page_size // max(rows_per_page, 1))


def next_row_cost(previous: float | None, observed_us: float) -> float:
    """Moving average of the cost of one row (microseconds)."""
    return observed_us if previous is None else 0.5 * previous + 0.5 * observed_us


def retry_backoff_s(attempt: int) -> float:
    """Wait before a failed chunk's next attempt: 0.2 s, 0.4 s, 0.8 s, ... at most 5 s."""
    return min(0.2 * 2.0 ** (attempt - 1), 5.0)
