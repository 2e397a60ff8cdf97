"""Retention on both databases: old rows of each kind go in batches, young ones and kept kinds stay,
and on PostgreSQL only one process runs the job at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.config import Settings
from chumphae.db import one_process
from chumphae.models import AuditLog, FeedEvent, Gateway, IngestedMessage, PositionRecord
from chumphae.retention import lock_key, prune
from tests.factories import make_patient

NOW = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)


def _fill(engine: Engine, *, old: int, young: int) -> None:
    with Session(engine) as s:
        patient = make_patient(s)
        gateway = Gateway(slug="gw-r", name="r", site="s", token_hash="x" * 64, token_prefix="chg_x")
        s.add(gateway)
        s.flush()
        conn = s.connection()
        for n, age in [(old, timedelta(days=500)), (young, timedelta(days=1))]:
            t = NOW - age
            conn.execute(insert(PositionRecord.__table__), [  # type: ignore[attr-defined]
                {"patient_id": patient.id, "t": t, "lat": 16.5, "lon": 102.1, "uncertainty_m": 10.0,
                 "source": "ble", "in_coverage": True, "received_at": t} for _ in range(n)])
            conn.execute(insert(IngestedMessage.__table__), [  # type: ignore[attr-defined]
                {"msg_id": f"{age.days}-{k}", "gateway_id": gateway.id, "kind": "position", "received_at": t}
                for k in range(n)])
            conn.execute(insert(FeedEvent.__table__), [  # type: ignore[attr-defined]
                {"t": t, "patient_id": patient.id, "kind": "position", "payload": {}} for _ in range(n)])
            conn.execute(insert(AuditLog.__table__), [  # type: ignore[attr-defined]
                {"t": t, "action": "read", "entity": "patient", "patient_id": patient.id, "detail": {}}
                for _ in range(n)])
        s.commit()


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return int(s.connection().execute(select(func.count()).select_from(model.__table__)).scalar_one())  # type: ignore[attr-defined]


def test_prune_deletes_what_is_past_its_age_in_batches(engine: Engine) -> None:
    _fill(engine, old=23, young=7)
    settings = Settings(retention_positions_days=400, retention_messages_days=14, retention_feed_days=30,
                        retention_audit_days=0)
    deleted = prune(engine, settings, now=NOW, batch=10)  # 23 old rows: three batches (10, 10, 3)
    assert deleted == {"positions": 23, "messages": 23, "feed": 23}
    assert _count(engine, PositionRecord) == 7
    assert _count(engine, IngestedMessage) == 7
    assert _count(engine, FeedEvent) == 7
    assert _count(engine, AuditLog) == 30  # audit is kept for ever by default (0 days)
    assert prune(engine, settings, now=NOW, batch=10) == {"positions": 0, "messages": 0, "feed": 0}


def test_zero_days_keeps_a_kind_for_ever(engine: Engine) -> None:
    _fill(engine, old=5, young=5)
    settings = Settings(retention_positions_days=0, retention_messages_days=0, retention_feed_days=0,
                        retention_audit_days=1)
    assert prune(engine, settings, now=NOW) == {"audit": 5}
    assert _count(engine, PositionRecord) == 10


@pytest.mark.postgres
def test_one_process_runs_the_job_on_postgres(pg_schema_engine: Engine) -> None:
    from chumphae.db import upgrade

    upgrade(pg_schema_engine)
    _fill(pg_schema_engine, old=4, young=1)
    settings = Settings(retention_positions_days=400)
    with one_process(pg_schema_engine, lock_key(pg_schema_engine)) as first:  # another process holds the job
        assert first
        assert prune(pg_schema_engine, settings, now=NOW) == {}
        assert _count(pg_schema_engine, PositionRecord) == 5
    assert prune(pg_schema_engine, settings, now=NOW)["positions"] == 4
