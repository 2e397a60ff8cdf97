"""A patient's status at a glance: OK, alert, out of coverage, band off, battery low.

The volunteers' app lists its patients with one word each, most urgent first,
so a phone screen shows who needs a visit. The word is the most urgent of the
conditions that hold (an open alert beats everything: someone must act); all
of them are listed in `reasons`, so "alert" does not hide a flat battery.

`judge` is pure (facts in, status out); `statuses` gathers the facts for many
patients in four queries (patients, bands, newest positions, open alerts),
not four per patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, true
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from chumphae.detect.thresholds import thresholds_for
from chumphae.map.match import Matcher
from chumphae.models import Alert, AlertStatus, Patient, PositionRecord, Wristband
from chumphae.timeutil import as_utc
from chumphae.values import Place, Position


class Status(StrEnum):
    ALERT = "alert"
    OUT_OF_COVERAGE = "out_of_coverage"
    BAND_OFF = "band_off"
    BATTERY_LOW = "battery_low"
    OK = "ok"


ORDER = tuple(Status)  # most urgent first

LABELS: dict[Status, tuple[str, str]] = {
    Status.ALERT: ("มีการแจ้งเตือน", "Alert"),
    Status.OUT_OF_COVERAGE: ("อยู่นอกพื้นที่สัญญาณ", "Out of coverage"),
    Status.BAND_OFF: ("สายรัดข้อมือไม่ทำงาน/ถูกถอด", "Band off"),
    Status.BATTERY_LOW: ("แบตเตอรี่ใกล้หมด", "Battery low"),
    Status.OK: ("ปกติ", "OK"),
}

REASON_LABELS: dict[str, tuple[str, str]] = {
    "open_alert": ("มีการแจ้งเตือนที่ยังไม่ปิด", "an alert is not yet resolved"),
    "out_of_coverage": ("ตำแหน่งล่าสุดอยู่นอกพื้นที่สัญญาณ", "the newest position is out of coverage"),
    "no_band": ("ยังไม่มีสายรัดข้อมือ", "no wristband registered"),
    "not_worn": ("สายรัดข้อมือถูกถอด", "the band reports it is not worn"),
    "silent": ("ไม่ได้ยินสัญญาณสายรัดนานเกินกำหนด", "the band has not been heard for too long"),
    "battery_low": ("แบตเตอรี่ต่ำกว่าเกณฑ์", "battery below the patient's threshold"),
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about one patient right now (read from the database)."""

    open_alert_types: tuple[str, ...] = ()
    has_band: bool = False
    battery_pct: float | None = None
    worn: bool | None = None
    last_seen_at: datetime | None = None
    in_coverage: bool | None = None  # of the newest position
    silent_s: float = 1800.0
    battery_low_pct: float = 20.0


@dataclass(frozen=True, slots=True)
class Judgement:
    status: Status
    reasons: tuple[str, ...] = field(default=())


def judge(f: Facts, now: datetime) -> Judgement:
    """The most urgent condition that holds, and every one that holds."""
    reasons: list[str] = []
    found: set[Status] = set()
    if f.open_alert_types:
        reasons.append("open_alert")
        found.add(Status.ALERT)
    if f.in_coverage is False:
        reasons.append("out_of_coverage")
        found.add(Status.OUT_OF_COVERAGE)
    if not f.has_band:
        reasons.append("no_band")
    elif f.worn is False:
        reasons.append("not_worn")
    elif f.last_seen_at is None or (now - as_utc(f.last_seen_at)).total_seconds() > f.silent_s:
        reasons.append("silent")
    if {"no_band", "not_worn", "silent"} & set(reasons):
        found.add(Status.BAND_OFF)
    if f.has_band and f.battery_pct is not None and f.battery_pct < f.battery_low_pct:
        reasons.append("battery_low")
        found.add(Status.BATTERY_LOW)
    status = next((s for s in ORDER if s in found), Status.OK)
    return Judgement(status, tuple(reasons))


@dataclass(frozen=True, slots=True)
class PatientStatus:
    patient: Patient
    judgement: Judgement
    band: Wristband | None
    position: PositionRecord | None
    open_alert_types: tuple[str, ...]


