"""The four services as processes on free ports, with the test's own schema and streams."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contracts.runtime.settings import Settings
from tests.support.processes import free_port, kill, start_module
from tests.support.waiting import wait_until

SERVICES = ("gateway", "ingest", "mover", "aggregator")


@dataclass
class Stack:
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


@pytest.fixture
def stack_procs(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    ports = {name: free_port() for name in SERVICES}
    env = {f"{name.upper()}_PORT": str(port) for name, port in ports.items()}
    procs = {
        name: start_module(name, settings, tmp_path / f"{name}.log", **env) for name in SERVICES
    }
    stack = Stack(ports, procs, tmp_path)
    yield stack
    for proc in procs.values():
        kill(proc)


@pytest.fixture
async def stack(stack_procs: Stack) -> Stack:
    """The stack once every service answers its health check."""
    async with httpx.AsyncClient(timeout=2) as client:
        for name in SERVICES:

            async def up(name: str = name) -> bool:
                proc = stack_procs.procs[name]
                assert proc.poll() is None, (stack_procs.logs / f"{name}.log").read_text()
                try:
                    r = await client.get(stack_procs.url(name) + "/healthz")
                except httpx.TransportError:
                    return False
                return r.status_code in (200, 204)

            await wait_until(up, timeout=30, what=f"{name} healthy")
    return stack_procs
