"""The API keys every test's settings carry (see tests/conftest.py)."""

from __future__ import annotations

WRITE_KEY = "test-writer-secret-0123456789"
READ_KEY = "test-reader-secret-0123456789"
API_KEYS = f"writer:{WRITE_KEY}:read+write;reader:{READ_KEY}:read"
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}
