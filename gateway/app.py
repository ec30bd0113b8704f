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
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler

from contracts.runtime.settings import Settings
from gateway import stats
from gateway.batches import routes as batches
from gateway.catalog import routes as catalog
from gateway.console import render as console_render
from gateway.console import routes as console
from gateway.feeds import routes as feeds
from gateway.frontdoor import auth, health, sessions
from gateway.frontdoor.auth import Door, FrontDoor
from gateway.frontdoor.keys import Keys
from gateway.frontdoor.metrics import (
    MetricsController,
    RegistryPrometheusConfig,
    count_unmatched,
    new_registry,
)
from gateway.frontdoor.problems import document_problems, exception_handlers
from gateway.jobs import moves, outbox, removals
from gateway.jobs import routes as jobs
from gateway.operations import routes as operations
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
            removals.create_removal,  # POST /removals (gateway/jobs/removals.py)
            removals.delete_collection,  # DELETE /collections/{id} (the same)
            jobs.router,  # /jobs... (gateway/jobs/routes.py)
            feeds.all_events,  # GET /events (gateway/feeds/routes.py)
            operations.router,  # /streams... (gateway/operations/routes.py)
            auth.create_ticket,  # POST /auth/tickets (gateway/frontdoor/auth.py)
            sessions.sign_in,  # POST /console/session (gateway/frontdoor/sessions.py)
            sessions.sign_out,  # POST /console/sign-out
            console.router(),  # /console/... pages (gateway/console/)
            *console_render.asset_routers(),  # /console/static/, /console/vendor/
            *extra_route_handlers,
        ],
        # resources first; the jobs outbox sweep (gateway/jobs/outbox.py) uses them
        lifespan=[lifespan(settings), running(lambda state: outbox.outbox(state, settings))],
        state=State({"settings": settings, "metrics_registry": registry, "api_keys": keys}),
        dependencies=dependencies(),
        middleware=[
            prometheus.middleware,
            DefineMiddleware(FrontDoor, door=Door(settings, keys, registry)),
        ],
        exception_handlers=exception_handlers(),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=_openapi(),
        template_config=console_render.template_config(),
    )
    document_problems(app)
    count_unmatched(app, prometheus)  # 404/405 for paths and methods no route takes
    return app


def _openapi() -> OpenAPIConfig:
    """The API's description, open to anyone (the front door lets /schema through);
    Swagger UI (from the npm registry, served by the gateway) at /schema/swagger, whose
    "Authorize" takes an API key as a bearer token."""
    vendor = "/console/vendor/swagger-ui"
    swagger = SwaggerRenderPlugin(
        js_url=f"{vendor}/swagger-ui-bundle.js", css_url=f"{vendor}/swagger-ui.css",
        standalone_preset_js_url=f"{vendor}/swagger-ui-standalone-preset.js", path="/swagger",
    )  # fmt: skip
    bearer = SecurityScheme(
        type="http", scheme="bearer", description="An API key: Authorization: Bearer <key>"
    )
    return OpenAPIConfig(
        title="Conveyor", version=_version(), path="/schema", render_plugins=[swagger],
        components=Components(security_schemes={"apiKey": bearer}),
        security=[{"apiKey": []}],
    )  # fmt: skip
