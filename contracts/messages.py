"""The messages the services exchange: frozen, tagged msgspec Structs, JSON on the wire.

Commands are imperative (`MoveCompanies`), events past tense (`JobProgressed`).
Every message carries `id`, assigned by its producer: a retried publish of the
same command carries the same id, and each consumer group applies an id once.

Evolution rules (checked by tests/unit/test_contracts.py): a new field gets a
default; a field's type never changes; a tag is never reused. Consumers do not
forbid unknown fields, so an old consumer reads a newer message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec

# Namespace for ids derived from a client's Idempotency-Key.
_KEY_NAMESPACE = uuid.UUID("5b0f6a8e-3c1d-4e57-9a50-0c0f7e1e2d11")


def new_id() -> str:
    """A fresh message id (random UUID, hex)."""
    return uuid.uuid4().hex


def id_from_key(scope: str, key: str) -> str:
    """The message id for a client's Idempotency-Key: the same key gives the same id."""
    return uuid.uuid5(_KEY_NAMESPACE, f"{scope}\x00{key}").hex


def derived_id(parent: str, *parts: object) -> str:
    """The id of a message produced because of `parent`: the same on every redelivery."""
    return uuid.uuid5(_KEY_NAMESPACE, "\x00".join([parent, *map(str, parts)])).hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of every message: its producer-assigned id and when it was made."""

    id: str
    at: datetime = msgspec.field(default_factory=utcnow)


# --- mover: commands ---------------------------------------------------------


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which companies: the listed ids, or all of the source list but `exclude`."""

    ids: list[int] | None = None
    all: bool = False
    exclude: list[int] = msgspec.field(default_factory=list)


class MoveCompanies(Message, frozen=True, kw_only=True):
    """A job over companies of the list `source`: copy or move them into `target`, remove
    them from `source` (`remove`), or remove them all and then the list (`delete`, whose
    last chunk deletes the list's row). `remove` and `delete` have no target."""

    job_id: str
    source: str
    target: str | None = None
    mode: Literal["copy", "move", "remove", "delete"]
    selection: Selection
    priority: int = 3
    max_attempts: int = 3
    not_before: datetime | None = None


class ApplyChunk(Message, frozen=True, kw_only=True):
    """Apply some pages of a job's plan (the mover cut them when it released them)."""

    job_id: str
    run: int
    pages: list[int]
    attempt: int = 1


class StartJob(Message, frozen=True, kw_only=True):
    """Start a planned job whose `not_before` has come (sent by the mover's scheduler)."""

    job_id: str


class CancelJob(Message, frozen=True, kw_only=True):
    """Cancel a job; one the mover has not planned yet is remembered as cancelled, so
    its MoveCompanies, when it comes, plans nothing."""

    job_id: str


class RetryJob(Message, frozen=True, kw_only=True):
    """Run a failed or cancelled job again, as a new attempt. A job whose MoveCompanies
    was never planned is planned from the command the mover kept, or else from `move`."""

    job_id: str
    # The job's command as the gateway recorded it: plans a job the mover never planned
    # (its MoveCompanies lost, dead-lettered, or cancelled before it came).
    move: MoveCompanies | None = None


# --- jobs: events -------------------------------------------------------------


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """Where a job stands: rows done of total, and what became of them."""

    total: int = 0
    done: int = 0
    added: int = 0
    already_present: int = 0
    removed: int = 0


class JobQueued(Message, frozen=True, kw_only=True):
    job_id: str
    kind: str
    priority: int = 3
    max_attempts: int = 3
    params: dict[str, object] = msgspec.field(default_factory=dict)
    not_before: datetime | None = None
    source: str | None = None
    target: str | None = None


# Every job event after JobQueued names the attempt (run) it belongs to, from 1;
# `attempt` 0 (events of producers older than the field) means "the job's current one".
# Projections compare it: see contracts/jobs.py.


class JobScheduled(Message, frozen=True, kw_only=True):
    """Planned, and waiting for its `not_before` (a StartJob will start it)."""

    job_id: str
    attempt: int = 0
    not_before: datetime | None = None
    counts: Counts = Counts()


class JobStarted(Message, frozen=True, kw_only=True):
    job_id: str
    attempt: int
    counts: Counts = Counts()


class JobProgressed(Message, frozen=True, kw_only=True):
    job_id: str
    counts: Counts = Counts()
    attempt: int = 0


class JobCompleted(Message, frozen=True, kw_only=True):
    job_id: str
    counts: Counts = Counts()
    attempt: int = 0


class JobFailed(Message, frozen=True, kw_only=True):
    job_id: str
    error: str
    attempt: int
    counts: Counts = Counts()


class JobCancelled(Message, frozen=True, kw_only=True):
    job_id: str
    counts: Counts = Counts()
    attempt: int = 0


# --- batches: commands and events ---------------------------------------------
# A batch is a named stream of points; each start of it is a *run* whose id is the
# StartBatch message id. Admission, leases and fencing: contracts/runtime/batch_registry.py.


class StartBatch(Message, frozen=True, kw_only=True):
    """Start run `id` of batch `batch_id`: a producer of `rate` points a second.

    `rate` 0 starts a batch fed only by pushed points (`POST /batches/{id}/points`).
    `uniform_int` draws integers in [low, high] (the classic: 4/s, 0..100),
    `uniform` floats in [low, high), `normal` from N(mean, stddev).
    """

    batch_id: str
    rate: float = 4.0
    distribution: Literal["uniform_int", "uniform", "normal"] = "uniform_int"
    low: float = 0
    high: float = 100
    mean: float = 50
    stddev: float = 15


class StopBatch(Message, frozen=True, kw_only=True):
    batch_id: str
    run_id: str


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """One data point: its value `key` and its event time `ts`."""

    key: float
    ts: datetime


class RecordPoints(Message, frozen=True, kw_only=True):
    """Store these points of a batch (pushed over HTTP, or from a run's producer).

    `received_at` is when they reached Conveyor (the gateway, or the producer);
    lateness is judged against it, so it is the same on every redelivery.
    """

    batch_id: str
    points: list[Point]
    received_at: datetime
    run_id: str | None = None
    producer: str | None = None


class PointsRecorded(Message, frozen=True, kw_only=True):
    """Points stored raw for a batch: `points` are on time (they count in their
    minute); `late` more were stored but arrived after their minute's grace."""

    batch_id: str
    points: list[Point]
    received_at: datetime
    late: int = 0


class BatchStarted(Message, frozen=True, kw_only=True):
    batch_id: str
    run_id: str
    started_at: datetime
    rate: float = 0.0
    distribution: str = "uniform_int"


class BatchStopped(Message, frozen=True, kw_only=True):
    batch_id: str
    run_id: str
    stopped_at: datetime
    reason: str = "stopped"


class MinuteClosed(Message, frozen=True, kw_only=True):
    """A minute of a batch is past its grace period: its aggregate is final."""

    batch_id: str
    minute: datetime
    count: int
    sum: float
    min: float
    max: float

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0


MoverCommand = MoveCompanies | StartJob | CancelJob | RetryJob
ChunkCommand = ApplyChunk
JobEvent = (
    JobQueued | JobScheduled | JobStarted | JobProgressed | JobCompleted | JobFailed | JobCancelled
)
IngestCommand = StartBatch | StopBatch
PointsCommand = RecordPoints
PointsEvent = PointsRecorded
BatchEvent = BatchStarted | BatchStopped | MinuteClosed
