"""The statements a test's PostgreSQL connection sends, grouped by round trip (psycopg, traced in-process).

A pipeline block is one round trip with all its statements; a statement outside a pipeline is one; a
`commit()` of the driver with a transaction open is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import pq


class RoundTrips:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trips: list[list[str]] = []
        self._open: list[str] | None = None
        execute, pipeline, commit = psycopg.Cursor.execute, psycopg.Connection.pipeline, psycopg.Connection.commit
        trips = self

        def traced_execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            text = query if isinstance(query, str) else str(query)
            if trips._open is not None:
                trips._open.append(text)
            else:
                trips.trips.append([text])
            return execute(cur, query, params, **kw)

        @contextmanager
        def traced_pipeline(conn: Any) -> Iterator[Any]:
            outer = trips._open is None
            if outer:
                trips._open = []
            try:
                with pipeline(conn) as p:
                    yield p
            finally:
                if outer:
                    assert trips._open is not None
                    trips.trips.append(trips._open)
                    trips._open = None

        def traced_commit(conn: Any) -> None:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                trips.trips.append(["commit()"])
            commit(conn)

        monkeypatch.setattr(psycopg.Cursor, "execute", traced_execute)
        monkeypatch.setattr(psycopg.Connection, "pipeline", traced_pipeline)
        monkeypatch.setattr(psycopg.Connection, "commit", traced_commit)
