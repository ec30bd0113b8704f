"""Start services as real processes for the tests that kill or stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from contracts.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `Settings.from_env()` give back `settings`."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=settings.redis_url,
        DATABASE_URL=settings.database_url,
        CONVEYOR_DB_SCHEMA=settings.db_schema,
        CONVEYOR_STREAM_PREFIX=settings.stream_prefix,
        CONVEYOR_CLAIM_IDLE_MS=str(settings.claim_idle_ms),
        CONVEYOR_MAX_DELIVERIES=str(settings.max_deliveries),
        CONVEYOR_SHUTDOWN_GRACE_S=str(settings.shutdown_grace_s),
        CONVEYOR_POLL_MS=str(settings.poll_ms),
        CONVEYOR_DB_POOL_MAX=str(settings.db_pool_max),
        CONVEYOR_MAX_BATCHES=str(settings.max_batches),
        CONVEYOR_LATE_GRACE_S=str(settings.late_grace_s),
        CONVEYOR_MAX_POINTS_PER_REQUEST=str(settings.max_points_per_request),
        CONVEYOR_BATCH_LEASE_MS=str(settings.batch_lease_ms),
        PYTHONUNBUFFERED="1",
    )
    return env


def consumer_name(proc: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}-{proc.pid}"


def start_module(
    module: str, settings: Settings, log: Path, **extra_env: str
) -> subprocess.Popen[bytes]:
    env = settings_env(settings) | extra_env
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, wait_s: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=wait_s)
