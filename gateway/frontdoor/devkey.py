"""`conveyor devkey`: a development API key, so `make run` works out of the box.

Writes `CONVEYOR_API_KEYS=dev:<secret>:read+write` to `.env` (honcho loads it for
the four services) unless `.env` names keys already, and prints the key. With
`--secrets-dir DIR` it also writes every secret file `compose.yaml` mounts
(`COMPOSE_SECRETS`): `api_keys` (the dev key and a read-only `prometheus` key),
`prometheus_key` (that key's secret, for Prometheus's scrape of the gateway), and a
random password for each Redis user, each PostgreSQL role and Grafana's admin.
Nothing here is a default: every secret is made on the machine that runs it, and a
file that exists is never overwritten (delete it to make a new one).

Modes: DIR is made 0700, which keeps the secrets from the host's other users; the
files in it are 0644, because compose mounts a file secret as it is on the host
(it ignores `mode`/`uid` without swarm) and the processes reading them run as their
image's own non-root users (postgres, grafana, nobody, conveyor), not as you.
"""

from __future__ import annotations

import argparse
import os
import secrets
import stat
from pathlib import Path

from contracts.runtime.cli import Command
from contracts.runtime.settings import Settings
from gateway.frontdoor.keys import entries

SECRETS_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o644
API_KEYS, PROMETHEUS_KEY = "api_keys", "prometheus_key"
# The users of deploy/redis/users.acl and the roles of deploy/postgres/init.
REDIS_USERS = ("gateway", "ingest", "mover", "aggregator", "operator")
POSTGRES_ROLES = ("migrate", "gateway", "ingest", "mover", "aggregator")
# Every secret file compose.yaml declares (tests/unit/test_compose.py holds them equal).
PASSWORDS = (
    "grafana_admin_password",
    "postgres_password",  # the superuser's, for the image's initdb only
    *(f"postgres_{role}_password" for role in POSTGRES_ROLES),
    *(f"redis_{user}_password" for user in REDIS_USERS),
)
COMPOSE_SECRETS = (API_KEYS, PROMETHEUS_KEY, *PASSWORDS)


def _existing(env: Path) -> str | None:
    if not env.exists():
        return None
    for line in env.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "CONVEYOR_API_KEYS" and (listed := entries(value)):
            return listed[0][1] if len(listed[0]) == 3 else None
    return None


def _create(path: Path, content: str) -> bool:
    """Write `content` to a new file at `path`; False (and nothing written) if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(content)
    path.chmod(SECRET_FILE_MODE)  # whatever the umask took away
    return True


def _scrape_key(directory: Path) -> str:
    """The prometheus key's secret: from an existing prometheus_key or api_keys, else new."""
    key_file, keys = directory / PROMETHEUS_KEY, directory / API_KEYS
    if key_file.exists():
        return key_file.read_text().strip()
    if keys.exists():
        for entry in entries(keys.read_text()):
            if entry[0] == "prometheus" and len(entry) == 3:
                return entry[1]
        raise SystemExit(f"conveyor devkey: {keys} has no prometheus entry; add one or delete it")
    return secrets.token_urlsafe(24)


def write_compose_secrets(directory: Path, dev: str) -> dict[str, bool]:
    """Every file of `COMPOSE_SECRETS` in `directory`: name -> True if made now."""
    if not directory.exists():
        directory.mkdir(parents=True, mode=SECRETS_DIR_MODE)
        directory.chmod(SECRETS_DIR_MODE)
    scrape = _scrape_key(directory)
    made = {
        API_KEYS: _create(
            directory / API_KEYS, f"dev:{dev}:read+write\nprometheus:{scrape}:read\n"
        ),
        PROMETHEUS_KEY: _create(directory / PROMETHEUS_KEY, scrape + "\n"),
    }
    for name in PASSWORDS:
        made[name] = _create(directory / name, secrets.token_urlsafe(32) + "\n")
    return made


def _report(directory: Path, made: dict[str, bool]) -> None:
    new = [name for name, now in made.items() if now]
    kept = [name for name, now in made.items() if not now]
    print(f"compose secrets in {directory}/: {len(new)} made, {len(kept)} kept as they were")
    if new:
        print(f"  made: {', '.join(new)}")
    if stat.S_IMODE(directory.stat().st_mode) & 0o077:
        print(f"  warning: {directory} is open to other users; chmod 700 it")


def _dev_key(env: Path) -> str:
    dev = _existing(env)
    if dev is None:
        dev = secrets.token_urlsafe(24)
        with env.open("a") as out:
            out.write(f"CONVEYOR_API_KEYS=dev:{dev}:read+write\n")
    return dev


async def cmd_devkey(args: argparse.Namespace, settings: Settings) -> int:
    env = Path(args.env)
    dev = _dev_key(env)
    if args.secrets_dir:
        directory = Path(args.secrets_dir)
        _report(directory, write_compose_secrets(directory, dev))
    print(f"development API key (read+write), from {env}: {dev}")
    print("  paste it into the console's sign-in page: http://localhost:8000/console")
    print(f"  curl -H 'Authorization: Bearer {dev}' http://localhost:8000/jobs")
    print(f"  export CONVEYOR_API_KEY={dev}   # for `./conveyor move` and `follow`")
    return 0


def devkey_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default=".env", help="the env file honcho loads")
    parser.add_argument(
        "--secrets-dir", help="also write every secret file compose.yaml mounts (never overwrites)"
    )


DEVKEY = Command("make a development API key (make run does)", devkey_arguments, cmd_devkey)
