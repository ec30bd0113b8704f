"""Demo data and the slow-database switch.

`conveyor seed` makes 100,000 companies and three lists: "My List" (the first
50,000), "Liked Companies" (10) and "Companies to Ignore" (50, half of them in My
List). Sizes are options; seeding again adds nothing twice (fixed list ids).

`conveyor slowdb on --delay-ms 100` installs the classic throttle: a BEFORE INSERT
row trigger on memberships that sleeps per inserted row; `conveyor slowdb off`
removes it.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from contracts.runtime.cli import Command, whole_number
from contracts.runtime.db import DbConnection, connect
from contracts.runtime.settings import Settings
from gateway.catalog import sql

MY_LIST = uuid.UUID("00000000-0000-4000-8000-000000000001")
LIKED = uuid.UUID("00000000-0000-4000-8000-000000000002")
IGNORE = uuid.UUID("00000000-0000-4000-8000-000000000003")
WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell"]


def check_sizes(*, companies: int, my_list: int, liked: int, ignore: int) -> None:
    """Sizes that make the three lists: none negative, and "Companies to Ignore" (half
    of it in My List) starts inside the companies."""
    sizes = {"companies": companies, "my_list": my_list, "liked": liked, "ignore": ignore}
    negative = [name for name, n in sizes.items() if n < 0]
    if negative:
        raise ValueError(f"seed sizes must not be negative: {', '.join(negative)}")
    if ignore // 2 > my_list:
        raise ValueError(f"ignore ({ignore}) may be at most twice my_list ({my_list})")


async def seed(
    conn: DbConnection, *, companies: int, my_list: int, liked: int, ignore: int
) -> dict[str, int]:
    check_sizes(companies=companies, my_list=my_list, liked=liked, ignore=ignore)
    async with conn.transaction():
        # Demo data is loaded at full speed even while the database is slow
        # (`conveyor slowdb on`): the throttle is off for this transaction only.
        throttled = await sql.pause_throttle(conn=conn)
        await sql.add_companies(conn=conn, count=companies, names=WORDS)
        lists = [
            (MY_LIST, "My List", 1, my_list),
            (LIKED, "Liked Companies", 1, liked),
            (IGNORE, "Companies to Ignore", my_list - ignore // 2 + 1, ignore),
        ]
        for list_id, name, first, size in lists:
            await sql.add_collection(conn=conn, collection_id=list_id, name=name)
            await sql.add_members(
                conn=conn, collection_id=list_id, first=first, last=first + size - 1,
                companies=companies,
            )  # fmt: skip
        if throttled:
            await sql.resume_throttle(conn=conn)
    await sql.analyze_catalog(conn=conn)
    return await sql.collection_sizes(conn=conn)


async def slow_db(conn: DbConnection, *, on: bool, delay_ms: int = 100) -> None:
    """Install (or remove) a trigger that sleeps `delay_ms` per inserted membership."""
    await sql.drop_throttle(conn=conn)
    if on:
        await sql.add_throttle(conn=conn, delay_ms=delay_ms)


async def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    try:
        check_sizes(
            companies=args.companies, my_list=args.my_list, liked=args.liked, ignore=args.ignore
        )
    except ValueError as exc:
        print(f"conveyor seed: {exc}", file=sys.stderr)
        return 2
    conn = await connect(settings)
    try:
        counts = await seed(
            conn, companies=args.companies, my_list=args.my_list, liked=args.liked,
            ignore=args.ignore,
        )  # fmt: skip
        if args.slow_db:
            await slow_db(conn, on=True, delay_ms=args.delay_ms)
    finally:
        await conn.close()
    for name, n in counts.items():
        print(f"{name}: {n} companies")
    print(f"My List: {MY_LIST}\nLiked Companies: {LIKED}\nCompanies to Ignore: {IGNORE}")
    if args.slow_db:
        print(f"slow database: {args.delay_ms} ms per inserted membership")
    return 0


async def cmd_slowdb(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(settings)
    try:
        await slow_db(conn, on=args.state == "on", delay_ms=args.delay_ms)
    finally:
        await conn.close()
    print(
        f"slow database {args.state}" + (f" ({args.delay_ms} ms/row)" if args.state == "on" else "")
    )
    return 0


def seed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--companies", type=whole_number(0), default=100_000)
    parser.add_argument("--my-list", type=whole_number(0), default=50_000)
    parser.add_argument("--liked", type=whole_number(0), default=10)
    parser.add_argument("--ignore", type=whole_number(0), default=50)
    parser.add_argument("--slow-db", action="store_true", help="install the 100 ms/row trigger")
    parser.add_argument("--delay-ms", type=whole_number(0), default=100)


def slowdb_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("state", choices=["on", "off"])
    parser.add_argument("--delay-ms", type=whole_number(0), default=100)


SEED = Command("load the demo companies and lists", seed_arguments, cmd_seed)
SLOWDB = Command("turn the 100 ms/row insert trigger on or off", slowdb_arguments, cmd_slowdb)
