"""The ingest service: batches' lifecycle, their producers, raw point storage.

From a stream to its handler in one hop:

- `ingest.commands` (StartBatch, StopBatch) -> `lifecycle.py` (and its dead letters:
  a batch whose StartBatch cannot be applied fails visibly);
- `ingest.points` (RecordPoints, pushed or generated) -> `points.py`: COPY into the
  `points` table, then PointsRecorded on the `points` stream;
- the producers of running batches, one per batch across every ingest process ->
  `supervisor.py` (leases, run beside the consumers) and `producers.py`.

`app.py` is the composition root; `sql.py` its SQL; `metrics.py` its counters.
"""
