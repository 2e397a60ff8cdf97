"""The volunteers' app: my patients with their status, one patient's status, their positions.

Thin routes over `chumphae.patients.status`. Lists are pages: `limit` and
`offset` in, `{items, total, limit, offset, next_offset}` out. Alerts
themselves (list, acknowledge, resolve) are `/api/v1/alerts` (see
docs/mobile-api.md); here they only colour the status.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.sql import ColumnElement
from sqlmodel import col, func, select

from chumphae import audit
from chumphae.alert.render import iso
from chumphae.api.deps import PATIENT_PROBLEMS, CurrentUser, SessionDep, patient_for
from chumphae.api.schemas import AsciiInt, Offset, PatientId, Since, Until
from chumphae.auth.access import visible_patients_clause
from chumphae.ingest.service import position_dict
from chumphae.map.shared import current_matcher
from chumphae.models import Patient, PositionRecord, Wristband, adl_group
from chumphae.patients.status import (
    LABELS,
    ORDER,
    REASON_LABELS,
    PatientStatus,
    Status,
    describe_positions,
    statuses,
)
from chumphae.timeutil import iso_bangkok, utcnow
from chumphae.values import Place

router = APIRouter(prefix="/api/v1", tags=["mobile app"])


class PositionOut(BaseModel):
    patient_id: int | None
    t: str
    t_local: str | None = Field(description="The same instant in Asia/Bangkok.")
    lat: float
    lon: float
    uncertainty_m: float = Field(description="Radius (m) the patient is believed to be within.")
    source: str = Field(description="ble | gps | search")
    in_coverage: bool
    zone_status: str | None = Field(description="inside | outside | uncertain | no_zone")
    zone_version: int | None
    parcel_code: str | None
    building_code: str | None
    description_th: str | None = Field(description="e.g. ห่างจากวัดศรีชมภู 120 ม. ทางทิศเหนือ")
    description_en: str | None = Field(description="e.g. 120 m north of Wat Si Chomphu")


class BandOut(BaseModel):
    id: int
    address: str
    model: str
    active: bool
    battery_pct: float | None
    worn: bool | None
    charging: bool | None
    last_seen_at: str | None
    last_seen_at_local: str | None
    site: str = Field(description="Only the gateways of this site hear the band (their site config lists it).")
    has_key: bool = Field(description="Its key is registered (the key is never shown); without one its frames "
                                      "cannot be authenticated and no gateway lists it.")


class Reason(BaseModel):
    code: str
    th: str
    en: str


class StatusOut(BaseModel):
    patient_id: int
    prename: str | None
    name_th: str
    name_en: str | None
    village: str | None
    adl_score: int | None
    adl_group: str | None
    nhso_group: int | None
    status: Status = Field(description="Most urgent of: alert, out_of_coverage, band_off, battery_low, ok.")
    status_th: str
    status_en: str
    reasons: list[Reason]
    open_alerts: list[str] = Field(description="Types of the patient's unresolved alerts (see /api/v1/alerts).")
    band: BandOut | None
    last_position: PositionOut | None


class StatusPage(BaseModel):
    items: list[StatusOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class PositionPage(BaseModel):
    items: list[PositionOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


STATUS_EXAMPLE = {
    "patient_id": 7, "prename": "นาง", "name_th": "สมศรี ใจดี", "name_en": "Somsri Jaidee", "village": "โนนสะอาด",
    "adl_score": 9, "adl_group": "homebound", "nhso_group": 2, "status": "alert", "status_th": "มีการแจ้งเตือน",
    "status_en": "Alert", "reasons": [{"code": "open_alert", "th": "มีการแจ้งเตือนที่ยังไม่ปิด",
                                       "en": "an alert is not yet resolved"}],
    "open_alerts": ["wander"],
    "band": {"id": 3, "address": "C0:CA:FE:00:00:03", "model": "chumphae-v1", "active": True, "battery_pct": 64.0,
             "worn": True, "charging": False, "last_seen_at": "2025-01-15T02:10:00+00:00",
             "last_seen_at_local": "2025-01-15T09:10:00+07:00", "site": "gw-chumphae-town", "has_key": True},
    "last_position": {"patient_id": 7, "t": "2025-01-15T02:10:00+00:00", "t_local": "2025-01-15T09:10:00+07:00",
                      "lat": 16.5431, "lon": 102.1012, "uncertainty_m": 25.0, "source": "ble", "in_coverage": True,
                      "zone_status": "outside", "zone_version": 2, "parcel_code": "03I002", "building_code": None,
                      "description_th": "ห่างจากวัดศรีชมภู 120 ม. ทางทิศเหนือ",
                      "description_en": "120 m north of Wat Si Chomphu"},
}


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None}


def band_out(b: Wristband) -> dict[str, Any]:
    return {"id": b.id, "address": b.address, "model": b.model, "active": b.active, "battery_pct": b.battery_pct,
            "worn": b.worn, "charging": b.charging, "last_seen_at": iso(b.last_seen_at),
            "last_seen_at_local": iso_bangkok(b.last_seen_at), "site": b.site, "has_key": bool(b.key_hex)}


def position_out(row: PositionRecord, places: dict[int, Place]) -> dict[str, Any]:
    """A stored position as the app reads it: the place's words, and its parcel and building from the
    map when the row has none (a gateway that words only the zone stores none)."""
    place = places.get(row.id or -1)
    if place is None:
        return position_dict(row)
    out = position_dict(row, description_th=place.description_th, description_en=place.description_en)
    if out["parcel_code"] is None and out["building_code"] is None:
        out["parcel_code"], out["building_code"] = place.parcel_code, place.building_code
    return out


def status_out(s: PatientStatus, places: dict[int, Place]) -> dict[str, Any]:
    p, pos = s.patient, s.position
    th, en = LABELS[s.judgement.status]
    position = position_out(pos, places) if pos is not None else None
    return {
        "patient_id": p.id, "prename": p.prename, "name_th": p.name_th, "name_en": p.name_en, "village": p.village,
        "adl_score": p.adl_score, "adl_group": adl_group(p.adl_score), "nhso_group": p.nhso_group,
        "status": s.judgement.status, "status_th": th, "status_en": en,
        "reasons": [{"code": r, "th": REASON_LABELS[r][0], "en": REASON_LABELS[r][1]} for r in s.judgement.reasons],
        "open_alerts": list(s.open_alert_types), "band": band_out(s.band) if s.band else None,
        "last_position": position,
    }


@router.get("/mobile/patients", response_model=StatusPage,
            responses={200: {"content": {"application/json": {"example": {
                "items": [STATUS_EXAMPLE], "total": 1, "limit": 50, "offset": 0, "next_offset": None}}}}})
def my_patients(
    request: Request, session: SessionDep, user: CurrentUser,
    status: Annotated[list[Status] | None, Query(description="Only these statuses (repeat for several).")] = None,
    limit: Annotated[int, Query(ge=1, le=200), AsciiInt] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The caller's patients (district roles: all), most urgent first, each with status and last position."""
    patients = list(session.exec(select(Patient).where(visible_patients_clause(user), col(Patient.active))
                                 .order_by(col(Patient.id))).all())
    now = utcnow()
    every = statuses(session, patients=patients, now=now)
    if status:
        every = [s for s in every if s.judgement.status in status]
    every.sort(key=lambda s: ORDER.index(s.judgement.status))  # stable: by id within a status
    chosen = every[offset:offset + limit]
    words = describe_positions(current_matcher(session), [s.position for s in chosen if s.position])
    audit.record(session, user=user, action="read", entity="patient_status_list",
                 route=f"{request.method} {request.url.path}",
                 detail={"count": len(chosen), "patients": [s.patient.id for s in chosen]})
    return page([status_out(s, words) for s in chosen], len(every), limit, offset)


