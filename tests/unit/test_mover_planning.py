"""The mover's decisions, without Redis or PostgreSQL."""

from __future__ import annotations

import pytest

from mover import planning

pytestmark = pytest.mark.unit


def test_small_or_urgent_jobs_take_the_express_lane() -> None:
    assert planning.lane(total=3, priority=1, express_rows=1000) == "express"
    assert planning.lane(total=50_000, priority=4, express_rows=1000) == "express"
    assert planning.lane(total=50_000, priority=3, express_rows=1000) == "bulk"


def test_window_grows_with_priority_and_is_never_zero() -> None:
    assert [planning.window(p, 32) for p in range(1, 6)] == [6, 12, 19, 25, 32]
    assert planning.window(1, 2) == 1


@pytest.mark.parametrize(
    ("row_cost_us", "pages"),
    [
        (None, 1),  # nothing measured yet: start small
        (100_000.0, 1),  # 100 ms a row (the throttled database): one page at a time
        (1_000.0, 5),  # 1 ms a row: 500 rows make 0.5 s
        (5.0, 50),  # fast: as many pages as allowed
    ],
)
def test_chunk_size_follows_the_measured_cost_of_a_row(
    row_cost_us: float | None, pages: int
) -> None:
    assert planning.pages_per_chunk(row_cost_us, page_size=100, target_s=0.5, max_pages=50) == pages


def test_row_cost_is_a_moving_average() -> None:
    assert planning.next_row_cost(None, 10.0) == 10.0
    assert planning.next_row_cost(10.0, 30.0) == 20.0


def test_backoff_doubles_up_to_a_ceiling() -> None:
    assert [planning.retry_backoff_s(a) for a in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert planning.retry_backoff_s(20) == 5.0


def test_a_chunk_holds_as_many_rows_whatever_the_size_of_the_job_s_pages() -> None:
    # 250 pages of 20 rows: 5,000 rows, in pages of 5 rows (a large job's) or 20.
    assert planning.max_pages(5, page_size=20, max_pages=250) == 1000
    assert planning.max_pages(20, page_size=20, max_pages=250) == 250
    assert planning.max_pages(50_000, page_size=20, max_pages=250) == 1
