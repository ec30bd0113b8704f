"""The gateway's composition root: `create_app(settings)` builds everything it uses.

Nothing connects at import time or in `create_app`; the lifespan in
`gateway.resources` creates the Redis client and the (lazy) asyncpg pool and
closes them at shutdown. Each call builds its own metrics registry, so tests may
build as many apps as they like in one process.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from contracts.runtime.settings import Settings
from gateway import stats
from gateway.batches import routes as batches
from gateway.catalog import routes as catalog
from gateway.feeds import routes as feeds
from gateway.frontdoor import auth, health
from gateway.frontdoor.auth import Door, FrontDoor
from gateway.frontdoor.keys import Keys
from gateway.frontdoor.metrics import MetricsController, RegistryPrometheusConfig, new_registry
from gateway.frontdoor.problems import document_problems, exception_handlers
from gateway.jobs import moves, outbox
from gateway.jobs import routes as jobs
from gateway.resources import dependencies, lifespan, running

__all__ = ["create_app"]


def _version() -> str:
    try:
        return importlib.metadata.version("conveyor")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def create_app(
    settings: Settings, *, extra_route_handlers: Sequence[ControllerRouterHandler] = ()
) -> Litestar:
    """The gateway app for these settings.

    `extra_route_handlers` are mounted beside the gateway's own routes and get the
    same dependencies, limits, metrics and problem handling (tests use it to add
    probe routes; production passes none).
    """
    keys = Keys.from_settings(settings)  # no keys, no gateway (gateway/frontdoor/keys.py)
    registry = new_registry()
    prometheus = RegistryPrometheusConfig(
        app_name="litestar", prefix="litestar", group_path=True, registry=registry
    )
    app = Litestar(
        route_handlers=[
            health.healthz,
            health.readyz,
            MetricsController,
            batches.router,  # /batches... (gateway/batches/)
            stats.get_stats,  # GET /stats (gateway/stats.py)
            catalog.router,  # /collections..., /companies (gateway/catalog/routes.py)
            moves.create_move,  # POST /moves (gateway/jobs/moves.py)
            jobs.router,  # /jobs... (gateway/jobs/routes.py)
            feeds.all_events,  # GET /events (gateway/feeds/routes.py)
            auth.create_ticket,  # POST /auth/tickets (gateway/frontdoor/auth.py)
            *extra_route_handlers,
        ],
        # resources first; the jobs outbox sweep (gateway/jobs/outbox.py) uses them
        lifespan=[lifespan(settings), running(lambda state: outbox.outbox(state, settings))],
        state=State({"settings": settings, "metrics_registry": registry}),
        dependencies=dependencies(),
        middleware=[
            prometheus.middleware,
            DefineMiddleware(FrontDoor, door=Door(settings, keys, registry)),
        ],
        exception_handlers=exception_handlers(),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Conveyor", version=_version(), path="/schema"),
    )
    document_problems(app)
    return app
