"""The ingest service: batch lifecycle, point sources, raw point storage.

`create_app(settings)` is its one composition root (see contracts/service.py).
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from contracts.service import Service, build_service
from contracts.settings import Settings


def register(service: Service) -> None:
    """Subscribe the service's handlers (none yet: see the issues that add them)."""


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    return build_service("ingest", settings, register)
