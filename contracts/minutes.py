"""Time rules of batches, shared by the gateway, ingest and the aggregator.

Windows are tumbling UTC minutes `[m, m + 1 min)` of a point's event time `ts`.

**Lateness is judged on arrival, not on processing.** A point is on time when it
reached Conveyor (`received_at`: the gateway's clock for pushed points, the
producer's for generated ones) before its minute ended plus the grace period:

    on time  <=>  received_at < minute(ts) + 1 min + grace

`received_at` travels in the message, so the verdict is the same on every
redelivery, after a crash, and however far behind the aggregator runs; it is
stored with each raw point (`points.late`), so a recomputation from raw points
gives exactly the aggregates. A late point is stored raw and counted
(`conveyor_late_points_total`, `late` in the API) but does not change its
minute: a minute's aggregate never moves after its grace period, so a consumer
that saw `MinuteClosed` never has to take it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)


def floor_minute(at: datetime) -> datetime:
    """The start of `at`'s UTC minute (`at` must be timezone-aware)."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def last_whole_minute(now: datetime) -> tuple[datetime, datetime]:
    """`[start, end)` of the last whole minute: for 10:11:10 that is [10:10, 10:11)."""
    end = floor_minute(now)
    return end - MINUTE, end


def closes_at(minute: datetime, grace_s: float) -> datetime:
    """When the minute starting at `minute` takes no more points."""
    return minute + MINUTE + timedelta(seconds=grace_s)


def is_late(ts: datetime, received_at: datetime, grace_s: float) -> bool:
    return received_at >= closes_at(floor_minute(ts), grace_s)


def minutes(start: datetime, end: datetime) -> Iterator[datetime]:
    """The minute starts in `[floor(start), end)`."""
    at = floor_minute(start)
    while at < end:
        yield at
        at += MINUTE
