"""Stores that go away and come back, for readiness tests: a `redis-server` of the
test's own on a free port, and a URL pointed at another port."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class OwnRedis:
    """A throwaway `redis-server` on one port that the test stops and starts.

    With `config` it runs with that file (as deploy/redis/redis.conf) and `args` after
    it, instead of the in-memory default; the port, bind and `--dir workdir` still win."""

    def __init__(
        self, port: int, workdir: Path, *, config: Path | None = None, args: Sequence[str] = ()
    ) -> None:
        self.port = port
        self.workdir = workdir
        self.config = config
        self.args = tuple(args)
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        given = (
            (str(self.config), *self.args) if self.config else ("--save", "", "--appendonly", "no")
        )
        self.process = await asyncio.create_subprocess_exec(
            *("redis-server", *given, "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--daemonize", "no", "--dir", str(self.workdir)),
            stdout=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        self.process = None


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.netloc.rsplit('@', 1)[0]}@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{port}"))
