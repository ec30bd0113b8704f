"""Who a service is at Redis: REDIS_URL's user, with the password in `redis_password_file`.

In compose each service is its own Redis ACL user (deploy/redis/users.acl; README
"Redis users and durability"): REDIS_URL names the user (`redis://mover@redis:6379/0`)
and CONVEYOR_REDIS_PASSWORD_FILE the secret file that holds its password. The file is
read when a client is built, at start-up: a missing or empty file stops the start
with a message (nothing is down, so nothing to retry). Locally neither is set and the
clients connect as Redis's default user, as before.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from faststream.security import SASLPlaintext

from contracts.runtime.secret_files import SecretFileError, read_secret
from contracts.runtime.settings import Settings


class RedisPasswordFileError(SecretFileError):
    """`redis_password_file` cannot be read, is empty, or REDIS_URL has a password too."""


def redis_password(settings: Settings) -> str | None:
    """The password in `redis_password_file` (trailing newlines dropped); None if unset."""
    if not settings.redis_password_file:
        return None
    path = settings.redis_password_file
    if urlsplit(settings.redis_url).password is not None:
        raise RedisPasswordFileError(
            f"CONVEYOR_REDIS_PASSWORD_FILE={path} and a password in REDIS_URL: give it once"
        )
    try:
        return read_secret("CONVEYOR_REDIS_PASSWORD_FILE", path)
    except SecretFileError as exc:
        raise RedisPasswordFileError(str(exc)) from None


def redis_auth(settings: Settings) -> dict[str, str]:
    """Keyword arguments for a redis-py client made from REDIS_URL (which names the user):
    `password` from the file, or none."""
    password = redis_password(settings)
    return {} if password is None else {"password": password}


def broker_security(settings: Settings) -> SASLPlaintext | None:
    """The same credentials for FastStream's RedisBroker (`security=`)."""
    password = redis_password(settings)
    if password is None:
        return None
    user = urlsplit(settings.redis_url).username
    return SASLPlaintext(username=unquote(user) if user else "default", password=password)
