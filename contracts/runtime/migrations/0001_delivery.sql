-- What each consumer group has applied: written in the same transaction as the
-- effect, so a redelivered message finds its id here and changes nothing.
CREATE TABLE applied_messages (
    consumer_group text        NOT NULL,
    message_id     text        NOT NULL,
    stream         text        NOT NULL,
    entry_id       text        NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, message_id)
);

CREATE INDEX applied_messages_applied_at ON applied_messages (applied_at);
