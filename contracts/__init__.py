"""What the services agree on, and nothing else; it imports no service.

- `messages`: the commands and events, frozen tagged msgspec Structs;
- `streams`: stream and group names, who reads each stream, retention;
- `codec`: how a message sits in a stream entry (the wire format) and is appended;
- `minutes`: the time rules of batches (minute windows, lateness);
- `jobs`: a job's statuses, their order, which ones are final;
- `delivery/`: the delivery rules every consumer follows (at-least-once, applied
  once per group, dead letters, trimming).

The runtime the services share (settings, the pool, the composition root, logs,
migrations, the `conveyor` command line) is in `contracts.runtime`.
"""
