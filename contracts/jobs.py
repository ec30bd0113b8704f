"""A job's statuses, said once: their names, their order, which ones are final.

    queued     accepted by the gateway, not planned yet
    scheduled  planned, waiting for its `not_before`
    running    being applied
    completed, failed, cancelled   final (until a retry starts a new attempt)

Within one attempt a job's status only moves forward in this order (the final
three rank alike: the first one reached stays); a retry starts a new attempt,
and with it the order again from `running` (or `scheduled`).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

JobStatus = Literal["queued", "scheduled", "running", "completed", "failed", "cancelled"]
STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
FINISHED: Final[tuple[JobStatus, ...]] = ("completed", "failed", "cancelled")
ACTIVE: Final[tuple[JobStatus, ...]] = ("queued", "scheduled", "running")
RETRYABLE: Final[tuple[JobStatus, ...]] = ("failed", "cancelled")
# The events (their tags on jobs.events) that end an attempt, and the status each leaves.
FINAL_EVENTS: Final[dict[str, JobStatus]] = {
    "JobCompleted": "completed",
    "JobFailed": "failed",
    "JobCancelled": "cancelled",
}


def rank(status: str) -> int:
    """Where `status` stands in a job's attempt: 0 queued .. 3 final."""
    return min(STATUSES.index(status), len(ACTIVE))
