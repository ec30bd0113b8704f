"""HTTP metrics with Litestar's Prometheus plugin, in a registry owned by each app.

The plugin as shipped (litestar 2.25) keeps its metric objects in a class-level
dict and registers them in prometheus_client's global `REGISTRY`, and its
`/metrics` controller always reads that global registry. So two apps in one
process (every test) would share, and race on, one set of counters. The
subclasses here change only where the metrics live: each `create_app` builds a
`CollectorRegistry`, the middleware creates its metrics there (same names,
labels and buckets as the plugin), and `/metrics` exposes that registry.
Multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) is not supported: one gateway
process per container.

Names produced (prefix "litestar"): `litestar_requests_total`,
`litestar_request_duration_seconds`, `litestar_requests_in_progress`,
`litestar_requests_error_total`, labelled method, path (the route template,
since `group_path=True`), status_code, app_name.

Litestar runs app middleware only for a request a route took, so the plugin never
sees a 404 for a path no route serves, or a 405 for a method a path does not take.
`count_unmatched(app, config)` wraps the app's ASGI handler to count those too, in the
same metrics, with the path label `unmatched` (never the raw path: a scanner trying
thousands of paths must not make thousands of series).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.plugins.prometheus import (
    PrometheusConfig,
    PrometheusController,
    PrometheusMiddleware,
)
from litestar.response import Response
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import (
    generate_latest as openmetrics_generate_latest,
)

__all__ = [
    "UNMATCHED",
    "MetricsController",
    "RegistryPrometheusConfig",
    "count_unmatched",
    "new_registry",
]

Labels = dict[str, str | int | float]
UNMATCHED = "unmatched"


def new_registry() -> CollectorRegistry:
    """A registry for one app, with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        # These read process-wide state and hold none, so one instance can serve many registries.
        registry.register(collector)
    return registry


class RegistryPrometheusMiddleware(PrometheusMiddleware):
    """The plugin's middleware with its metrics kept in the config's registry."""

    _config: RegistryPrometheusConfig

    def _metric(
        self, kind: type[MetricWrapperBase], suffix: str, doc: str, labels: Labels, **kw: Any
    ) -> MetricWrapperBase:
        name = f"{self._config.prefix}_{suffix}"
        metrics = self._config.metrics
        if name not in metrics:
            metrics[name] = kind(
                name=name,
                documentation=doc,
                labelnames=[*labels.keys()],
                registry=self._config.registry,
                **kw,
            )
        return metrics[name]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The plugin's measurements, made with less work per request: labels from the
        scope (no Request built), labelled children looked up once per (method, path,
        status) instead of four `labels()` calls. Extra labels, exemplars and excluded
        methods (none configured here) take the plugin's own way."""
        config = self._config
        if scope["type"] != ScopeType.HTTP or config.labels or config.exemplars:
            await super().__call__(scope, receive, send)
            return
        if config.excluded_http_methods and scope["method"] in config.excluded_http_methods:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path_template"] if config.group_path else scope["path"]
        started, ended, status = time.perf_counter(), 0.0, 200

        async def sending(message: Message) -> None:
            nonlocal ended, status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                ended = time.perf_counter()
            await send(message)

        in_progress = self._children(method, path, None)[0]
        in_progress.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            in_progress.dec()
            count, duration = self._children(method, path, status)
            if status >= 500:  # as the plugin does (so no error series until an error)
                labels = self._labels(method, path, status)
                self.requests_error_count(labels).labels(*labels.values()).inc()
            count.inc()
            duration.observe(ended - started if ended else 0)

    def _children(self, method: str, path: str, status: int | None) -> tuple[Any, ...]:
        """The labelled metrics for a request's (method, path) (`status` None: the
        in-progress gauge, labelled 200 as the plugin does) or (method, path, status)."""
        children = self._config.children
        found = children.get((method, path, status))
        if found is None:
            labels = self._labels(method, path, status or 200)
            values = [*labels.values()]
            if status is None:
                found = (self.requests_in_progress(labels).labels(*values),)
            else:
                count = self.request_count(labels).labels(*values)
                found = (count, self.request_time(labels).labels(*values))
            children[(method, path, status)] = found
        return found

    def _labels(self, method: str, path: str, status: int) -> Labels:
        return {"method": method, "path": path, "status_code": status,
                "app_name": self._config.app_name}  # fmt: skip

    def request_count(self, labels: Labels) -> Counter:
        return cast(Counter, self._metric(Counter, "requests_total", "Total requests", labels))

    def request_time(self, labels: Labels) -> Histogram:
        doc = "Request duration, in seconds"
        return cast(
            Histogram,
            self._metric(Histogram, "request_duration_seconds", doc, labels, **self._kwargs),
        )

    def requests_in_progress(self, labels: Labels) -> Gauge:
        doc = "Total requests currently in progress"
        return cast(Gauge, self._metric(Gauge, "requests_in_progress", doc, labels))

    def requests_error_count(self, labels: Labels) -> Counter:
        doc = "Total errors in requests"
        return cast(Counter, self._metric(Counter, "requests_error_total", doc, labels))


@dataclass
class RegistryPrometheusConfig(PrometheusConfig):
    """`PrometheusConfig` plus the registry (and metric objects) of one app."""

    registry: CollectorRegistry = field(default_factory=new_registry)
    metrics: dict[str, MetricWrapperBase] = field(default_factory=dict, repr=False)
    children: dict[tuple[str, str, int | None], tuple[Any, ...]] = field(
        default_factory=dict, repr=False
    )
    middleware_class: type[PrometheusMiddleware] = RegistryPrometheusMiddleware


class MetricsController(PrometheusController):
    """`GET /metrics` exposing the app's own registry (a `metrics_registry` dependency)."""

    include_in_schema = False

    @get()
    async def get(self, metrics_registry: NamedDependency[CollectorRegistry]) -> Response[bytes]:
        if self.openmetrics_format:
            body = openmetrics_generate_latest(metrics_registry)  # type: ignore[no-untyped-call]
            return Response(body, headers={"Content-Type": OPENMETRICS_CONTENT_TYPE})
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        return Response(generate_latest(metrics_registry), headers=headers)


class UnmatchedRouteMetrics(RegistryPrometheusMiddleware):
    """Around the whole app: counts and times the requests no route took (404, 405),
    with `path="unmatched"`; a request a route took is left to the route's middleware."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if "route_handler" not in scope:  # the router matched no route
                self._count(scope["method"], status, time.perf_counter() - started)

    def _count(self, method: str, status: int, seconds: float) -> None:
        labels: Labels = {
            "method": method, "path": UNMATCHED, "status_code": status,
            "app_name": self._config.app_name,
        }  # fmt: skip
        values = [*labels.values()]
        if status >= 500:
            self.requests_error_count(labels).labels(*values).inc()
        self.request_count(labels).labels(*values).inc()
        self.request_time(labels).labels(*values).observe(seconds)


def count_unmatched(app: Litestar, config: RegistryPrometheusConfig) -> None:
    """Count the requests no route of `app` takes (see the module's docstring)."""
    handler: ASGIApp = app.asgi_handler
    app.asgi_handler = UnmatchedRouteMetrics(app=handler, config=config)
