"""`conveyor_jobs_by_status{kind, status}`: how many jobs of each kind are in each
status now, counted in the `jobs` table this service projects.

A gauge read from the table, not counters of transitions: it is right after a
restart, and it shows what is queued or running, which counters of ends cannot. One
aggregator process at a time exports it (contracts/runtime/exporter.py), so a second
replica never doubles it. Every status of every known kind is exported, 0 included,
so a panel or an alert on, say, failed deletes has a series before the first one fails.
(`conveyor_jobs_total{kind, status}` counts the jobs that reached an end:
aggregator/jobs.py.)
"""

from __future__ import annotations

from typing import get_args, get_type_hints

import asyncpg
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from aggregator import jobs_sql as sql
from contracts.jobs import STATUSES
from contracts.messages import MoveCompanies
from contracts.runtime.exporter import SoleExport
from contracts.runtime.service import Service

INTERVAL_S = 10.0
LOCK = "exporter.jobs"
# A job's kind is the mode of its command (copy, move, remove, delete).
KINDS: tuple[str, ...] = get_args(get_type_hints(MoveCompanies)["mode"])


def job_families(rows: list[asyncpg.Record]) -> list[Metric]:
    counts = {(kind, status): 0 for kind in KINDS for status in STATUSES}
    for row in rows:
        counts[(row["kind"], row["status"])] = int(row["jobs"])
    family = GaugeMetricFamily(
        "conveyor_jobs_by_status", "Jobs in the jobs table, by kind and status.",
        labels=["kind", "status"],
    )  # fmt: skip
    for (kind, status), jobs in sorted(counts.items()):
        family.add_metric([kind, status], jobs)
    return [family]


def register_job_counts(service: Service) -> None:
    """Export the gauge from this service, while it holds `<prefix>exporter.jobs`."""

    async def read() -> list[Metric]:
        async with service.pool().acquire() as conn:
            return job_families(await sql.count_by_kind_and_status(conn=conn))

    settings = service.settings
    exporter = SoleExport(
        service.redis, f"{settings.stream_prefix}{LOCK}", read,
        owner=f"{service.name}:{settings.consumer_name}", interval_s=INTERVAL_S,
    )  # fmt: skip
    service.metrics.registry.register(exporter)
    service.background(exporter)
