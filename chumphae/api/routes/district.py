"""The care manager's district at a glance: villages with counts, and the patients behind them.

`GET /api/v1/district/overview` (care managers and admins): every active patient's
status from `chumphae.patients.status` (four queries for all of them), grouped by
village: open alerts, out of coverage, bands off, low batteries. The patient list
can be narrowed by village, status and volunteer; the village counts always cover
the whole district (so the map keeps every village while the list is filtered).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.api.deps import SessionDep, require_roles
from chumphae.api.schemas import AsciiInt, OptionalUserQuery
from chumphae.models import CareAssignment, Patient, Role, User
from chumphae.patients.status import LABELS, REASON_LABELS, PatientStatus, Status, statuses
from chumphae.timeutil import utcnow

router = APIRouter(prefix="/api/v1/district", tags=["care manager"])

Manager = Annotated[User, Depends(require_roles(Role.CARE_MANAGER, Role.ADMIN))]

NO_VILLAGE = ""  # patients without a village are counted under this key ("ไม่ระบุหมู่บ้าน")


class Counts(BaseModel):
    patients: int = 0
    open_alerts: int = Field(0, description="Open (unresolved) alerts of the village's patients.")
    alert_patients: int = Field(0, description="Patients with at least one open alert.")
    out_of_coverage: int = Field(0, description="Patients whose newest position is out of coverage.")
    band_off: int = Field(0, description="Patients with no band, a band not worn, or a band silent too long.")
    battery_low: int = Field(0, description="Patients whose band battery is below their threshold.")


class VillageOut(Counts):
    village: str = Field(description="The patients' `village` field; \"\" for patients without one.")
    lat: float | None = Field(description="Mean of the village's patients' home positions (label spot).")
    lon: float | None
    bbox: list[float] | None = Field(description="[west, south, east, north] of the homes, WGS 84.")


class VolunteerOut(BaseModel):
    id: int
    name: str


class DistrictPatient(BaseModel):
    id: int
    name_th: str
    name_en: str | None
    village: str
    status: Status
    status_th: str
    status_en: str
    reasons: list[dict[str, str]]
    open_alerts: list[str]
    volunteers: list[VolunteerOut]
    battery_pct: float | None
    home_lat: float | None
    home_lon: float | None


class Overview(BaseModel):
    totals: Counts
    villages: list[VillageOut]
    volunteers: list[VolunteerOut] = Field(description="Every volunteer assigned to a patient (filter choices).")
    patients: list[DistrictPatient] = Field(description="After the filters; most urgent first.")
    total: int = Field(description="Patients after the filters (before `limit`).")


def _volunteers(session: Session, ids: list[int]) -> dict[int, list[User]]:
    rows = session.exec(select(CareAssignment.patient_id, User).join(User, col(User.id) == CareAssignment.user_id)
                        .where(col(CareAssignment.patient_id).in_(ids), User.role == Role.VOLUNTEER.value,
                               col(User.active)).order_by(col(User.id))).all()
    out: dict[int, list[User]] = defaultdict(list)
    for pid, user in rows:
        out[pid].append(user)
    return out


def count(into: dict[str, int], s: PatientStatus) -> None:
    """Add one patient's status to a village's (or the district's) counts. Pure."""
    into["patients"] += 1
    into["open_alerts"] += len(s.open_alert_types)
    into["alert_patients"] += int(bool(s.open_alert_types))
    reasons = set(s.judgement.reasons)
    into["out_of_coverage"] += int("out_of_coverage" in reasons)
    into["band_off"] += int(bool({"no_band", "not_worn", "silent"} & reasons))
    into["battery_low"] += int("battery_low" in reasons)


def _empty() -> dict[str, int]:
    return {k: 0 for k in Counts.model_fields}


@router.get("/overview", response_model=Overview)
def overview(
    request: Request, session: SessionDep, user: Manager,
    village: Annotated[str | None, Query(description="Only this village's patients (\"\" for none given).")] = None,
    status: Annotated[list[Status] | None, Query(description="Only these statuses (repeat for several).")] = None,
    volunteer: Annotated[OptionalUserQuery, Query(description="Only patients assigned to this volunteer (a user id, "
                                                    "1 … 2³¹−1; another value is a 422 `validation` problem).")] = None,
    limit: Annotated[int, Query(ge=1, le=2000), AsciiInt] = 500,
) -> dict[str, Any]:
    """Villages with counts (whole district) and the filtered patient list, most urgent first."""
    patients = list(session.exec(select(Patient).where(col(Patient.active)).order_by(col(Patient.id))).all())
    every = statuses(session, patients=patients, now=utcnow())
    vols = _volunteers(session, [p.id for p in patients if p.id is not None])
    totals = _empty()
    by_village: defaultdict[str, dict[str, int]] = defaultdict(_empty)
    homes: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in every:
        v = s.patient.village or NO_VILLAGE
        count(totals, s)
        count(by_village[v], s)
        if s.patient.home_lat is not None and s.patient.home_lon is not None:
            homes[v].append((s.patient.home_lon, s.patient.home_lat))
    villages: list[dict[str, Any]] = []
    for v in sorted(by_village, key=lambda k: (k == NO_VILLAGE, k)):
        pts = homes.get(v, [])
        box = [min(x for x, _ in pts), min(y for _, y in pts), max(x for x, _ in pts), max(y for _, y in pts)] \
            if pts else None
        villages.append({**by_village[v], "village": v, "bbox": box,
                         "lon": sum(x for x, _ in pts) / len(pts) if pts else None,
                         "lat": sum(y for _, y in pts) / len(pts) if pts else None})
    chosen = [s for s in every
              if (village is None or (s.patient.village or NO_VILLAGE) == village)
              and (not status or s.judgement.status in status)
              and (volunteer is None or any(u.id == volunteer for u in vols.get(s.patient.id or -1, [])))]
    order = list(Status)
    chosen.sort(key=lambda s: order.index(s.judgement.status))  # stable: by id within a status
    all_vols = {u.id: u for us in vols.values() for u in us}
    audit.record(session, user=user, action="read", entity="district_overview",
                 route=f"{request.method} {request.url.path}",
                 detail={"count": len(chosen[:limit]), "patients": [s.patient.id for s in chosen[:limit]]})
    return {
        "totals": totals, "villages": villages,
        "volunteers": [{"id": u.id, "name": u.name} for u in sorted(all_vols.values(), key=lambda u: u.name)],
        "total": len(chosen),
        "patients": [{
            "id": s.patient.id, "name_th": f"{s.patient.prename or ''}{s.patient.name_th}",
            "name_en": s.patient.name_en, "village": s.patient.village or NO_VILLAGE,
            "status": s.judgement.status, "status_th": LABELS[s.judgement.status][0],
            "status_en": LABELS[s.judgement.status][1],
            "reasons": [{"code": r, "th": REASON_LABELS[r][0], "en": REASON_LABELS[r][1]} for r in s.judgement.reasons],
            "open_alerts": list(s.open_alert_types),
            "volunteers": [{"id": u.id, "name": u.name} for u in vols.get(s.patient.id or -1, [])],
            "battery_pct": s.band.battery_pct if s.band else None,
            "home_lat": s.patient.home_lat, "home_lon": s.patient.home_lon,
        } for s in chosen[:limit]],
    }
