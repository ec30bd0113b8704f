"""`conveyor move --follow` against the real gateway and services."""

from __future__ import annotations

import io

import asyncpg
import pytest
from rich.console import Console

from contracts.runtime import cli
from contracts.runtime.settings import Settings
from gateway.jobs.follow import follow
from tests.support.keys import WRITE_KEY
from tests.support.mover_stack import MY_LIST, mover_world

pytestmark = pytest.mark.integration


async def test_move_and_follow_to_the_end(
    settings: Settings, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    async with mover_world(settings, pool, slow_ms=1) as w:
        target = await w.new_list()
        args = cli.parser().parse_args(
            ["move", "--source", MY_LIST, "--target", target, "--all", "--exclude", "1,2",
             "--follow", "--url", str(w.client.base_url), "--key", WRITE_KEY]
        )  # fmt: skip
        code = await args.run(args, settings)
        out = capsys.readouterr()
        job_id = out.out.split()[1]
        job = await w.finished(job_id)  # the projection follows the feed closely

        screen = io.StringIO()
        again = await follow(w.client, job_id, Console(file=screen, width=100))

    assert code == 0
    assert f"job {job_id} completed" in out.err
    assert (job["status"], job["added"]) == ("completed", 498)
    assert again == 0
    assert "498/498" in screen.getvalue()


async def test_move_refused_says_why(
    settings: Settings, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    async with mover_world(settings, pool) as w:
        args = cli.parser().parse_args(
            ["move", "--source", MY_LIST, "--target", MY_LIST, "--ids", "1",
             "--url", str(w.client.base_url), "--key", WRITE_KEY]
        )  # fmt: skip
        assert await args.run(args, settings) == 1
    assert "the same list" in capsys.readouterr().err
