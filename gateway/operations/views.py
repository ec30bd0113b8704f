"""What the operations routes answer with (the overview's own Structs for GET /streams)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from contracts.delivery import DeadLetter
from contracts.delivery.overview import StreamOverview


class StreamsView(msgspec.Struct, kw_only=True):
    streams: list[StreamOverview]


class DeadLetterView(msgspec.Struct, kw_only=True):
    dlq_id: str  # the id in `<stream>.dlq`: what replay takes
    entry_id: str  # the entry's id in its stream when it was given up on
    group: str
    consumer: str
    deliveries: int
    failed_at: datetime
    reason: str
    data: str  # the message as it was on the stream (JSON text, unless it was not JSON)


class DeadLettersView(msgspec.Struct, kw_only=True):
    stream: str
    total: int  # dead letters in the stream's DLQ; `dead_letters` holds the newest `count`
    dead_letters: list[DeadLetterView]


class ReplayedView(msgspec.Struct, kw_only=True):
    stream: str
    entry_ids: list[str]  # the new entries on the stream, oldest dead letter first
    left: int  # dead letters still in the DLQ


def dead_letter_view(letter: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        dlq_id=letter.dlq_id,
        entry_id=letter.entry_id,
        group=letter.group,
        consumer=letter.consumer,
        deliveries=letter.deliveries,
        failed_at=datetime.fromtimestamp(letter.failed_at_ms / 1000, UTC),
        reason=letter.reason,
        data=letter.data,
    )
