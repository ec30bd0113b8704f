"""`python -m gateway`: serve the gateway with uvicorn (uvloop, httptools), one process
or `GATEWAY_WORKERS` processes on one port.

Settings come from the environment (`contracts.runtime.settings.Settings.from_env`); the
address from `GATEWAY_HOST` (default 127.0.0.1) and `GATEWAY_PORT` (default 8000).
On SIGTERM the live feeds end every open SSE stream at once (a `closed` event with a
`retry:` hint; clients resume elsewhere with Last-Event-ID), uvicorn stops accepting
and gives open requests `CONVEYOR_SHUTDOWN_GRACE_S` seconds, then the lifespan closes
Redis and the pool. (Uvicorn waits for open connections before the lifespan's
shutdown, so streams are ended from the signal, not from there.)

**Workers.** `GATEWAY_WORKERS=N` (default 1: `make run`, tests; set it to the number
of cores where many SSE clients are served) starts N worker processes, each a whole
gateway (its own Redis client, pool and feed readers: one XREAD per stream and
process), each binding the port with `SO_REUSEPORT`, so the kernel spreads new
connections over them. This process only supervises: SIGTERM / SIGINT go to every
worker (each ends its streams with `closed` as above); a worker that dies stops the
others and this process exits with its code, for the process manager to restart.
A worker whose supervisor is gone (SIGKILL) stops by itself within a second. Each
worker has its own `/metrics` (a scrape sees the worker that answered) and its own
count of SSE streams per key (`sse_connections_per_key` is per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import uvicorn
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from contracts.runtime import logs
from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.feeds.stream import RAW_SEND

log = logging.getLogger("gateway")

WORKERS_ENV = "GATEWAY_WORKERS"
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"  # set in a worker: bind with SO_REUSEPORT
BACKLOG = 4096  # connections waiting to be accepted (a burst of SSE clients reconnecting)


class Server(uvicorn.Server):
    """Uvicorn, ending the app's SSE streams as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.app = app
        self.closing: asyncio.Task[None] | None = None
        self.orphan_watch: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        feeds = getattr(self.app.state, "feeds", None)
        if feeds is not None and self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(feeds.close())
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        supervisor = os.environ.get(SUPERVISOR_ENV)
        if supervisor:
            self.orphan_watch = asyncio.create_task(self._stop_when_orphaned(int(supervisor)))

    async def _stop_when_orphaned(self, supervisor: int) -> None:
        while True:  # no event tells a process that its parent died; look each second
            await asyncio.sleep(1)
            if os.getppid() != supervisor:
                break
        log.warning("gateway worker: the supervisor (pid %s) is gone; stopping", supervisor)
        self.handle_exit(signal.SIGTERM, None)


def main() -> None:
    workers = int(os.environ.get(WORKERS_ENV, "1"))
    if workers > 1 and not os.environ.get(SUPERVISOR_ENV):
        logs.setup("gateway")
        raise SystemExit(supervise(workers))
    serve()


def serve() -> None:
    settings = Settings.from_env()
    app = create_app(settings)
    logs.setup("gateway")  # after create_app: it replaces Litestar's default logging config
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = int(os.environ.get("GATEWAY_PORT", "8000"))
    base = f"http://{host}:{port}"
    log.info("settings: %s", settings.redacted())
    log.info("API %s/  OpenAPI %s/schema  metrics %s/metrics", base, base, base)
    config = uvicorn.Config(
        with_raw_send(app),
        host=host,
        port=port,
        lifespan="on",
        loop="uvloop",
        http="httptools",
        backlog=BACKLOG,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        server_header=False,
        log_config=None,
    )
    sockets = [_reuse_port_socket(host, port)] if os.environ.get(SUPERVISOR_ENV) else None
    # Ctrl-C: uvicorn shuts down, then re-raises SIGINT; `uvicorn.run` swallows the
    # KeyboardInterrupt that follows, and so does this (no traceback in the log).
    with contextlib.suppress(KeyboardInterrupt):
        Server(config, app).run(sockets=sockets)


def with_raw_send(app: Litestar) -> ASGIApp:
    """`app`, with the server's `send` in each HTTP scope (gateway.feeds.stream.RAW_SEND):
    SSE bodies are written through it, not through every middleware's wrapper."""

    async def serving(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            scope[RAW_SEND] = send  # type: ignore[literal-required]
        await app(scope, receive, send)

    return serving


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other workers bind too (the kernel balances accepts)."""
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(BACKLOG)
    return sock


def supervise(workers: int) -> int:
    """Run `workers` gateway processes on one port until a signal or one of them ends."""
    env = os.environ | {SUPERVISOR_ENV: str(os.getpid())}
    procs = [  # a process group of their own: a terminal's Ctrl-C reaches them once, from here
        subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=env | {"GATEWAY_WORKER": str(i)},
            process_group=0,
        )
        for i in range(workers)
    ]
    log.info("gateway: %d workers (pids %s)", workers, [p.pid for p in procs])
    stopping = False

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while any(proc.poll() is None for proc in procs):
        for proc in procs:
            ended = proc.poll()
            if ended is not None and not stopping:
                log.error("gateway worker %s exited (%s); stopping the others", proc.pid, ended)
                code = ended or 1
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    return code


if __name__ == "__main__":
    main()
