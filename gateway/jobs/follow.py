"""`conveyor move` and `conveyor follow`: start a move and watch it in the terminal.

    conveyor move --source <list> --target <list> --all [--exclude 3,4] [--mode move] --follow
    conveyor move --source <list> --target <list> --ids 1,2,3
    conveyor follow <job id>

Both talk to the gateway (`--url`, default $CONVEYOR_URL or http://127.0.0.1:8000)
and draw a progress bar from the job's SSE feed; a dropped or ended connection
resumes with Last-Event-ID. Following stops at the job's terminal event (or a
snapshot of a finished job) whether or not the server ends the stream; comments,
events it does not know and data that is not a JSON object are ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx
import httpx_sse
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from contracts.jobs import FINAL_EVENTS, FINISHED
from contracts.runtime.cli import Command
from contracts.runtime.settings import Settings

# Events this client draws; any other (reset, overflow, closed, new kinds) is skipped.
SHOWN = {"snapshot", "JobQueued", "JobScheduled", "JobStarted", "JobProgressed", *FINAL_EVENTS}
RECONNECT_S = 0.5


def _ids(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def move_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="source list id")
    parser.add_argument("--target", required=True, help="target list id")
    parser.add_argument("--mode", choices=["copy", "move"], default="copy")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", type=_ids, help="comma-separated company ids")
    which.add_argument("--all", action="store_true", help="every company of the source")
    parser.add_argument("--exclude", type=_ids, default=[], help="with --all: ids to leave out")
    parser.add_argument("--priority", type=int, default=3, choices=range(1, 6))
    parser.add_argument("--follow", action="store_true", help="show progress until it ends")
    _common(parser)


def follow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id")
    _common(parser)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("CONVEYOR_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("CONVEYOR_API_KEY"), help="API key")


def _client(args: argparse.Namespace) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    return httpx.AsyncClient(base_url=args.url, headers=headers, timeout=httpx.Timeout(10, read=60))


async def cmd_move(args: argparse.Namespace, settings: Settings) -> int:
    selection: Any = {"all": True, "exclude": args.exclude} if args.all else args.ids
    body = {"source": args.source, "target": args.target, "mode": args.mode,
            "selection": selection, "priority": args.priority}  # fmt: skip
    async with _client(args) as client:
        response = await client.post("/moves", json=body)
        if response.status_code != 202:
            print(f"refused ({response.status_code}): {response.text}", file=sys.stderr)
            return 1
        job = response.json()
        print(f"job {job['id']} accepted")
        return await follow(client, job["id"]) if args.follow else 0


async def cmd_follow(args: argparse.Namespace, settings: Settings) -> int:
    async with _client(args) as client:
        return await follow(client, args.job_id)


async def follow(client: httpx.AsyncClient, job_id: str, console: Console | None = None) -> int:
    """Draw the job's progress until its final event; 0 if it completed."""
    console = console or Console(stderr=True)
    last_id: str | None = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"job {job_id[:8]}", total=None)
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with httpx_sse.aconnect_sse(
                    client, "GET", f"/jobs/{job_id}/events", headers=headers
                ) as source:
                    if source.response.status_code != 200:
                        console.print(f"cannot follow job {job_id}: {source.response.status_code}")
                        return 1
                    async for sse in source.aiter_sse():
                        last_id = sse.id or last_id
                        data = _data(sse.data)
                        if sse.event not in SHOWN or data is None:
                            continue
                        status = _show(progress, bar, sse.event, data)
                        if status is not None:
                            console.print(f"job {job_id} {status}")
                            return 0 if status == "completed" else 1
            except (httpx.TransportError, httpx_sse.SSEError) as exc:
                console.print(f"connection lost ({exc}); resuming")
            await asyncio.sleep(RECONNECT_S)  # the stream ended before the job did


def _data(text: str) -> dict[str, Any] | None:
    """An event's data as a JSON object, or None (empty, not JSON, not an object)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _show(progress: Progress, bar: Any, event: str, data: dict[str, Any]) -> str | None:
    counts = data.get("counts") or data  # a snapshot carries the job's fields flat
    total = counts.get("total") if isinstance(counts, dict) else None
    if isinstance(total, int):
        done = counts.get("done")
        progress.update(bar, total=total, completed=done if isinstance(done, int) else 0)
    if event == "snapshot" and data.get("status") in FINISHED:
        return str(data["status"])
    if event == "JobFailed":
        progress.console.print(f"error: {data.get('error')}")
    return FINAL_EVENTS.get(event)


MOVE = Command("copy or move companies between lists (a job)", move_arguments, cmd_move)
FOLLOW = Command("watch a job's progress", follow_arguments, cmd_follow)
