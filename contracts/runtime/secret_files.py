"""Secrets as files: a setting names a file (`CONVEYOR_<NAME>_FILE`), its content is the
secret. One rule for every such file, read where a client is built: trailing newlines
are dropped; a file that cannot be read or is empty stops the start with a message that
names the variable and the path (nothing is down, so there is nothing to retry).
"""

from __future__ import annotations

from pathlib import Path


class SecretFileError(ValueError):
    """A secret file cannot be read, or is empty."""


def read_secret(variable: str, name: str) -> str:
    """The secret in file `name`, which the setting `variable` names."""
    path = Path(name)
    try:
        value = path.read_text().rstrip("\n")
    except OSError as exc:
        raise SecretFileError(f"{variable}={path}: cannot read it ({exc.strerror})") from None
    if not value:
        raise SecretFileError(f"{variable}={path} is empty")
    return value
