"""Start services as real processes for the tests that kill or stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import msgspec

from contracts.runtime.settings import ENV_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `Settings.from_env()` give back `settings` (bar the
    consumer name, which each process makes for itself)."""
    env = dict(os.environ)
    for name, value in msgspec.structs.asdict(settings).items():
        if name != "consumer_name":
            env[ENV_NAMES.get(name, f"CONVEYOR_{name.upper()}")] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
