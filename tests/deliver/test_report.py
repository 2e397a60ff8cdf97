"""The daily summary counts each patient's deliveries of the day: notices, delivered, failed or given up."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.models import OutboxNotice
from chumphae.report.daily import daily_summary
from tests.conftest import World
from tests.deliver.conftest import T0, raise_sos


def test_daily_summary_counts_deliveries(engine: Engine, district: World) -> None:
    raise_sos(engine, district.own_patient)  # caregiver: LINE + SMS (+ feed, not counted)
    raise_sos(engine, district.own_patient, type_="fall")
    with Session(engine) as s:
        rows = [r for r in s.exec(select(OutboxNotice)).all() if r.channel != "feed"]
        assert len(rows) == 4
        rows[0].status, rows[1].status, rows[2].status = "sent", "gave_up", "failed"  # the 4th still queued
        s.add_all(rows)
        s.commit()
        summary = daily_summary(s, day=date(2025, 6, 1), hospcode="10707", now=T0)
    by_patient = {r["patient_id"]: r for r in summary.rows}
    own, other = by_patient[district.own_patient], by_patient[district.other_patient]
    assert (own["notices"], own["notices_delivered"], own["notices_failed"]) == (4, 1, 2)
    assert (other["notices"], other["notices_delivered"], other["notices_failed"]) == (0, 0, 0)
