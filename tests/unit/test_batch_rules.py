"""The plain rules of batches: minutes, lateness, producers' values and times, push parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from contracts.messages import Point, RecordPoints, StartBatch
from contracts.minutes import closes_at, floor_minute, is_late, last_whole_minute, minutes
from gateway.batches.points import BadPoints, parse_points
from ingest.points import lateness, recorded
from ingest.producers import MIN_TICK_S, draw, spread, tick_s

pytestmark = pytest.mark.unit


def t(hms: str) -> datetime:
    return datetime.fromisoformat(f"2024-05-01T{hms}+00:00")


def test_last_whole_minute_is_the_issues_example() -> None:
    assert last_whole_minute(t("10:11:10")) == (t("10:10:00"), t("10:11:00"))
    assert last_whole_minute(t("10:11:00")) == (t("10:10:00"), t("10:11:00"))
    assert last_whole_minute(t("10:10:59.999999")) == (t("10:09:00"), t("10:10:00"))


def test_minutes_are_utc_whatever_the_offset() -> None:
    plus_two = datetime(2024, 5, 1, 12, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert floor_minute(plus_two) == t("10:11:00")
    assert floor_minute(plus_two).tzinfo == UTC
    assert list(minutes(t("10:09:30"), t("10:12:00"))) == [t("10:09"), t("10:10"), t("10:11")]
    assert list(minutes(t("10:09:00"), t("10:09:00"))) == []


def test_a_point_is_late_once_its_minute_and_grace_are_over_on_arrival() -> None:
    ts = t("10:10:30")
    assert closes_at(t("10:10"), 10) == t("10:11:10")
    assert not is_late(ts, received_at=t("10:10:31"), grace_s=10)
    assert not is_late(ts, received_at=t("10:11:09.999999"), grace_s=10)
    assert is_late(ts, received_at=t("10:11:10"), grace_s=10)
    assert not is_late(ts, received_at=t("10:11:10"), grace_s=11)


def test_recorded_carries_the_on_time_points_and_counts_the_late() -> None:
    message = RecordPoints(
        id="m",
        batch_id="b",
        points=[Point(key=1, ts=t("10:10:00")), Point(key=2, ts=t("10:05:00"))],
        received_at=t("10:11:00"),
    )
    late = lateness(message, grace_s=10)
    assert late == [False, True]
    event = recorded(message, late)
    assert event.points == [Point(key=1, ts=t("10:10:00"))]
    assert event.late == 1
    assert event.id == recorded(message, late).id != message.id  # derived, stable


@pytest.mark.parametrize(
    ("start", "check"),
    [
        (StartBatch(id="r", batch_id="b"), lambda v: v == int(v) and 0 <= v <= 100),
        (
            StartBatch(id="r", batch_id="b", distribution="uniform", low=5, high=6),
            lambda v: 5 <= v <= 6,
        ),
        (
            StartBatch(id="r", batch_id="b", distribution="normal", mean=1e6, stddev=1),
            lambda v: abs(v - 1e6) < 10,
        ),
    ],
)
def test_draw_follows_the_distribution(start: StartBatch, check: object) -> None:
    values = draw(start, random.Random(1), 500)
    assert len(values) == 500
    assert all(check(v) for v in values)  # type: ignore[operator]


def test_uniform_int_reaches_both_ends() -> None:
    values = set(draw(StartBatch(id="r", batch_id="b", low=0, high=3), random.Random(2), 200))
    assert values == {0.0, 1.0, 2.0, 3.0}


def test_spread_and_tick() -> None:
    times = spread(t("10:00:00"), t("10:00:01"), 4)
    assert times == [t("10:00:00.25"), t("10:00:00.5"), t("10:00:00.75"), t("10:00:01")]
    assert tick_s(4) == 0.25  # the classic: a point every 0.25 s
    assert tick_s(5000) == MIN_TICK_S  # thousands a second: a message every tick


NOW = t("10:11:10")


def test_parse_points_defaults_ts_to_arrival() -> None:
    body = msgspec.json.encode([{"key": 3}, {"key": -1.5, "ts": "2024-05-01T10:10:00Z"}])
    assert parse_points(body, now=NOW, limit=10) == [
        Point(key=3, ts=NOW),
        Point(key=-1.5, ts=t("10:10:00")),
    ]


@pytest.mark.parametrize(
    ("items", "status", "indexes"),
    [
        ([{"key": 1}, {"key": None}, {"key": 2, "ts": "2024-05-01T10:30:00Z"}], 422, [1, 2]),
        ([{"key": 1}] * 11, 413, []),
        ([], 422, []),
        ({"key": 1}, 422, []),
    ],
)
def test_parse_points_names_every_bad_item(items: object, status: int, indexes: list[int]) -> None:
    with pytest.raises(BadPoints) as raised:
        parse_points(msgspec.json.encode(items), now=NOW, limit=10)
    assert raised.value.status == status
    assert [e["index"] for e in raised.value.errors] == indexes
