"""`conveyor`: the operator's command line, built from one command table.

    conveyor wait [--timeout S]          wait for Redis and PostgreSQL
    conveyor migrate                     apply the SQL migrations
    conveyor streams                     every stream: length, groups, pending, lag, dead letters
    conveyor dlq list STREAM [--count N] dead letters of STREAM, oldest first
    conveyor dlq replay STREAM [--id ID ...]  put dead letters back on STREAM
    conveyor seed | slowdb | move | follow | devkey   (`conveyor VERB --help`)

The table is `[project.entry-points."conveyor.commands"]` in `pyproject.toml`:
each verb's name and the `Command` that runs it, exported by the module it
operates on (`contracts.runtime.commands`, `gateway.catalog.demo`, `gateway.jobs.follow`,
`gateway.frontdoor.devkey`). Nothing registers itself by being imported, and this module
imports no service: the table is read through `importlib.metadata`.

Settings come from the environment (REDIS_URL, DATABASE_URL, CONVEYOR_*).
Bad input (an unknown stream or dead letter, a malformed number) and an
unreachable Redis, PostgreSQL or gateway end with a message on stderr and a
non-zero status: 2 for what argparse refuses, 1 for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import asyncpg
import httpx
from redis.exceptions import RedisError

from contracts.runtime.secret_files import SecretFileError
from contracts.runtime.settings import Settings

GROUP = "conveyor.commands"
Run = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
# What an unreachable store or gateway raises: one line on stderr, not a traceback.
UNREACHABLE = (OSError, RedisError, asyncpg.PostgresError, httpx.TransportError)


@dataclass(frozen=True)
class Command:
    """One verb: its help line, its arguments and what it runs (its name is in the table)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse `type=` for whole numbers of at least `minimum`, with a clear error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def table() -> dict[str, Command]:
    """The command table: every `conveyor.commands` entry point, loaded, by name."""
    return {ep.name: ep.load() for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="conveyor", description=__doc__.split("\n\n")[0])
    sub = root.add_subparsers(dest="command", required=True)
    for name, command in table().items():
        verb = sub.add_parser(name, help=command.help)
        command.add_arguments(verb)
        verb.set_defaults(run=command.run)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run: Run = args.run
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args, settings))
    except SecretFileError as exc:  # a secret file to fix (CONVEYOR_*_FILE)
        print(f"conveyor {args.command}: {exc}", file=sys.stderr)
        return 2
    except UNREACHABLE as exc:
        where = settings.redacted()
        print(f"conveyor {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  REDIS_URL={where['redis_url']} DATABASE_URL={where['database_url']}; "
              "`conveyor wait` says which is down", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
