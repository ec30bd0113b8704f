"""The ingest service's SQL: raw points, written in bulk with COPY.

Functions take the connection as a keyword argument, so the caller decides the
transaction (the delivery rules' one, which also records the message as applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from contracts.runtime.db import DbConnection

PointRow = tuple[str, datetime, float, bool, datetime, str, int]
POINT_COLUMNS = ("batch_id", "ts", "key", "late", "received_at", "message_id", "idx")


async def insert_points(*, conn: DbConnection, rows: Sequence[PointRow]) -> None:
    """COPY the rows into `points`; (message_id, idx) is their key."""
    await conn.copy_records_to_table("points", records=rows, columns=POINT_COLUMNS)
