"""The daily summary checked cell by cell against a day the test builds, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlmodel import Session

from chumphae.models import Alert, PositionRecord, User, Visit
from chumphae.report.daily import ALERT_TYPES, M_PER_DEG_LAT, M_PER_DEG_LON, daily_summary
from chumphae.timeutil import BANGKOK
from tests.factories import make_patient

DAY = date(2025, 1, 15)
LAT0, LON0 = 16.5442, 102.0997


def bkk(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=BANGKOK)


def build_day(s: Session) -> tuple[int, int]:
    """Patient A: a morning of positions, four alerts, two visits; B: nothing; C: inactive, nothing."""
    a = make_patient(s, cid="1409900000011", pid="000123", hn="HN-77", adl_score=9, nhso_group=2)
    b = make_patient(s, cid=None, pid="000124", hn=None, adl_score=3, nhso_group=None, hospcode=None)
    make_patient(s, pid="000125", active=False)
    user = User(name="อสม.", role="volunteer", token_hash="x" * 64, token_prefix="x")
    s.add(user)
    s.flush()
    north = 100 / M_PER_DEG_LAT
    east = 300 / M_PER_DEG_LON

    def pos(t: datetime, dlat: float, dlon: float, zone: str, worn: bool | None, batt: float) -> None:
        s.add(PositionRecord(patient_id=a.id, t=t, lat=LAT0 + dlat, lon=LON0 + dlon, uncertainty_m=10.0,
                             zone_status=zone, worn=worn, battery_pct=batt))

    pos(bkk(23, 59, 0, DAY - timedelta(days=1)), 0, 0, "inside", True, 90)  # the day before: not counted
    pos(bkk(8, 0), 0, 0, "inside", True, 80)
    pos(bkk(8, 1), north, 0, "inside", True, 79)  # 100 m in 60 s: walked
    pos(bkk(8, 2), north * 1.05, 0, "outside", True, 78)  # 5 m: within the 10 m noise, not walked
    pos(bkk(8, 4), north * 1.05, east, "outside", None, 77)  # 300 m in 120 s: walked
    pos(bkk(8, 5), north * 1.05 + 10 * north, east, "inside", None, 77)  # 1 km in 60 s: a jump, not walked
    pos(bkk(8, 20), 0, 0, "inside", False, 74)  # 15 min silence before: a data gap
    pos(bkk(8, 21), 0, 0, "inside", True, 76)
    pos(bkk(0, 0, 0, DAY + timedelta(days=1)), 0, 0, "inside", True, 10)  # the next day: not counted

    def alert(kind: str, opened: datetime, ack_after_s: float | None, outcome: str | None) -> None:
        s.add(Alert(patient_id=a.id, type=kind, severity="high", opened_at=opened, last_triggered_at=opened,
                    status="resolved" if outcome else "open", outcome=outcome,
                    acknowledged_at=opened + timedelta(seconds=ack_after_s) if ack_after_s is not None else None,
                    resolved_at=opened + timedelta(hours=1) if outcome else None))

    alert("wander", bkk(8, 3), 120, "patient_safe")
    alert("fall", bkk(9, 0), 30, "false_alarm")
    alert("fall", bkk(10, 0), 600, "taken_to_hospital")
    alert("sos", bkk(11, 0), None, None)
    alert("battery_low", bkk(23, 0, 0, DAY - timedelta(days=1)), 60, "device_fixed")  # the day before
    s.add(Visit(patient_id=a.id, user_id=user.id, t=bkk(9, 30), adl_score=8))
    s.add(Visit(patient_id=a.id, user_id=user.id, t=bkk(14, 0), adl_score=None, notes="ok"))
    s.add(Visit(patient_id=a.id, user_id=user.id, t=bkk(10, 0, 0, DAY - timedelta(days=1)), adl_score=3))
    s.commit()
    return a.id, b.id  # type: ignore[return-value]


def expected(a: int, b: int) -> list[dict[str, object]]:
    zero_alerts = {f"alerts_{t}": 0 for t in ALERT_TYPES}
    return [
        {"date": "2025-01-15", "hospcode": "10707", "pid": "000123", "cid": "1409900000011", "hn": "HN-77",
         "patient_id": a, "adl_score": 9, "adl_group": "homebound", "nhso_group": 2,
         "positions": 7,
         "heard_h": round(360 / 3600, 2),  # 60 + 60 + 120 + 60 + 60 s (the 15 min silence is not heard)
         "worn_h": round(240 / 3600, 2),  # intervals starting at a worn position: 08:00, 08:01, 08:02
         "worn_unknown_h": round(60 / 3600, 2),  # 08:04 → 08:05
         "outside_zone_min": 3.0,  # 08:02 → 08:04 → 08:05
         "distance_m": 400,
         **zero_alerts, "alerts_wander": 1, "alerts_fall": 2, "alerts_sos": 1, "alerts_total": 4,
         "ack_median_s": 120, "ack_max_s": 600, "unacknowledged": 1, "falls": 1,
         "notices": 0, "notices_delivered": 0, "notices_failed": 0,  # tests/deliver/test_report.py counts them
         "battery_min_pct": 74.0, "battery_last_pct": 76.0,
         "visits": 2, "visit_adl_score": 8,
         "data_gaps": 3,  # midnight → 08:00, 08:05 → 08:20, 08:21 → midnight
         "gap_h": round((86400 - 360) / 3600, 2)},
        {"date": "2025-01-15", "hospcode": "10707", "pid": "000124", "cid": None, "hn": None,
         "patient_id": b, "adl_score": 3, "adl_group": "bedbound", "nhso_group": None,
         "positions": 0, "heard_h": 0.0, "worn_h": 0.0, "worn_unknown_h": 0.0, "outside_zone_min": 0.0,
         "distance_m": 0, **zero_alerts, "alerts_total": 0, "ack_median_s": None, "ack_max_s": None,
         "unacknowledged": 0, "falls": 0, "notices": 0, "notices_delivered": 0, "notices_failed": 0,
         "battery_min_pct": None, "battery_last_pct": None,
         "visits": 0, "visit_adl_score": None, "data_gaps": 1, "gap_h": 24.0},
    ]


def test_every_cell_of_a_built_day(session: Session) -> None:
    a, b = build_day(session)
    summary = daily_summary(session, day=DAY, hospcode="10707", with_cid=True, now=bkk(12, 0, 0, date(2025, 2, 1)))
    assert summary.rows == expected(a, b)


def test_cid_left_out_unless_asked(session: Session) -> None:
    build_day(session)
    summary = daily_summary(session, day=DAY, hospcode="10707", now=bkk(12, 0, 0, date(2025, 2, 1)))
    assert "cid" not in summary.columns and all("cid" not in r for r in summary.rows)


def test_a_day_in_progress_ends_now(session: Session) -> None:
    a, _ = build_day(session)
    summary = daily_summary(session, day=DAY, hospcode="10707", now=bkk(8, 30))
    row = next(r for r in summary.rows if r["patient_id"] == a)
    assert row["gap_h"] == round((8.5 * 3600 - 360) / 3600, 2)
    assert row["data_gaps"] == 3  # 08:21 → 08:30 is longer than 5 min
