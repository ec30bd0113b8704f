"""Settings shared by every service, read from the environment once at start-up.

Each service's composition root (`create_app(settings)`) takes one of these;
tests build their own with other values (a random stream prefix, a fresh schema).
"""

from __future__ import annotations

import os
import socket

import msgspec


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def default_consumer_name() -> str:
    """One consumer name per process: host + pid (DESIGN: delivery rules)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # PostgreSQL schema the services use (tests use a fresh one each).
    db_schema: str = "public"
    # Prefix on every stream name (tests use a random one each).
    stream_prefix: str = ""
    consumer_name: str = msgspec.field(default_factory=default_consumer_name)
    # Delivery rules: how long an entry may sit unacknowledged with its consumer
    # before a live consumer claims it, and how many deliveries before it is dead-lettered.
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    # How long SIGTERM waits for in-flight handlers before leaving them pending.
    shutdown_grace_s: float = 10.0
    # Block time of one XREADGROUP call; also how fast a stop is noticed.
    poll_ms: int = 1_000
    db_pool_min: int = 1
    db_pool_max: int = 10
    # Gateway
    max_body_bytes: int = 1_048_576
    # Batches (issue 4): runs at once; how late (after its minute ends) a point still
    # counts in its minute; points per push request; how long a producer's lease lasts.
    max_batches: int = 5
    late_grace_s: float = 10.0
    max_points_per_request: int = 10_000
    batch_lease_ms: int = 3_000

    @classmethod
    def from_env(cls) -> Settings:
        defaults = cls()
        return cls(
            redis_url=_env("REDIS_URL", defaults.redis_url),
            database_url=_env("DATABASE_URL", defaults.database_url),
            db_schema=_env("CONVEYOR_DB_SCHEMA", defaults.db_schema),
            stream_prefix=_env("CONVEYOR_STREAM_PREFIX", defaults.stream_prefix),
            claim_idle_ms=int(_env("CONVEYOR_CLAIM_IDLE_MS", str(defaults.claim_idle_ms))),
            max_deliveries=int(_env("CONVEYOR_MAX_DELIVERIES", str(defaults.max_deliveries))),
            shutdown_grace_s=float(
                _env("CONVEYOR_SHUTDOWN_GRACE_S", str(defaults.shutdown_grace_s))
            ),
            poll_ms=int(_env("CONVEYOR_POLL_MS", str(defaults.poll_ms))),
            db_pool_min=int(_env("CONVEYOR_DB_POOL_MIN", str(defaults.db_pool_min))),
            db_pool_max=int(_env("CONVEYOR_DB_POOL_MAX", str(defaults.db_pool_max))),
            max_body_bytes=int(_env("CONVEYOR_MAX_BODY_BYTES", str(defaults.max_body_bytes))),
            max_batches=int(_env("CONVEYOR_MAX_BATCHES", str(defaults.max_batches))),
            late_grace_s=float(_env("CONVEYOR_LATE_GRACE_S", str(defaults.late_grace_s))),
            max_points_per_request=int(
                _env("CONVEYOR_MAX_POINTS_PER_REQUEST", str(defaults.max_points_per_request))
            ),
            batch_lease_ms=int(_env("CONVEYOR_BATCH_LEASE_MS", str(defaults.batch_lease_ms))),
        )

    def redacted(self) -> dict[str, object]:
        """For logs: the settings without credentials in URLs."""
        out = msgspec.structs.asdict(self)
        for key in ("redis_url", "database_url"):
            url = str(out[key])
            if "@" in url and "://" in url:
                scheme, rest = url.split("://", 1)
                creds, host = rest.rsplit("@", 1)
                user = creds.split(":", 1)[0]
                out[key] = f"{scheme}://{user}:***@{host}" if ":" in creds else url
        return out
