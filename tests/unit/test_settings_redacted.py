"""`Settings.redacted()` (what services log at start) and `repr(settings)` hide every secret."""

from __future__ import annotations

import logging

import pytest
from rich.pretty import pretty_repr

from contracts.runtime.settings import Settings, redact_url

SECRETS = ("s3cret-dev", "t0ken:ops", "r3dispw", "pgpw", "qpw", "sslpw")


def full_of_secrets() -> Settings:
    return Settings(
        api_keys="dev:s3cret-dev:read+write; ops:t0ken:ops:read",
        api_keys_file="/run/secrets/conveyor-keys",
        redis_url="rediss://default:r3dispw@cache.example:6380/0",
        database_url="postgresql://app:pgpw@db1:5432,db2:5432/conveyor?password=qpw&sslpassword=sslpw",
    )


def test_redacted_settings_hold_no_secret() -> None:
    shown = str(full_of_secrets().redacted())
    assert not [s for s in SECRETS if s in shown], shown
    assert not [s for s in ("s3cret", "t0ken") if s in shown], shown


def test_redacted_settings_still_say_what_an_operator_needs() -> None:
    shown = full_of_secrets().redacted()
    assert shown["api_keys"] == "dev:***:read+write;ops:***:read"
    assert shown["api_keys_file"] == "/run/secrets/conveyor-keys"  # a path, not a secret
    assert shown["redis_url"] == "rediss://default:***@cache.example:6380/0"
    assert shown["database_url"] == (
        "postgresql://app:***@db1:5432,db2:5432/conveyor?password=***&sslpassword=***"
    )
    assert shown["max_batches"] == 5


def test_repr_and_str_of_settings_hold_no_secret() -> None:
    settings = full_of_secrets()
    pretty = pretty_repr(settings)
    logged = logging.LogRecord("t", logging.INFO, "f", 1, "settings: %s", (settings,), None)
    for text in (repr(settings), str(settings), f"{settings}", logged.getMessage(), pretty):
        assert not [s for s in SECRETS if s in text], text
    assert "cache.example" in repr(settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h/0", "redis://:***@h/0"),
        ("redis://user@h/0", "redis://user@h/0"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql:///db?host=/run/pg&user=u&password=pw", "postgresql:///db?host=/run/pg&user=u&password=***"),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("redis://u:pw@[::1", "***"),  # cannot be parsed: nothing of it is shown
        ("redis://u:p#w@h/0", "***"),  # an unescaped `#` in the password
    ],
)  # fmt: skip
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_malformed_api_keys_setting_is_hidden_whole() -> None:
    assert Settings(api_keys="just-a-secret").redacted()["api_keys"] == "***"
    assert Settings(api_keys="").redacted()["api_keys"] == ""
