"""`conveyor devkey`: a development API key, so `make run` works out of the box.

Writes `CONVEYOR_API_KEYS=dev:<secret>:read+write` to `.env` (honcho loads it for
the four services) unless `.env` names keys already, and prints the key. With
`--secrets-dir DIR` it also writes `DIR/api_keys` (the dev key and a read-only
`prometheus` key) and `DIR/prometheus_key`, the files `compose.yaml` mounts as
secrets. Nothing here is a default: every key is made on the machine that runs it.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from contracts.runtime.cli import Command
from contracts.runtime.settings import Settings
from gateway.frontdoor.keys import entries


def _existing(env: Path) -> str | None:
    if not env.exists():
        return None
    for line in env.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "CONVEYOR_API_KEYS" and (listed := entries(value)):
            return listed[0][1] if len(listed[0]) == 3 else None
    return None


def _secrets_dir(directory: Path, dev: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    keys, prometheus = directory / "api_keys", directory / "prometheus_key"
    if not keys.exists():
        scrape = secrets.token_urlsafe(24)
        keys.write_text(f"dev:{dev}:read+write\nprometheus:{scrape}:read\n")
        prometheus.write_text(scrape + "\n")
        keys.chmod(0o600)
        prometheus.chmod(0o644)
    print(f"compose secrets in {directory}/ (api_keys, prometheus_key)")


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
        _secrets_dir(Path(args.secrets_dir), dev)
    print(f"development API key (read+write), from {env}: {dev}")
    print(f"  curl -H 'Authorization: Bearer {dev}' http://localhost:8000/jobs")
    print(f"  export CONVEYOR_API_KEY={dev}   # for `./conveyor move` and `follow`")
    return 0


def devkey_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default=".env", help="the env file honcho loads")
    parser.add_argument("--secrets-dir", help="also write compose secrets here")


DEVKEY = Command("make a development API key (make run does)", devkey_arguments, cmd_devkey)
