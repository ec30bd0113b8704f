"""Settings of every service, read from the environment once at start-up.

Each service's composition root (`create_app(settings)`) takes one of these;
tests build their own with other values (a random stream prefix, a fresh schema).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

ENV_NAMES = {"redis_url": "REDIS_URL", "database_url": "DATABASE_URL"}
HIDDEN = "***"
# A string setting whose name has one of these words holds a secret (a `_file` one
# holds the path to a secret, which is shown).
_SECRET_WORDS = {"key", "keys", "secret", "secrets", "password", "passwd", "token", "tokens"}
# `password=...` and the like inside a URL's query or a keyword DSN.
_SECRET_PARAM = re.compile(r"(?i)\b([a-z_]*(?:pass|passwd|password|secret|token|key))=([^&\s]*)")


def redact_url(url: str) -> str:
    """`url` with no password: none in its user info, none in `password=` parameters;
    "***" if it cannot be parsed."""
    text = _SECRET_PARAM.sub(rf"\1={HIDDEN}", url)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return HIDDEN
    creds, at, host = parts.netloc.rpartition("@")
    if at and ":" in creds:
        user = creds.split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{host}"))
    if not at and "@" in text:  # user info cut short by an unescaped `/`, `?` or `#`
        return HIDDEN
    return text


def _redact_api_keys(entries: str) -> str:
    """`name:secret:scopes;...` as `name:***:scopes;...` (all hidden if malformed)."""
    shown = []
    for entry in (e.strip() for e in entries.split(";")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) < 3:
            return HIDDEN
        shown.append(f"{parts[0]}:{HIDDEN}:{parts[-1]}")
    return ";".join(shown)


def _is_secret(name: str) -> bool:
    return not name.endswith("_file") and bool(_SECRET_WORDS & set(name.split("_")))


def default_consumer_name() -> str:
    """One consumer name per process: host + pid (DESIGN: delivery rules)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting, grouped by who reads it; `CONVEYOR_<FIELD>` sets one."""

    # --- every service: where the stores are, and names -------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A file holding the password of REDIS_URL's user (`redis://gateway@redis:6379/0`; a
    # secret as a file, trailing newlines dropped). Empty: no AUTH, or the URL's own.
    redis_password_file: str = ""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_schema: str = "public"  # PostgreSQL schema (tests use a fresh one each)
    # A file holding the password of DATABASE_URL's user (a secret as a file; a trailing
    # newline is dropped). Empty: the URL's password, or none (local trust auth).
    database_password_file: str = ""
    stream_prefix: str = ""  # prefix on every stream name (tests use a random one each)
    consumer_name: str = msgspec.field(default_factory=default_consumer_name)
    db_pool_min: int = 1
    db_pool_max: int = 10

    # --- every consumer: the delivery rules (contracts/delivery) ----------------------
    # How long an entry may sit unacknowledged with its consumer before a live consumer
    # claims it; how many deliveries before it is dead-lettered; how long SIGTERM waits
    # for in-flight handlers; the block time of one XREADGROUP (how fast a stop is seen).
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    shutdown_grace_s: float = 10.0
    poll_ms: int = 1_000

    # --- gateway: the front door and its limits (gateway/frontdoor) -------------------
    # API keys as `name:secret:scopes` entries separated by `;` (scopes `read` or
    # `read+write`), and/or a file of such lines; requests per key per second and
    # burst; open SSE streams per key (per process); how long an SSE ticket lives;
    # request body size; company ids in one move; points in one push.
    api_keys: str = ""
    api_keys_file: str = ""
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    sse_connections_per_key: int = 50
    sse_ticket_ttl_s: int = 30
    # How long a console session (an API key exchanged for a cookie) lasts.
    console_session_ttl_s: int = 28_800
    max_body_bytes: int = 1_048_576
    max_ids_per_request: int = 10_000
    max_points_per_request: int = 10_000
    # The jobs outbox (gateway/jobs/outbox.py, table accepted_moves): a move not planned
    # this long after its 202 has what Redis lost of it (command, JobQueued) sent again.
    job_replan_after_s: float = 30.0

    # --- batches: gateway admission, ingest producers, aggregator minutes -------------
    # Runs at once; how late (after its minute ends) a point still counts in it; how
    # long a producer's lease lasts (a dead ingest's batches move on after it).
    max_batches: int = 5
    late_grace_s: float = 10.0
    batch_lease_ms: int = 3_000

    # --- mover --------------------------------------------------------------------------
    # Workers per process on the bulk and express lanes (each holds a connection while
    # it applies a chunk: on a database that sleeps per inserted row, the workers of all
    # movers are the inserts in flight); chunks in flight per job at priority 5 (scaled
    # down for lower priorities; more than all movers' workers, so that a worker that
    # frees up finds a chunk waiting); rows per page (fewer for a large job, see
    # mover/planning.py); how long one chunk should take (chunks are sized from the
    # measured cost of a row) and its most pages;
    # jobs up to `mover_express_rows` rows (or priority >= 4) use the express lane; at
    # most one progress event per job per interval.
    mover_concurrency: int = 24
    mover_express_concurrency: int = 4
    mover_window: int = 160
    mover_page_size: int = 20
    mover_chunk_target_s: float = 0.5
    mover_max_pages_per_chunk: int = 250
    mover_express_rows: int = 1_000
    mover_progress_interval_ms: int = 100
    # Commands (MoveCompanies, StartJob, CancelJob, RetryJob) handled at once per process.
    mover_command_concurrency: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every field from its variable: REDIS_URL, DATABASE_URL, else CONVEYOR_<FIELD>."""
        env = os.environ if environ is None else environ
        given: dict[str, object] = {}
        for f in msgspec.structs.fields(cls):
            name = ENV_NAMES.get(f.name, f"CONVEYOR_{f.name.upper()}")
            if name in env:
                given[f.name] = env[name]
        try:
            return msgspec.convert(given, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad setting in the environment: {exc}") from exc

    def redacted(self) -> dict[str, object]:
        """For logs: every setting, no secret. API keys show their names and scopes
        only, URLs lose their passwords, any other string setting whose name says
        key/secret/password/token is hidden whole."""
        out = msgspec.structs.asdict(self)
        for name, value in out.items():
            if not isinstance(value, str) or not value:
                continue
            if name == "api_keys":
                out[name] = _redact_api_keys(value)
            elif name.endswith("_url"):
                out[name] = redact_url(value)
            elif _is_secret(name):
                out[name] = HIDDEN
        return out

    def __repr__(self) -> str:  # a settings object logged or in a traceback shows no secret
        shown = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:  # rich's pretty printing
        return list(self.redacted().items())
