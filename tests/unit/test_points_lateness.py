"""ingest.points.lateness takes a shortcut for recent points: it must agree with is_late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.messages import Point, RecordPoints
from contracts.minutes import is_late
from ingest.points import lateness

pytestmark = pytest.mark.unit

BASE = datetime(2024, 5, 1, 10, 11, 0, tzinfo=UTC)
offsets = st.integers(min_value=-300_000_000, max_value=300_000_000).map(
    lambda us: timedelta(microseconds=us)
)
zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])


@given(
    received=offsets,
    points=st.lists(st.tuples(offsets, zones), min_size=1, max_size=20),
    grace_s=st.sampled_from([0.0, 0.5, 10.0, 59.999999, 60.0, 90.0]),
)
def test_lateness_is_is_late_for_every_point(
    received: timedelta, points: list[tuple[timedelta, timezone]], grace_s: float
) -> None:
    received_at = BASE + received
    message = RecordPoints(
        id="m",
        batch_id="b",
        points=[Point(key=1.0, ts=(BASE + at).astimezone(zone)) for at, zone in points],
        received_at=received_at,
    )
    expected = [is_late(p.ts, received_at, grace_s) for p in message.points]
    assert lateness(message, grace_s) == expected


def test_the_boundaries() -> None:
    def late(ts: str, received: str, grace_s: float) -> bool:
        at = datetime.fromisoformat(f"2024-05-01T{ts}+00:00")
        message = RecordPoints(
            id="m",
            batch_id="b",
            points=[Point(key=1.0, ts=at)],
            received_at=datetime.fromisoformat(f"2024-05-01T{received}+00:00"),
        )
        return lateness(message, grace_s)[0]

    assert not late("10:10:30", "10:11:09.999999", 10)
    assert late("10:10:30", "10:11:10", 10)
    assert not late("10:10:59.999999", "10:11:09.999999", 10)
    assert late("10:09:59", "10:10:10", 10)
    assert not late("10:11:00", "10:11:00", 0)
