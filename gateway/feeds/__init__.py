"""Feeds: the one SSE mechanism every live route uses (/events, /jobs/{id}/events,
/batches/{id}/events).

- `fanout.py`: one XREAD reader per stream per process, fanned out to subscriptions
  (backlog then live, no gaps, no duplicates; reset, overflow, heartbeats).
- `sse.py`: subscriptions as SSE bytes (`sse`), several merged as one (`merge`), the
  one cursor format `topic:entry-id,topic:entry-id` (`encode_cursor`,
  `decode_cursor`, `with_cursor`), and `prepend` for a feed's first `snapshot`.
- `routes.py`: GET /events (jobs and batches topics). It checks that a named job
  or batch exists through gateway/jobs/sql.py and gateway/batches/views.py.
"""
