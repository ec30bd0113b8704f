"""The batched mode's plain parts: what a read holds, and the effect of its first-time messages.

A read is split into entries that decode (`Taken`, in stream order) and entries that
cannot (dead-lettered at once by the consumer, never part of the transaction). Among
the decoded ones, the first entry of each message id is recorded in `applied_messages`;
a later entry with the same id in the same read is a duplicate, like one read later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from contracts.messages import Message
from contracts.runtime.db import DbConnection

Handler = Callable[[Any, DbConnection], Awaitable[None]]
# handle_many(messages, conn): the effect of all first-time messages of a read, in stream order.
ManyHandler = Callable[[list[Any], DbConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Taken:
    entry_id: str
    body: bytes
    message: Message


@dataclass(frozen=True, slots=True)
class Undecodable:
    entry_id: str
    body: bytes
    reason: str


def split_read(
    entry_ids: Sequence[str], bodies: Sequence[bytes], decoder: msgspec.json.Decoder[Any]
) -> tuple[list[Taken], list[Undecodable]]:
    taken: list[Taken] = []
    bad: list[Undecodable] = []
    for entry_id, body in zip(entry_ids, bodies, strict=True):
        try:
            taken.append(Taken(entry_id, body, decoder.decode(body)))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            bad.append(Undecodable(entry_id, body, f"undecodable: {exc}"))
    return taken, bad


def first_entries(taken: Sequence[Taken]) -> list[tuple[str, str]]:
    """(message id, entry id) of the first entry of each message id, in stream order."""
    seen: dict[str, str] = {}
    for t in taken:
        seen.setdefault(t.message.id, t.entry_id)
    return list(seen.items())


def first_time(taken: Sequence[Taken], first: set[str]) -> list[Message]:
    """The messages to apply: the first entry of each id recorded for the first time."""
    out: list[Message] = []
    pending = set(first)
    for t in taken:
        if t.message.id in pending:
            pending.discard(t.message.id)
            out.append(t.message)
    return out


async def run_effect(
    messages: list[Message],
    conn: DbConnection,
    *,
    handler: Handler,
    handle_many: ManyHandler | None,
) -> None:
    """`handle_many` for them all when the subscription has one, else `handler` for each."""
    if handle_many is not None:
        await handle_many(messages, conn)
        return
    for message in messages:
        await handler(message, conn)
