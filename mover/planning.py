"""The mover's decisions, as plain functions (no Redis, no PostgreSQL).

A job's plan is its company ids, sorted and cut into pages of `page_size`. Pages
are released to workers as *chunks* of one or more pages, a few chunks at a time:

- **Size follows cost.** A job starts with one-page chunks; every applied chunk
  measures what a row cost, and later chunks hold enough pages to take about
  `chunk_target_s`. On a fast database chunks grow to `max_pages` pages (few
  round trips); on a database that sleeps 100 ms per inserted row they stay at
  one page, so many run side by side.
- **Window.** A job starts with `PROBE_CHUNKS` one-page chunks; once one is
  applied (and a row's cost is known), every applied chunk refills the job's
  chunks in flight up to `window(priority)`. A job never floods the stream, so
  other jobs' chunks interleave with it.
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


def next_row_cost(previous: float | None, observed_us: float) -> float:
    """Moving average of the cost of one row (microseconds)."""
    return observed_us if previous is None else 0.5 * previous + 0.5 * observed_us


def retry_backoff_s(attempt: int) -> float:
    """Wait before a failed chunk's next attempt: 0.2 s, 0.4 s, 0.8 s, ... at most 5 s."""
    return min(0.2 * 2.0 ** (attempt - 1), 5.0)