@router.get("/patients/{patient_id}/status", response_model=StatusOut,
            responses={**PATIENT_PROBLEMS, 200: {"content": {"application/json": {"example": STATUS_EXAMPLE}}}})
def patient_status(patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """One patient's status, band and last known position with its uncertainty and landmark description."""
    patient = patient_for(session, user, request, patient_id)
    [s] = statuses(session, patients=[patient], now=utcnow())
    words = describe_positions(current_matcher(session), [s.position] if s.position else [])
    return status_out(s, words)


@router.get("/patients/{patient_id}/positions", response_model=PositionPage, responses=PATIENT_PROBLEMS)
def patient_positions(
    patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser,
    since: Since = None,
    until: Until = None,
    source: Annotated[str | None, Query(pattern="^(ble|gps|search)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000), AsciiInt] = 200,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Where the patient was, newest first, filtered by time (and source); landmark words on this page."""
    patient_for(session, user, request, patient_id)
    where: list[ColumnElement[bool]] = [col(PositionRecord.patient_id) == patient_id]
    if since is not None:
        where.append(col(PositionRecord.t) >= since)
    if until is not None:
        where.append(col(PositionRecord.t) < until)
    if source is not None:
        where.append(col(PositionRecord.source) == source)
    total = int(session.exec(select(func.count()).select_from(PositionRecord).where(*where)).one())
    rows = list(session.exec(select(PositionRecord).where(*where)
                             .order_by(col(PositionRecord.t).desc(), col(PositionRecord.id).desc())
                             .offset(offset).limit(limit)).all())
    words = describe_positions(current_matcher(session), rows)
    items = [position_out(r, words) for r in rows]
    return page(items, total, limit, offset)