def _newest_positions(session: Session, ids: list[int]) -> dict[int, PositionRecord]:
    """Each patient's newest position (the highest id wins a tie of times).

    On PostgreSQL one `LATERAL … ORDER BY t DESC, id DESC LIMIT 1` per patient: an index probe into each
    day's partition, where `max(t) … GROUP BY` read every position the patient ever had (~500,000
    after a year of one a minute). SQLite keeps the plain form (one process, small)."""
    if session.get_bind().dialect.name == "postgresql":
        pids = select(Patient.id).where(col(Patient.id).in_(ids)).subquery()
        newest = (select(PositionRecord).where(col(PositionRecord.patient_id) == pids.c.id)
                  .order_by(col(PositionRecord.t).desc(), col(PositionRecord.id).desc()).limit(1).lateral())
        row = aliased(PositionRecord, newest)
        found = session.exec(select(row).select_from(pids).join(newest, true())).all()
        return {r.patient_id: r for r in found if r.patient_id is not None}
    latest = (select(PositionRecord.patient_id, func.max(PositionRecord.t).label("t"))
              .where(col(PositionRecord.patient_id).in_(ids)).group_by(col(PositionRecord.patient_id))
              .subquery())
    rows = session.exec(select(PositionRecord).join(
        latest, (col(PositionRecord.patient_id) == latest.c.patient_id) & (col(PositionRecord.t) == latest.c.t))
        .order_by(col(PositionRecord.id))).all()
    return {r.patient_id: r for r in rows if r.patient_id is not None}  # the highest id wins a tie


def _bands(session: Session, ids: list[int]) -> dict[int, Wristband]:
    rows = session.exec(select(Wristband).where(col(Wristband.patient_id).in_(ids), col(Wristband.active))
                        .order_by(col(Wristband.id))).all()
    return {b.patient_id: b for b in rows if b.patient_id is not None}  # the newest registration wins


def _open_alerts(session: Session, ids: list[int]) -> dict[int, tuple[str, ...]]:
    rows = session.exec(select(Alert.patient_id, Alert.type).where(
        col(Alert.patient_id).in_(ids), Alert.status != AlertStatus.RESOLVED).order_by(col(Alert.opened_at))).all()
    out: dict[int, list[str]] = {}
    for pid, kind in rows:
        if pid is not None:
            out.setdefault(pid, []).append(kind)
    return {k: tuple(v) for k, v in out.items()}


def statuses(session: Session, *, patients: list[Patient], now: datetime) -> list[PatientStatus]:
    """The status of each of `patients` (in their order)."""
    ids = [p.id for p in patients if p.id is not None]
    if not ids:
        return []
    bands, positions, alerts = _bands(session, ids), _newest_positions(session, ids), _open_alerts(session, ids)
    out = []
    for p in patients:
        assert p.id is not None
        band, pos = bands.get(p.id), positions.get(p.id)
        try:
            th = thresholds_for(p.adl_score, p.nhso_group, p.thresholds or None)
        except ValueError:  # a bad override must not hide the patient: the group defaults
            th = thresholds_for(p.adl_score, p.nhso_group)
        facts = Facts(open_alert_types=alerts.get(p.id, ()), has_band=band is not None,
                      battery_pct=band.battery_pct if band else None, worn=band.worn if band else None,
                      last_seen_at=band.last_seen_at if band else None,
                      in_coverage=pos.in_coverage if pos else None,
                      silent_s=th.silent_s, battery_low_pct=th.battery_low_pct)
        out.append(PatientStatus(p, judge(facts, now), band, pos, alerts.get(p.id, ())))
    return out


def describe_positions(matcher: Matcher | None, rows: list[PositionRecord]) -> dict[int, Place]:
    """The place of each position on the tax map, by row id: its landmark words ("120 m north of Wat
    Si Chomphu") and the parcel and building under it (which a gateway that words only the zone
    leaves out of the row: an answer names them from the map, docs/mobile-api.md "Positions")."""
    if matcher is None or not rows:
        return {}
    positions = [Position(address="", t=as_utc(r.t), lat=r.lat, lon=r.lon, uncertainty_m=r.uncertainty_m)
                 for r in rows]
    matches = matcher.match_many(positions, [None] * len(positions))  # vectorised; only the place is used
    return {r.id: m.place for r, m in zip(rows, matches, strict=True) if r.id is not None}
