"""Where the tests find Redis and PostgreSQL.

`REDIS_URL` / `DATABASE_URL` when given (CI and development machines: the local
services); otherwise, where a Docker engine answers, testcontainers; otherwise
the local defaults.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class ServiceUrls:
    redis_url: str
    database_url: str


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def service_urls() -> Iterator[ServiceUrls]:
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url and database_url:
        yield ServiceUrls(redis_url, database_url)
        return
    if not _docker_available():
        yield ServiceUrls(redis_url or LOCAL_REDIS, database_url or LOCAL_POSTGRES)
        return
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with contextlib.ExitStack() as stack:
        if not redis_url:
            redis = stack.enter_context(RedisContainer("redis:7.0"))
            port = redis.get_exposed_port(6379)
            redis_url = f"redis://{redis.get_container_host_ip()}:{port}/0"
        if not database_url:
            pg = stack.enter_context(PostgresContainer("postgres:15", driver=None))
            database_url = pg.get_connection_url()
        yield ServiceUrls(redis_url, database_url)
