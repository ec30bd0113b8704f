"""`conveyor devkey --secrets-dir`: every secret file compose.yaml mounts, random, kept."""

from __future__ import annotations

import hashlib
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from contracts.runtime import cli
from contracts.runtime.settings import Settings
from gateway.frontdoor.devkey import COMPOSE_SECRETS
from gateway.frontdoor.keys import Keys

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _devkey(tmp_path: Path) -> Path:
    secrets_dir = tmp_path / "deploy" / "secrets"
    argv = ["devkey", "--env", str(tmp_path / ".env"), "--secrets-dir", str(secrets_dir)]
    assert cli.main(argv) == 0
    return secrets_dir


def _compose_secret_files() -> set[str]:
    declared = yaml.safe_load((ROOT / "compose.yaml").read_text())["secrets"]
    return {Path(spec["file"]).name for spec in declared.values()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_makes_every_secret_file_compose_mounts(tmp_path: Path) -> None:
    secrets_dir = _devkey(tmp_path)
    made = {p.name for p in secrets_dir.iterdir()}
    assert made == _compose_secret_files() == set(COMPOSE_SECRETS)
    assert _mode(secrets_dir) == 0o700
    for path in secrets_dir.iterdir():
        assert _mode(path) == 0o644, path.name
        assert path.read_text().endswith("\n"), path.name
        assert len(path.read_text().strip()) >= 32, path.name
    passwords = [p.read_text() for p in secrets_dir.iterdir() if p.name.endswith("_password")]
    assert len(set(passwords)) == len(passwords), "two secrets have the same value"


def test_the_keys_file_holds_the_dev_key_and_the_prometheus_key(tmp_path: Path) -> None:
    secrets_dir = _devkey(tmp_path)
    dev = (tmp_path / ".env").read_text().split("dev:")[1].split(":")[0]
    keys_file = secrets_dir / "api_keys"
    keys = Keys.from_settings(Settings(api_keys_file=str(keys_file)))
    dev_key = keys.find(dev)
    assert dev_key is not None
    assert dev_key.name == "dev"
    assert dev_key.allows("write")
    scrape = keys.find((secrets_dir / "prometheus_key").read_text().strip())
    assert scrape is not None
    assert scrape.name == "prometheus"
    assert scrape.allows("read")
    assert not scrape.allows("write")


def test_a_second_run_overwrites_nothing_and_fills_in_what_is_missing(tmp_path: Path) -> None:
    secrets_dir = _devkey(tmp_path)
    before = {p.name: p.read_bytes() for p in secrets_dir.iterdir()}
    _devkey(tmp_path)
    assert {p.name: p.read_bytes() for p in secrets_dir.iterdir()} == before

    (secrets_dir / "prometheus_key").unlink()
    (secrets_dir / "redis_mover_password").unlink()
    _devkey(tmp_path)
    after = {p.name: p.read_bytes() for p in secrets_dir.iterdir()}
    assert set(after) == set(before)
    # The scrape key comes back as the one api_keys lists; a password is made anew.
    assert after["prometheus_key"] == before["prometheus_key"]
    assert after["redis_mover_password"] != before["redis_mover_password"]
    unchanged = set(before) - {"redis_mover_password"}
    assert {n: after[n] for n in unchanged} == {n: before[n] for n in unchanged}


def test_redis_users_file_renders_from_the_made_passwords(tmp_path: Path) -> None:
    """deploy/redis/render-acl.sh (what the redis container runs) finds every password."""
    secrets_dir = _devkey(tmp_path)
    out = tmp_path / "users.acl"
    template = ROOT / "deploy/redis/users.acl"
    subprocess.run(
        ["sh", str(ROOT / "deploy/redis/render-acl.sh"), str(template), str(secrets_dir), str(out)],
        check=True,
        capture_output=True,
    )
    rendered = out.read_text()
    for user in ("gateway", "ingest", "mover", "aggregator", "operator"):
        password = (secrets_dir / f"redis_{user}_password").read_text().rstrip("\n")
        assert password not in rendered
        digest = hashlib.sha256(password.encode()).hexdigest()
        assert f"user {user} on #{digest} " in rendered, user
