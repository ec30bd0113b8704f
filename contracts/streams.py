"""Stream and group names, who reads each stream, and how long entries are kept.

Names are readable at `redis-cli` (`XRANGE mover.commands - +`). Every stream
has a dead-letter stream `<name>.dlq`. Retention is a time window applied by
`contracts.delivery.trim` with `XTRIM MINID ~`: an entry is trimmed only when
it is older than the window AND every group in `groups` has read and
acknowledged it. A group that does not exist yet holds trimming back, so no
entry is lost before its reader has started. (Redis 7.0 has no XADD ... ACKED
trimming; this is the same rule done from the outside.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import msgspec

from contracts import messages as m

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Consumer groups: one per service.
INGEST = "ingest"
MOVER = "mover"
AGGREGATOR = "aggregator"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    groups: tuple[str, ...]
    retention_ms: int
    # The messages this stream carries; one Decoder per stream, built once.
    message_type: object

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def prefixed(self, prefix: str) -> StreamSpec:
        """The same stream under a prefix (tests run on their own streams)."""
        return replace(self, name=f"{prefix}{self.name}") if prefix else self

    def decoder(self) -> msgspec.json.Decoder[object]:
        return _decoder(self.message_type)


_DECODERS: dict[object, msgspec.json.Decoder[object]] = {}


def _decoder(message_type: object) -> msgspec.json.Decoder[object]:
    if message_type not in _DECODERS:
        _DECODERS[message_type] = msgspec.json.Decoder(message_type)
    return _DECODERS[message_type]


MOVER_COMMANDS = StreamSpec("mover.commands", (MOVER,), DAY_MS, m.MoverCommand)
MOVER_CHUNKS = StreamSpec("mover.chunks", (MOVER,), HOUR_MS, m.ChunkCommand)
# Chunks of small or urgent jobs, read by workers of their own (see mover/planning.py).
MOVER_EXPRESS = StreamSpec("mover.express", (MOVER,), HOUR_MS, m.ChunkCommand)
JOBS_EVENTS = StreamSpec("jobs.events", (AGGREGATOR,), DAY_MS, m.JobEvent)
# Batches (issue 4): lifecycle commands apart from the points, so that a stop is
# never queued behind thousands of points; points pushed over HTTP and made by a
# run's producer both enter through `ingest.points`.
INGEST_COMMANDS = StreamSpec("ingest.commands", (INGEST,), DAY_MS, m.IngestCommand)
INGEST_POINTS = StreamSpec("ingest.points", (INGEST,), 15 * MINUTE_MS, m.PointsCommand)
POINTS = StreamSpec("points", (AGGREGATOR,), 15 * MINUTE_MS, m.PointsEvent)
BATCHES_EVENTS = StreamSpec("batches.events", (AGGREGATOR,), DAY_MS, m.BatchEvent)

ALL: tuple[StreamSpec, ...] = (
    MOVER_COMMANDS,
    MOVER_CHUNKS,
    MOVER_EXPRESS,
    JOBS_EVENTS,
    INGEST_COMMANDS,
    INGEST_POINTS,
    POINTS,
    BATCHES_EVENTS,
)
DLQ_RETENTION_MS = 7 * DAY_MS


def by_name(name: str) -> StreamSpec:
    for spec in ALL:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in ALL)
    raise KeyError(f"unknown stream {name!r}; known streams: {known}")
