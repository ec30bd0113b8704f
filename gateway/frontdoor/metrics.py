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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from litestar import get
from litestar.di import NamedDependency
from litestar.plugins.prometheus import (
    PrometheusConfig,
    PrometheusController,
    PrometheusMiddleware,
)
from litestar.response import Response
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

__all__ = ["MetricsController", "RegistryPrometheusConfig", "new_registry"]

Labels = dict[str, str | int | float]


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
