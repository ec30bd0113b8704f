"""API keys: who may call the gateway, and with which scopes.

Keys come from `CONVEYOR_API_KEYS` (`name:secret:scopes` entries separated by `;`)
and/or the file named by `CONVEYOR_API_KEYS_FILE` (one entry a line, `#` comments),
scopes being `read` or `read+write`. There is no built-in key: a gateway with none
refuses to start; `make run` writes a development key to `.env` and prints it.
Secrets are looked up by their SHA-256, so a lookup does not time a comparison.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from contracts.runtime.settings import Settings

READ, WRITE = "read", "write"
SCOPES = {READ, WRITE}


class ApiKey(msgspec.Struct, frozen=True):
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class BadKeys(ValueError):
    pass


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def entries(text: str) -> list[list[str]]:
    """The `name:secret:scopes` entries of a key list, each split at `:` (unchecked);
    entries are separated by `;` or a new line, and `#` starts a comment entry."""
    found = [e.strip() for line in text.splitlines() for e in line.split(";")]
    return [e.split(":") for e in found if e and not e.startswith("#")]


def parse(text: str, *, origin: str) -> dict[str, ApiKey]:
    keys: dict[str, ApiKey] = {}
    for n, parts in enumerate(entries(text)):
        if len(parts) != 3 or not all(parts):
            raise BadKeys(f"{origin}: entry {n + 1} is not name:secret:scopes")
        name, secret, scopes = parts
        chosen = frozenset(scopes.split("+"))
        if not chosen <= SCOPES or READ not in chosen:
            raise BadKeys(f"{origin}: key {name!r} has scopes {scopes!r}; use read or read+write")
        if len(secret) < 16:
            raise BadKeys(f"{origin}: key {name!r} is shorter than 16 characters")
        keys[_digest(secret)] = ApiKey(name, chosen)
    return keys


class Keys:
    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self._keys = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        keys = parse(settings.api_keys, origin="CONVEYOR_API_KEYS")
        if settings.api_keys_file:
            path = Path(settings.api_keys_file)
            keys |= parse(path.read_text(), origin=str(path))
        if not keys:
            raise BadKeys(
                "no API keys: set CONVEYOR_API_KEYS (name:secret:read+write) or "
                "CONVEYOR_API_KEYS_FILE; `make run` makes a development key"
            )
        return cls(keys)

    def find(self, secret: str) -> ApiKey | None:
        return self._keys.get(_digest(secret))
