"""SSE clients for bench_fanout, as a process of their own: `python -m tests.perf.sse_clients
PORT CLIENTS SAMPLE KEY`.

Light on purpose (the machine has 2 cores, shared with the gateways): plain
non-blocking sockets and one epoll, no asyncio, no HTTP library. Each client sends
`GET /events?topics=jobs`, waits for `200`, then counts `JobProgressed` events; one
client in SAMPLE also takes each event's `at` (its creation, just before XADD) and
its arrival time. It prints `ready N` once every client has its response head, runs
until a line on stdin, then prints one JSON line: events per client and latencies.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import socket
import sys
import time
from datetime import datetime

BATCH = 250  # connections opened before waiting for their response heads
EVENT = b"event: JobProgressed"
AT = re.compile(rb'"at":"([^"]+)"')
SEP = b"\r\n\r\n"


def raise_open_files(wanted: int) -> None:
    """Raise this process's soft limit on open files to what it needs (at most the hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class Clients:
    def __init__(self, port: int, n: int, sample: int, key: str) -> None:
        self.port, self.n, self.sample = port, n, sample
        self.request = (
            "GET /events?topics=jobs HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {key}\r\n\r\n"
        ).encode()
        self.poll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.index: dict[int, int] = {}
        self.buffers: dict[int, bytes] = {}
        self.headed: set[int] = set()
        self.counts = [0] * n
        self.latencies: list[float] = []
        self.refused = 0

    def connect_all(self) -> None:
        for start in range(0, self.n, BATCH):
            batch = [self._open(i) for i in range(start, min(self.n, start + BATCH))]
            deadline = time.monotonic() + 60
            while not all(fd in self.headed for fd in batch):
                if time.monotonic() > deadline:
                    raise SystemExit(f"no response head after 60 s ({len(self.headed)} so far)")
                self.step(0.5)

    def _open(self, i: int) -> int:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.sendall(self.request)
        sock.setblocking(False)
        fd = sock.fileno()
        self.socks[fd], self.index[fd], self.buffers[fd] = sock, i, b""
        self.poll.register(fd, select.EPOLLIN)
        return fd

    def step(self, timeout: float) -> list[int]:
        """Read what arrived; the other fds that were ready (stdin) are returned."""
        others = []
        for fd, _mask in self.poll.poll(timeout):
            sock = self.socks.get(fd)
            if sock is None:
                others.append(fd)
                continue
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                self.poll.unregister(fd)
                del self.socks[fd]
                sock.close()
                continue
            self._take(fd, data, time.time())
        return others

    def _take(self, fd: int, data: bytes, now: float) -> None:
        i = self.index[fd]
        if fd in self.headed and i % self.sample:  # an untimed client only counts events
            tail = self.buffers[fd]
            self.counts[i] += (tail + data).count(EVENT)  # a marker cut in two counts once
            self.buffers[fd] = data[1 - len(EVENT) :]
            return
        buffer = self.buffers[fd] + data
        if fd not in self.headed:
            if SEP not in buffer:
                self.buffers[fd] = buffer
                return
            head, buffer = buffer.split(SEP, 1)
            if not head.startswith(b"HTTP/1.1 200"):
                self.refused += 1
            self.headed.add(fd)
            if i % self.sample:
                self.buffers[fd] = b""
                self._take(fd, buffer, now)
                return
        end = buffer.rfind(SEP)
        if end < 0:
            self.buffers[fd] = buffer
            return
        done, self.buffers[fd] = buffer[: end + 4], buffer[end + 4 :]
        found = done.count(EVENT)
        if not found:
            return
        self.counts[i] += found
        for at in AT.findall(done):
            sent = datetime.fromisoformat(at.decode().replace("Z", "+00:00")).timestamp()
            self.latencies.append(now - sent)


def main() -> None:
    port, n, sample, key = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    raise_open_files(n + 100)
    clients = Clients(port, n, sample, key)
    clients.connect_all()
    print(f"ready {len(clients.headed)} refused {clients.refused}", flush=True)
    stdin = sys.stdin.fileno()
    clients.poll.register(stdin, select.EPOLLIN)
    cpu_at = time.process_time()
    while stdin not in clients.step(1.0):
        pass
    tally: dict[int, int] = {}
    for count in clients.counts:
        tally[count] = tally.get(count, 0) + 1
    result = {
        "clients": n, "open": len(clients.socks), "events_per_client": tally,
        "latencies": clients.latencies, "cpu_s": time.process_time() - cpu_at,
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    os._exit(0)  # no orderly close of thousands of sockets: the gateway sees them go at once


if __name__ == "__main__":
    main()
