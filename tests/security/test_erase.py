"""PDPA erasure: `chumphae patients erase ID` and the admin route remove who and where; counts stay."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from chumphae.cli import app as cli
from chumphae.models import (
    Alert,
    AlertEvent,
    CareAssignment,
    FeedEvent,
    Patient,
    PositionRecord,
    Visit,
    Wristband,
)
from chumphae.report.daily import daily_summary
from tests.conftest import World
from tests.factories import make_band
from tests.feed.conftest import raise_alert


def populate(world: World) -> int:
    pid = world.own_patient
    with Session(world.engine) as s:
        make_band(s, patient_id=pid)
        now = datetime.now(UTC)
        for i in range(3):
            s.add(PositionRecord(patient_id=pid, t=now, lat=16.5443 + i * 1e-4, lon=102.1001, uncertainty_m=15.0))
        s.add(Visit(patient_id=pid, user_id=world.users["volunteer"], t=now, adl_score=8, notes="ลูกสาวดูแลดี"))
        s.commit()
    alert = raise_alert(world.engine, pid, "wander")
    with Session(world.engine) as s:
        row = s.get(Alert, alert.alert_id)
        assert row is not None
        row.resolution_note = "พบที่ตลาด"
        s.add(row)
        s.commit()
    return pid


def assert_erased(world: World, pid: int) -> None:
    with Session(world.engine) as s:
        p = s.get(Patient, pid)
        assert p is not None and not p.active
        assert (p.name_en, p.cid, p.pid, p.hn, p.birth_date, p.home_lat, p.home_lon, p.notes, p.prename) == \
            (None,) * 9
        assert p.name_th == "-" and p.adl_score == 9 and p.nhso_group == 2  # anonymous groups stay
        assert s.exec(select(func.count()).select_from(PositionRecord)
                      .where(col(PositionRecord.patient_id) == pid)).one() == 0
        assert s.exec(select(func.count()).select_from(FeedEvent).where(col(FeedEvent.patient_id) == pid)).one() == 0
        assert s.exec(select(func.count()).select_from(CareAssignment)
                      .where(col(CareAssignment.patient_id) == pid)).one() == 0
        [alert] = s.exec(select(Alert).where(col(Alert.patient_id) == pid)).all()
        assert alert.type == "wander" and alert.opened_at is not None  # counted in reports, kept
        assert (alert.lat, alert.lon, alert.parcel_code, alert.description_th, alert.resolution_note) == (None,) * 5
        assert alert.status == "resolved" and alert.next_escalation_at is None
        assert all(e.details == {} for e in s.exec(select(AlertEvent).where(AlertEvent.alert_id == alert.id)))
        [visit] = s.exec(select(Visit).where(col(Visit.patient_id) == pid)).all()
        assert visit.notes is None and visit.adl_score == 8
        band = s.exec(select(Wristband)).one()
        assert band.patient_id is None and not band.active
        summary = daily_summary(s, day=date.today(), hospcode="10707", with_cid=True)
        assert all("สมศรี" not in str(v) for row in summary.rows for v in row.values())


def test_cli_erase(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from chumphae.config import reset_settings

    pid = populate(world)
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(world.engine.url))
    reset_settings()
    result = CliRunner().invoke(cli, ["patients", "erase", str(pid)])
    assert result.exit_code == 0, result.output
    assert "3 positions" in result.output and "สมศรี" not in result.output
    assert_erased(world, pid)
    again = CliRunner().invoke(cli, ["patients", "erase", str(pid)])  # idempotent
    assert again.exit_code == 0, again.output
    missing = CliRunner().invoke(cli, ["patients", "erase", "987654"])
    assert missing.exit_code != 0


def test_admin_route_erase(client: TestClient, world: World) -> None:
    pid = populate(world)
    r = client.post(f"/api/v1/patients/{pid}/erase", headers=world.auth("care_manager"))
    assert r.status_code == 403
    r = client.post(f"/api/v1/patients/{pid}/erase", headers=world.auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["positions"] == 3 and r.json()["alerts"] == 1 and r.json()["assignments"] == 2
    assert_erased(world, pid)
    got = client.get(f"/api/v1/patients/{pid}", headers=world.auth("admin")).json()
    assert got["name_th"] == "-" and got["cid"] is None and got["home_lat"] is None
