"""Every service logs in one format, without colour codes, from start to SIGTERM.

Each service runs as a process (its `__main__` is what sets logging up) until it is
ready, then is stopped; every line it wrote must be one record in the format of
contracts/runtime/logs.py: uvicorn's, FastStream's, Litestar's and our own alike.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from contracts.runtime.settings import Settings
from tests.support.processes import free_port, kill, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SERVICES = ["gateway", "ingest", "mover", "aggregator"]
LEVEL = r"(DEBUG|INFO|WARNING|ERROR|CRITICAL)"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


async def run_until_ready_then_stop(
    service: str, settings: Settings, log: Path, procs: list[subprocess.Popen[bytes]], **env: str
) -> list[str]:
    port = free_port()
    proc = start_module(service, settings, log, **{f"{service.upper()}_PORT": str(port)}, **env)
    procs.append(proc)

    async def ready() -> bool:
        assert proc.poll() is None, f"{service} exited"
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                r = await client.get(f"http://127.0.0.1:{port}/readyz")
        except httpx.TransportError:
            return False
        return r.status_code == 200

    await wait_until(ready, timeout=30, what=f"{service} ready")
    assert kill(proc, signal.SIGTERM) in (0, -signal.SIGTERM)
    return lines_of(log)


def lines_of(log: Path) -> list[str]:
    return log.read_text().splitlines()


@pytest.mark.parametrize("service", SERVICES)
async def test_one_line_format_no_colours(
    service: str, settings: Settings, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    lines = await run_until_ready_then_stop(service, settings, tmp_path / "out.log", procs)
    record = re.compile(rf"{TIME} {LEVEL} {service} [\w.]+: \S")
    assert lines, "nothing logged"
    assert not [line for line in lines if "\x1b[" in line]
    assert [line for line in lines if not record.match(line)] == []
    # uvicorn's and FastStream's own records come through the same format.
    loggers = {line.split(" ")[3] for line in lines}
    assert "uvicorn.error:" in loggers
    if service != "gateway":
        assert "faststream:" in loggers


async def test_json_lines(
    settings: Settings, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    lines = await run_until_ready_then_stop(
        "mover", settings, tmp_path / "out.log", procs, CONVEYOR_LOG_FORMAT="json"
    )
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "service", "logger", "message"} <= record.keys()
        assert record["service"] == "mover"
