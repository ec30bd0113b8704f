-- Batches (issue 4): runs, raw points, per-minute aggregates.

-- One row per run of a batch (a run = one admitted start), projected by the
-- aggregator from BatchStarted / BatchStopped. The two events may be applied in
-- either order: each fills its own columns.
CREATE TABLE batch_runs (
    run_id       text PRIMARY KEY,
    batch_id     text NOT NULL,
    started_at   timestamptz,
    stopped_at   timestamptz,
    rate         double precision,
    distribution text,
    stop_reason  text
);
CREATE INDEX batch_runs_batch ON batch_runs (batch_id, started_at DESC);

-- Raw points, written in bulk (COPY) by ingest in the transaction that records the
-- RecordPoints message as applied; (message_id, idx) names a point. `late`: it
-- arrived after its minute's grace period and is not in the aggregates.
CREATE TABLE points (
    batch_id    text             NOT NULL,
    ts          timestamptz      NOT NULL,
    key         double precision NOT NULL,
    late        boolean          NOT NULL,
    received_at timestamptz      NOT NULL,
    message_id  text             NOT NULL,
    idx         integer          NOT NULL,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX points_late ON points (batch_id) WHERE late;

-- Tumbling one-minute windows per batch (UTC minutes of the points' event time),
-- updated by the aggregator in the transaction that records PointsRecorded as
-- applied. `sum` is numeric, so it is exact whatever the order of additions and
-- equals a recomputation from raw points. `closed`: MinuteClosed was published.
CREATE TABLE minute_aggregates (
    batch_id   text             NOT NULL,
    minute     timestamptz      NOT NULL,
    count      bigint           NOT NULL,
    sum        numeric          NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    closed     boolean          NOT NULL DEFAULT false,
    updated_at timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, minute)
);
CREATE INDEX minute_aggregates_open ON minute_aggregates (minute) WHERE NOT closed;
