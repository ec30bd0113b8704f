"""The streams overview (contracts/delivery/overview.py) and `conveyor streams` on real Redis.

Entries get explicit ids a known time ago, so the oldest pending age is exact when the
overview is given the time, and known within a bound when it reads Redis's clock.
"""

from __future__ import annotations

import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.delivery import dead_letter
from contracts.delivery.overview import GroupOverview, StreamOverview, overview
from contracts.messages import CancelJob
from contracts.runtime import cli
from contracts.runtime.commands import _duration
from contracts.runtime.settings import Settings

pytestmark = pytest.mark.integration

# The first entry was appended 2 h 30 s ago, so the oldest pending one (the third) has
# waited 2h00m28s: shown as `2h` for the next half minute.
AGO_MS = 2 * 3600 * 1000 + 30_000
STEP_MS = 1000  # then one a second


async def redis_now_ms(redis: aioredis.Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def busy_stream(redis: aioredis.Redis, name: str, start_ms: int) -> list[str]:
    """Five entries one second apart from `start_ms`; group `mover` (one consumer, `c1`)
    has read three, acknowledged the first and given up on the second (dead letter), so
    the third is its oldest pending entry; group `audit` has read nothing."""
    ids = [f"{start_ms + i * STEP_MS}-0" for i in range(5)]
    for n, entry_id in enumerate(ids):
        message = CancelJob(id=f"m{n}", job_id=f"j{n}")
        await redis.xadd(name, codec.entry_fields(message), id=entry_id)  # type: ignore[arg-type]
    await redis.xgroup_create(name, streams.MOVER, id="0")
    await redis.xgroup_create(name, "audit", id="0")
    await redis.xreadgroup(streams.MOVER, "c1", {name: ">"}, count=3)
    await redis.xack(name, streams.MOVER, ids[0])
    await dead_letter(
        redis, stream=name, group=streams.MOVER, entry_id=ids[1],
        data=codec.encode(CancelJob(id="m1", job_id="j1")), reason="boom", deliveries=4,
        consumer="c1",
    )  # fmt: skip
    return ids


def one(found: list[StreamOverview], name: str) -> StreamOverview:
    return next(s for s in found if s.name == name)


async def test_the_overview_of_a_stream_with_groups_pending_lag_and_dead_letters(
    redis: aioredis.Redis, settings: Settings
) -> None:
    spec = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix)
    now_ms = await redis_now_ms(redis)
    ids = await busy_stream(redis, spec.name, now_ms - AGO_MS)

    found = await overview(redis, settings.stream_prefix, now_ms=now_ms)

    assert [s.name for s in found] == [s.name for s in streams.ALL]
    stream = one(found, "mover.commands")
    assert (stream.key, stream.length, stream.dead_letters) == (spec.name, 5, 1)
    assert stream.retention_ms == streams.MOVER_COMMANDS.retention_ms
    groups = {g.name: g for g in stream.groups}
    assert groups["mover"] == GroupOverview(
        name="mover", consumers=1, pending=1, lag=2, last_delivered_id=ids[2],
        oldest_pending_id=ids[2], oldest_pending_ms=AGO_MS - 2 * STEP_MS,
    )  # fmt: skip
    assert groups["audit"] == GroupOverview(
        name="audit", consumers=0, pending=0, lag=5, last_delivered_id="0-0",
        oldest_pending_id=None, oldest_pending_ms=None,
    )  # fmt: skip


async def test_the_age_is_measured_on_redis_clock_by_default(
    redis: aioredis.Redis, settings: Settings
) -> None:
    spec = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix)
    before_ms = await redis_now_ms(redis)
    await busy_stream(redis, spec.name, before_ms - AGO_MS)

    found = await overview(redis, settings.stream_prefix)

    after_ms = await redis_now_ms(redis)
    [mover] = [g for g in one(found, "mover.commands").groups if g.name == "mover"]
    age = mover.oldest_pending_ms
    assert age is not None
    waited = AGO_MS - 2 * STEP_MS
    assert waited <= age <= waited + (after_ms - before_ms)


async def test_streams_that_do_not_exist_yet_show_nothing(
    redis: aioredis.Redis, settings: Settings
) -> None:
    found = await overview(redis, settings.stream_prefix)

    for stream in found:
        assert (stream.length, stream.dead_letters, stream.groups) == (0, 0, [])
        assert stream.key == settings.stream_prefix + stream.name
    assert not await redis.exists(settings.stream_prefix + "mover.commands")


async def run(argv: list[str], settings: Settings) -> int:
    args = cli.parser().parse_args(argv)
    return int(await args.run(args, settings))


async def test_conveyor_streams_prints_the_overview_as_a_table(
    redis: aioredis.Redis, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    name = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    await busy_stream(redis, name, await redis_now_ms(redis) - AGO_MS)

    assert await run(["streams"], settings) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "STREAM", "LENGTH", "DEAD", "RETENTION", "GROUP", "CONSUMERS", "PENDING", "LAG",
        "OLDEST", "PENDING",
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:]]
    assert [name, "5", "1", "1d", "mover", "1", "1", "2", "2h"] in rows
    assert [name, "5", "1", "1d", "audit", "0", "0", "5", "-"] in rows
    points = settings.stream_prefix + "points"
    assert [points, "0", "0", "15m", "-", "-", "-", "-", "-"] in rows


async def test_conveyor_streams_json_is_the_overview(
    redis: aioredis.Redis, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    name = streams.MOVER_COMMANDS.prefixed(settings.stream_prefix).name
    await busy_stream(redis, name, await redis_now_ms(redis) - AGO_MS)

    assert await run(["streams", "--json"], settings) == 0

    found = msgspec.json.decode(capsys.readouterr().out, type=list[StreamOverview])
    stream = one(found, "mover.commands")
    assert (stream.length, stream.dead_letters) == (5, 1)
    assert [(g.name, g.pending, g.lag) for g in stream.groups] == [("audit", 0, 5), ("mover", 1, 2)]


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0, "0ms"), (999, "999ms"), (1000, "1.0s"), (59_949, "59.9s"), (60_000, "1m"),
        (61_000, "1m01s"), (3_600_000, "1h"), (7_380_000, "2h03m"), (86_400_000, "1d"),
        (93_600_000, "1d02h"),
    ],
)  # fmt: skip
def test_durations_in_the_table(ms: int, shown: str) -> None:
    assert _duration(ms) == shown
