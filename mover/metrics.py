"""What the mover reports about the rows it applies, on the service's own registry.

`conveyor_rows_total{kind, outcome}`: rows of applied chunks, by the job's kind (copy,
move, remove, delete) and what became of each: `added` to the target, `already_present`
there (skipped: a copy or move never duplicates), `removed` from the source. Counted
once the chunk's transaction has committed (mover/chunks.py), so a chunk that rolls
back and is applied again is counted once.
"""

from __future__ import annotations

from typing import get_args, get_type_hints

from prometheus_client import CollectorRegistry, Counter

from contracts.messages import MoveCompanies

# A job's kind is the mode of its command (copy, move, remove, delete).
KINDS: tuple[str, ...] = get_args(get_type_hints(MoveCompanies)["mode"])
OUTCOMES = ("added", "already_present", "removed")


class MoverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "conveyor_rows",
            "Rows of applied chunks, by job kind and outcome (added, already_present, removed).",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in KINDS:  # at 0 from the start, so increase() sees the first rows
            for outcome in OUTCOMES:
                self.rows.labels(kind, outcome)

    def count(self, kind: str, *, added: int, already_present: int, removed: int) -> None:
        for outcome, rows in (
            ("added", added), ("already_present", already_present), ("removed", removed),
        ):  # fmt: skip
            self.rows.labels(kind, outcome).inc(rows)
