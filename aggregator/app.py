"""The aggregator service: projections: jobs, per-minute aggregates, stats.

`create_app(settings)` is its one composition root (see contracts/runtime/service.py).
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from aggregator.job_counts import register_job_counts
from aggregator.jobs import register_jobs
from aggregator.points_wiring import register_points
from contracts.runtime.service import Service, build_service
from contracts.runtime.settings import Settings


def register(service: Service) -> None:
    """Subscribe the service's handlers."""
    register_jobs(service)  # jobs: the jobs table from jobs.events (aggregator/jobs.py)
    register_job_counts(service)  # the jobs-by-status gauge (aggregator/job_counts.py)
    register_points(service)  # batches: per-minute aggregates, runs, MinuteClosed


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    return build_service("aggregator", settings, register)
