"""The mover service: planning and applying bulk copy/move/remove/delete jobs.

From a stream to its handler in one hop:

- `mover.commands` (MoveCompanies, StartJob, CancelJob, RetryJob) -> `commands.py`;
- `mover.chunks` and `mover.express` (ApplyChunk) -> `chunks.py`;
- their dead letters (the job fails with the reason) -> `dead_letters.py`;
- jobs with a start time -> `schedule.py`, run beside the consumers.

What they share (releasing chunks, publishing job events) is `jobs.py`; their
decisions, pure and unit-tested, are `planning.py`; every statement is in `sql.py`.
`app.py` is the composition root.
"""
