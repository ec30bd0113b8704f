"""Debian's Prometheus binaries for the tests (`make prometheus` installs them)."""

from __future__ import annotations

import shutil

import pytest


def binary(name: str) -> str:
    """The path of `prometheus` or `promtool`; the test fails (not skips) without it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make prometheus` (Debian's prometheus package)")
    return path
