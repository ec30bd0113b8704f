"""Operations: the streams and their dead letters over HTTP, for operators.

- `routes.py`: GET /streams (the overview), GET /streams/{stream}/dead-letters,
  POST /streams/{stream}/dead-letters/replay. Reads Redis only, through
  contracts/delivery/overview.py and contracts/delivery/deadletter.py, the same code
  `conveyor streams` and `conveyor dlq` run.
- `views.py`: what they answer with.
"""
