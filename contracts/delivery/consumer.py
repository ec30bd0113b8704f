"""The delivery rules, written once, on top of FastStream's Redis stream subscribers.

For each stream a service consumes, `Delivery.consume` registers two FastStream
subscribers on the same group and consumer name, both with manual acks:

- `fresh` reads new entries (`XREADGROUP >`);
- `claims` takes entries that sat unacknowledged longer than `claim_idle_ms`
  with any consumer, a dead one included (`XAUTOCLAIM`).

Both hand over each entry's `__data__` bytes untouched, decoded once with the
stream's msgspec Decoder (the parser and the lease: contracts/delivery/reading.py).

Every entry then goes through `_handle`:

1. a claimed entry's delivery count is read (`XPENDING`); past `max_deliveries`
   it is dead-lettered with the last error seen, and acknowledged;
2. the body is decoded with the stream's Decoder; an entry that cannot be
   decoded can never succeed, so it is dead-lettered at once;
3. the handler runs inside a PostgreSQL transaction that also records the
   message id for the group (`apply_once`); a duplicate changes nothing;
4. `after_commit` runs on both paths (first time and duplicate), so follow-up
   messages are published even if the process died between commit and publish
   (they carry ids derived from the incoming one, so they dedupe downstream);
5. only then is the entry acknowledged (`XACK`).

A subscription may add `on_dead_letter(message, reason)`: it is awaited after an
entry of that subscription is safely in the dead-letter stream (and acknowledged),
with the decoded message (None when the body could not be decoded) and the reason
recorded beside it. It is how a service says what a dead letter means for the
thing it belonged to (a job fails, a batch stops). It runs outside the delivery
transaction, at most once per dead letter (a crash between the dead-lettering and
the hook loses the call), so it should be idempotent and cheap; what it raises is
logged, never raised into the consumer.

A handler that raises leaves its entry pending: it is claimed again after
`claim_idle_ms` (that idle time is the retry backoff) until it succeeds or runs
out of deliveries. While a handler runs, a lease keeps its entry's idle time
low (`XCLAIM … JUSTID`, which does not count as a delivery), so a slow but live
handler is not claimed away. On SIGTERM FastStream stops reading, waits up to
`shutdown_grace_s` for in-flight handlers and cancels the rest; whatever was
not acknowledged stays pending and is claimed by another consumer.

Many messages per transaction (`consume(..., many=N)`, N > 1): `fresh` reads up
to N entries at once (`concurrency` such reads in flight, each its own
subscriber; 1 keeps the stream's order) and takes them through `_handle_many`:

1. entries that cannot be decoded are dead-lettered at once, outside the batch;
2. one transaction records the first entry of each message id in
   `applied_messages` with ONE multi-row insert (`apply_many`), and runs the
   effect for the ids recorded for the first time, in stream order:
   `handle_many(messages, conn)` when the subscription gives one (one COPY or one
   merge for the whole read), else `handler` for each. Ids already recorded, and
   a second entry of one id within the read, are duplicates and change nothing;
3. `after_commit` runs for every message of the read, first-time and duplicate
   (`after_commit_many(messages)` once, when given);
4. ONE `XACK` for all of them. (Entries read with `>` were never delivered
   before, so they have no recorded error to delete.)

While the batch runs, one lease keeps all its entries' idle time low. A SIGKILL
mid-batch rolls back the one transaction: every entry stays pending, none is
applied, and each is claimed later. If the batch fails (a poison message among
them, a lost connection, `after_commit`), the read falls back to one-by-one: each
entry goes through the steps above on its own, so the poison one alone records
its error, stays pending and is dead-lettered after `max_deliveries` as ever,
while its neighbours are applied (or found applied) and acknowledged. Claimed
entries are always handled one by one. Metrics count every entry as one-by-one
would (consumed, acked, and each one's outcome: applied, duplicate, ...).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import asyncpg
import msgspec
import redis.asyncio as aioredis
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage, RedisStreamMessage

from contracts.codec import as_text
from contracts.delivery import many as batched
from contracts.delivery.deadletter import dead_letter
from contracts.delivery.idempotency import apply_many, apply_once
from contracts.delivery.metrics import DeliveryMetrics
from contracts.delivery.reading import keep_body, lease, raw_entries, raw_entry
from contracts.messages import Message
from contracts.runtime.db import DbConnection
from contracts.runtime.settings import Settings
from contracts.streams import StreamSpec

log = logging.getLogger("conveyor.delivery")

M = TypeVar("M", bound=Message)
Handler = Callable[[M, DbConnection], Awaitable[None]]
AfterCommit = Callable[[M], Awaitable[None]]
AfterCommitMany = Callable[[list[M]], Awaitable[None]]
# on_dead_letter(message or None if undecodable, reason): see the module docstring.
OnDeadLetter = Callable[[Message | None, str], Awaitable[None]]
_ERROR_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Subscription(Generic[M]):
    spec: StreamSpec
    group: str
    handler: Handler[M]
    after_commit: AfterCommit[M] | None
    decoder: msgspec.json.Decoder[Any]
    on_dead_letter: OnDeadLetter | None = None
    handle_many: batched.ManyHandler | None = None
    after_commit_many: AfterCommitMany[M] | None = None

    @property
    def stream(self) -> str:
        return self.spec.name


class Delivery:
    """One per service process: its consumer name, its subscriptions, their rules."""

    def __init__(
        self,
        settings: Settings,
        broker: RedisBroker,
        redis: aioredis.Redis,
        metrics: DeliveryMetrics,
        pool: Callable[[], asyncpg.Pool],
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.redis = redis
        self.metrics = metrics
        self._pool = pool
        self.consumer = settings.consumer_name
        self.subscriptions: list[Subscription[Any]] = []

    def consume(
        self,
        spec: StreamSpec,
        group: str,
        handler: Handler[M],
        *,
        after_commit: AfterCommit[M] | None = None,
        on_dead_letter: OnDeadLetter | None = None,
        concurrency: int = 1,
        batch: int = 10,
        many: int = 1,
        handle_many: batched.ManyHandler | None = None,
        after_commit_many: AfterCommitMany[M] | None = None,
    ) -> None:
        """Handle every message of `spec` (under the settings' prefix) as `group`;
        `on_dead_letter` is told of each entry this subscription dead-letters.

        One by one (`many=1`, the default): `batch` entries per XREADGROUP, up to
        `concurrency` handled at once, each in its own transaction. Batched (`many=N`,
        N > 1): up to N entries per XREADGROUP applied in one transaction, `concurrency`
        reads in flight; `handle_many(messages, conn)` and `after_commit_many(messages)`,
        when given, replace `handler` and `after_commit` for a whole read (`handler` and
        `after_commit` still serve the one-by-one fallback and claimed entries). See the
        module docstring."""
        spec = spec.prefixed(self.settings.stream_prefix)
        sub: Subscription[M] = Subscription(
            spec,
            group,
            handler,
            after_commit,
            spec.decoder(),
            on_dead_letter,
            handle_many,
            after_commit_many,
        )
        self.subscriptions.append(sub)
        self.metrics.subscribe(spec.name, group)
        common: dict[str, Any] = {"group": group, "consumer": self.consumer}
        raw: dict[str, Any] = {"ack_policy": AckPolicy.MANUAL, "decoder": keep_body}
        claims = StreamSub(
            spec.name,
            min_idle_time=self.settings.claim_idle_ms,
            polling_interval=max(self.settings.poll_ms, self.settings.claim_idle_ms // 4),
            **common,
        )

        async def on_claimed(msg: RedisStreamMessage) -> None:
            await self._handle(sub, msg, claimed=True)

        self.broker.subscriber(stream=claims, parser=raw_entry, **raw)(on_claimed)
        if many > 1:

            async def on_read(msg: RedisBatchStreamMessage) -> None:
                await self._handle_many(sub, msg)

            for _ in range(concurrency):
                reads = StreamSub(
                    spec.name,
                    batch=True,
                    max_records=many,
                    polling_interval=self.settings.poll_ms,
                    **common,
                )
                self.broker.subscriber(stream=reads, parser=raw_entries, **raw)(on_read)
            return
        fresh = StreamSub(
            spec.name, max_records=batch, polling_interval=self.settings.poll_ms, **common
        )

        async def on_fresh(msg: RedisStreamMessage) -> None:
            await self._handle(sub, msg, claimed=False)

        workers: dict[str, Any] = {"max_workers": concurrency} if concurrency > 1 else {}
        self.broker.subscriber(stream=fresh, parser=raw_entry, **raw, **workers)(on_fresh)

    async def ensure_groups(self) -> None:
        """Create each group at the start of its stream, so it reads entries older than itself,
        and register this process as a consumer (visible in XINFO CONSUMERS while idle)."""
        for sub in self.subscriptions:
            with contextlib.suppress(aioredis.ResponseError):  # BUSYGROUP: exists already
                await self.redis.xgroup_create(sub.stream, sub.group, id="0", mkstream=True)
            await self.redis.xgroup_createconsumer(sub.stream, sub.group, self.consumer)

    async def _handle(self, sub: Subscription[Any], msg: RedisStreamMessage, claimed: bool) -> None:
        entry_id = msg.raw_message["message_ids"][0].decode()
        self.metrics.consumed.labels(sub.stream, sub.group).inc()
        started = time.perf_counter()
        try:
            outcome = await self._deliver(sub, msg.body, entry_id, claimed)
        finally:
            self.metrics.duration.labels(sub.stream, sub.group).observe(
                time.perf_counter() - started
            )
        if outcome is not None:
            self.metrics.messages.labels(sub.stream, sub.group, outcome).inc()

    async def _deliver(
        self, sub: Subscription[Any], body: bytes, entry_id: str, claimed: bool
    ) -> str | None:
        deliveries = 1
        if claimed:
            self.metrics.reclaimed.labels(sub.stream, sub.group).inc()
            found = await self._deliveries(sub, entry_id)
            if found is None:  # acknowledged meanwhile by the consumer that had it
                return None
            deliveries = found
            if deliveries > self.settings.max_deliveries:
                last = await self.redis.get(self._error_key(sub, entry_id))
                reason = f"gave up after {deliveries - 1} deliveries; last error: " + (
                    as_text(last) if last else "none recorded (the consumer died mid-handler)"
                )
                return await self._dead_letter(sub, entry_id, body, reason, deliveries)
        try:
            message = sub.decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return await self._dead_letter(sub, entry_id, body, f"undecodable: {exc}", deliveries)
        return await self._deliver_decoded(sub, message, entry_id, deliveries)

    async def _deliver_decoded(
        self, sub: Subscription[Any], message: Message, entry_id: str, deliveries: int
    ) -> str:
        try:
            async with self._lease(sub, [entry_id]):
                applied = await self._apply(sub, message, entry_id)
                if sub.after_commit is not None:
                    await sub.after_commit(message)
        except Exception as exc:
            await self._record_error(sub, entry_id, exc, deliveries)
            return "failed"
        await self.redis.xack(sub.stream, sub.group, entry_id)
        self.metrics.acked.labels(sub.stream, sub.group).inc()
        await self.redis.delete(self._error_key(sub, entry_id))
        return "applied" if applied else "duplicate"

    async def _handle_many(self, sub: Subscription[Any], msg: RedisBatchStreamMessage) -> None:
        """Entries read together (never delivered before): one transaction, one XACK."""
        entry_ids = [i.decode() for i in msg.raw_message["message_ids"]]
        labels = (sub.stream, sub.group)
        self.metrics.consumed.labels(*labels).inc(len(entry_ids))
        started = time.perf_counter()
        taken, undecodable = batched.split_read(entry_ids, cast(list[bytes], msg.body), sub.decoder)
        outcomes: list[str] = []
        for bad in undecodable:
            outcomes.append(await self._dead_letter(sub, bad.entry_id, bad.body, bad.reason, 1))
        if taken:
            outcomes += await self._apply_read(sub, taken)
        elapsed = time.perf_counter() - started
        for outcome in outcomes:
            self.metrics.duration.labels(*labels).observe(elapsed)
            self.metrics.messages.labels(*labels, outcome).inc()

    async def _apply_read(self, sub: Subscription[Any], taken: list[batched.Taken]) -> list[str]:
        """Outcomes of the decoded entries of a read: all at once, else one by one."""
        entry_ids = [t.entry_id for t in taken]
        try:
            async with self._lease(sub, entry_ids):
                first = await self._apply_many(sub, taken)
                await self._after_commit_all(sub, [t.message for t in taken])
        except Exception as exc:
            log.warning(
                "%s (%s): a read of %d failed as one transaction (%s: %s); one by one instead",
                sub.stream, sub.group, len(taken), type(exc).__name__, exc,
            )  # fmt: skip
            return [await self._deliver_decoded(sub, t.message, t.entry_id, 1) for t in taken]
        await self.redis.xack(sub.stream, sub.group, *entry_ids)
        self.metrics.acked.labels(sub.stream, sub.group).inc(len(entry_ids))
        return ["applied"] * first + ["duplicate"] * (len(taken) - first)

    async def _apply_many(self, sub: Subscription[Any], taken: list[batched.Taken]) -> int:
        """Apply the read in one transaction; how many entries were applied for the first time."""
        applied: list[Message] = []

        async def effect(conn: DbConnection, first: set[str]) -> None:
            applied.extend(batched.first_time(taken, first))
            await batched.run_effect(
                applied, conn, handler=sub.handler, handle_many=sub.handle_many
            )

        await apply_many(
            self._pool(),
            group=sub.group,
            stream=sub.stream,
            entries=batched.first_entries(taken),
            effect=effect,
        )
        return len(applied)

    async def _after_commit_all(self, sub: Subscription[Any], messages: list[Message]) -> None:
        if sub.after_commit_many is not None:
            await sub.after_commit_many(messages)
        elif sub.after_commit is not None:
            for message in messages:
                await sub.after_commit(message)

    async def _apply(self, sub: Subscription[Any], message: Message, entry_id: str) -> bool:
        async def effect(conn: DbConnection) -> None:
            await sub.handler(message, conn)

        return await apply_once(
            self._pool(),
            group=sub.group,
            message_id=message.id,
            stream=sub.stream,
            entry_id=entry_id,
            effect=effect,
        )

    async def _deliveries(self, sub: Subscription[Any], entry_id: str) -> int | None:
        rows = await self.redis.xpending_range(
            sub.stream, sub.group, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else None

    async def _dead_letter(
        self, sub: Subscription[Any], entry_id: str, body: bytes, reason: str, deliveries: int
    ) -> str:
        log.error("dead-lettering %s %s (%s): %s", sub.stream, entry_id, sub.group, reason)
        await dead_letter(
            self.redis,
            stream=sub.stream,
            group=sub.group,
            entry_id=entry_id,
            data=body,
            reason=reason,
            deliveries=deliveries,
            consumer=self.consumer,
        )
        await self.redis.delete(self._error_key(sub, entry_id))
        self.metrics.dead_letters.labels(sub.stream, sub.group).inc()
        self.metrics.acked.labels(sub.stream, sub.group).inc()  # dead_letter() acknowledged it
        await self._tell_dead_letter(sub, body, reason)
        return "dead_lettered"

    async def _tell_dead_letter(self, sub: Subscription[Any], body: bytes, reason: str) -> None:
        if sub.on_dead_letter is None:
            return
        try:
            message: Message | None = sub.decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            message = None
        try:
            await sub.on_dead_letter(message, reason)
        except Exception:
            log.exception("%s (%s): on_dead_letter failed", sub.stream, sub.group)

    async def _record_error(
        self, sub: Subscription[Any], entry_id: str, exc: Exception, deliveries: int
    ) -> None:
        text = f"{type(exc).__name__}: {exc}"
        log.warning(
            "%s %s failed on delivery %d (left pending for retry): %s",
            sub.stream,
            entry_id,
            deliveries,
            text,
            exc_info=not isinstance(exc, OSError | asyncpg.PostgresConnectionError),
        )
        with contextlib.suppress(Exception):  # Redis itself may be what failed
            await self.redis.set(self._error_key(sub, entry_id), text[:2000], ex=_ERROR_TTL_S)

    def _error_key(self, sub: Subscription[Any], entry_id: str) -> str:
        return f"{sub.stream}.errors:{sub.group}:{entry_id}"

    def _lease(
        self, sub: Subscription[Any], entry_ids: list[str]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Keep the entries' idle time below `claim_idle_ms` while their handler runs."""
        return lease(
            self.redis,
            stream=sub.stream,
            group=sub.group,
            consumer=self.consumer,
            entry_ids=entry_ids,
            claim_idle_ms=self.settings.claim_idle_ms,
        )
