"""One log format for every service, set up once by each `__main__`.

    2026-01-31T12:00:00.123+00:00 INFO mover conveyor.service: mover: connected ...

time (ISO 8601, UTC), level, service, logger, message; a traceback follows on the
next lines when there is one. With `CONVEYOR_LOG_FORMAT=json` each record is one
JSON object instead (`time`, `level`, `service`, `logger`, `message`, `exc_info`).
`LOG_LEVEL` (default INFO) sets the level.

Every logger goes through the one handler on the root logger: uvicorn's (served
with `log_config=None`, so it neither installs its coloured formatter nor its own
handlers), FastStream's (its app logger ships with a coloured handler of its own,
removed here; the brokers are built with a plain logger, see contracts/runtime/service.py)
and Litestar's (its default config, installed by `create_app`, replaced here).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime

import msgspec

TEXT_FORMAT = "%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s"
# Loggers that other libraries give handlers of their own; here they all propagate to root.
ROUTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "litestar")


class _Service(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": _iso(record),
            "level": record.levelname,
            "service": getattr(record, "service", ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def setup(service: str, *, level: str | None = None, json: bool | None = None) -> None:
    """Route every logger through one stderr handler in the one format."""
    level = (level or os.environ.get("LOG_LEVEL", "INFO")).upper()
    if json is None:
        json = os.environ.get("CONVEYOR_LOG_FORMAT", "text").lower() == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(_Service(service))
    handler.setLevel(level)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ROUTED:
        routed = logging.getLogger(name)
        for old in routed.handlers[:]:
            routed.removeHandler(old)
        routed.propagate = True
    logging.captureWarnings(True)


def _iso(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
