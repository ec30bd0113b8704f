"""The operator's commands against real Redis and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from contracts import codec, streams
from contracts.delivery import dead_letter
from contracts.messages import StopBatch
from contracts.runtime import cli
from contracts.runtime.settings import Settings
from tests.support.processes import ROOT, settings_env

pytestmark = pytest.mark.integration


async def run(argv: list[str], settings: Settings) -> int:
    args = cli.parser().parse_args(argv)
    return int(await args.run(args, settings))


async def test_dlq_list_and_replay(
    redis: aioredis.Redis, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"{settings.stream_prefix}ingest.commands"
    message = StopBatch(id="m1", batch_id="b1", run_id="r1")
    entry = await redis.xadd(name, codec.entry_fields(message))
    await redis.xgroup_create(name, "ingest", id="0")
    await redis.xreadgroup("ingest", "c1", {name: ">"})
    await dead_letter(
        redis,
        stream=name,
        group="ingest",
        entry_id=entry.decode(),
        data=codec.encode(message),
        reason="boom",
        deliveries=6,
        consumer="c1",
    )
    assert (await redis.xpending(name, "ingest"))["pending"] == 0

    assert await run(["dlq", "list", "ingest.commands"], settings) == 0
    out = capsys.readouterr().out
    assert "reason: boom" in out
    assert "deliveries=6" in out
    assert "1 dead letter(s)" in out

    assert await run(["dlq", "replay", "ingest.commands"], settings) == 0
    assert "replayed 1" in capsys.readouterr().out
    assert await redis.xlen(f"{name}.dlq") == 0
    last = await redis.xrevrange(name, count=1)
    assert last[0][1][codec.DATA_FIELD] == codec.encode(message)


async def test_wait_names_the_unreachable_service(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = Settings(redis_url="redis://127.0.0.1:1/0", database_url=settings.database_url)
    assert await run(["wait", "--timeout", "0"], closed) == 1
    err = capsys.readouterr().err
    assert "redis is not reachable at redis://127.0.0.1:1/0" in err
    assert "redis-server" in err


async def test_migrate_is_idempotent(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(["migrate"], settings) == 0
    assert "(0 applied now)" in capsys.readouterr().out


def conveyor(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """`conveyor ARGV...` as a process, as a person runs it."""
    return subprocess.run(
        [sys.executable, "-m", "contracts.runtime.cli", *argv],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("verb", ["list", "replay"])
def test_dlq_of_an_unknown_stream_fails_naming_the_known_ones(
    settings: Settings, verb: str
) -> None:
    done = conveyor(settings, "dlq", verb, "nosuch.stream")
    assert done.returncode != 0
    assert "nosuch.stream" in done.stderr
    for spec in streams.ALL:
        assert spec.name in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "list", "mover.commands", "--count", "0"],
        ["dlq", "list", "mover.commands", "--count", "many"],
        ["dlq", "replay", "mover.commands", "--id", "1-1"],  # no such dead letter
        ["dlq"],
        ["nosuch"],
        ["move", "--source", "a", "--target", "b", "--ids", "1,x"],
        ["slowdb", "maybe"],
        ["slowdb", "on", "--delay-ms", "-5"],
        ["seed", "--companies", "-1"],
        ["seed", "--my-list", "1", "--ignore", "10"],  # Ignore would start before company 1
        ["wait", "--timeout", "soon"],
    ],
)
def test_bad_input_exits_non_zero_with_a_message(settings: Settings, argv: list[str]) -> None:
    done = conveyor(settings, *argv)
    assert done.returncode != 0, done.stdout
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr


def test_unreachable_redis_is_one_message_not_a_traceback(settings: Settings) -> None:
    closed = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")
    done = conveyor(closed, "dlq", "list", "mover.commands")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "redis://127.0.0.1:1/0" in done.stderr


@pytest.mark.parametrize("variable", ["database_password_file", "redis_password_file"])
def test_a_missing_password_file_is_one_message_not_a_traceback(
    settings: Settings, tmp_path: Path, variable: str
) -> None:
    missing = str(tmp_path / "no-such-secret")
    done = conveyor(msgspec.structs.replace(settings, **{variable: missing}), "wait")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{variable.upper()}={missing}" in done.stderr
    assert "cannot read it" in done.stderr


def test_the_wrapper_works_from_a_fresh_shell(settings: Settings, tmp_path: Path) -> None:
    """`./conveyor` (the README's form) with no virtualenv and a bare PATH, from elsewhere."""
    env = {k: v for k, v in settings_env(settings).items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run(
        [str(ROOT / "conveyor"), "dlq", "list", "mover.commands"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"0 dead letter(s) in {settings.stream_prefix}mover.commands.dlq" in done.stdout
