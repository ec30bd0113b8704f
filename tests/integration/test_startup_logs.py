"""What each service logs at start holds no secret (issue 8, item 10): API keys, passwords
in REDIS_URL / DATABASE_URL. Real processes, their whole output captured."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import msgspec
import pytest

from contracts.runtime.settings import Settings
from tests.support.processes import free_port, start_module
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

API_SECRET = "s3cret-in-the-api-keys"
REDIS_PW = "r3dis-pw-in-the-url"
PG_PW = "pg-pw-in-the-url"


def with_secrets(settings: Settings) -> Settings:
    """The test's settings with a password in each URL (the local Redis and PostgreSQL
    accept any) and API keys whose secrets are recognisable."""
    redis_url = settings.redis_url.replace("redis://", f"redis://default:{REDIS_PW}@", 1)
    scheme, rest = settings.database_url.split("://", 1)
    user_host = rest.split("@", 1)
    database_url = (
        f"{scheme}://{user_host[0]}:{PG_PW}@{user_host[1]}"
        if len(user_host) == 2
        else f"{scheme}://postgres:{PG_PW}@{rest}"
    )
    return msgspec.structs.replace(
        settings,
        redis_url=redis_url,
        database_url=database_url,
        api_keys=f"dev:{API_SECRET}:read+write;{settings.api_keys}",
    )


@pytest.mark.parametrize(
    ("module", "started"),
    [
        ("gateway", "metrics http://"),
        ("mover", "connected to PostgreSQL and Redis"),
        ("aggregator", "connected to PostgreSQL and Redis"),
        ("ingest", "connected to PostgreSQL and Redis"),
    ],
)
async def test_start_up_logs_hold_no_secret(
    module: str,
    started: str,
    settings: Settings,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    secret = with_secrets(settings)
    assert REDIS_PW in secret.redis_url
    assert PG_PW in secret.database_url
    log = tmp_path / f"{module}.log"
    port = str(free_port())
    proc = start_module(module, secret, log, **{f"{module.upper()}_PORT": port})
    procs.append(proc)

    async def up() -> bool:
        assert proc.poll() is None, log.read_text()
        return started in log.read_text()

    await wait_until(up, timeout=30, what=f"{module} started")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    text = log.read_text()
    leaked = [s for s in (API_SECRET, REDIS_PW, PG_PW, *secret_keys(settings)) if s in text]
    assert not leaked, text
    if module == "gateway":
        assert "dev:***:read+write" in text  # the settings line is there, keys hidden


def secret_keys(settings: Settings) -> list[str]:
    return [entry.split(":")[1] for entry in settings.api_keys.split(";") if entry.count(":") == 2]
