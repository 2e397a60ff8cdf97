"""Patients: list mine, read one (CID only for roles that need it), create, update."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlmodel import col, select

from chumphae import audit
from chumphae.api.deps import PATIENT_PROBLEMS, CurrentUser, SessionDep, deny, patient_for, require_roles
from chumphae.api.problems import Problem
from chumphae.api.schemas import (
    AdlScore,
    AsciiInt,
    DateText,
    Line32,
    Line40,
    Line64,
    Line200,
    Name,
    NhsoGroup,
    Offset,
    PatientId,
    PatientNotes,
    UtcTime,
    omittable,
)
from chumphae.auth.access import visible_patients_clause
from chumphae.models import CID_ROLES, Patient, Role, User, adl_group
from chumphae.patients.erase import erase_patient
from chumphae.patients.import43 import valid_cid
from chumphae.timeutil import utcnow

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])

Manager = Annotated[User, Depends(require_roles(Role.CARE_MANAGER, Role.ADMIN))]
Admin = Annotated[User, Depends(require_roles(Role.ADMIN))]


def _checked_cid(cid: str | None) -> str | None:
    """A Thai national ID: 13 digits whose last is the check digit (as import-43 takes them)."""
    if cid is not None and not valid_cid(cid):
        raise ValueError("cid is 13 digits with a valid check digit")
    return cid


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [  # docs/mobile-api.md's, on the demo
        {"prename": "นาง", "name_th": "บัวผัน ใจดี", "name_en": "Buaphan Jaidee", "sex": "2", "birth_date": "1941-03-09",
         "adl_score": 9, "nhso_group": 2, "village": "Chumphae town"}]})

    prename: Line32 | None = None
    name_th: Name
    name_en: Line200 | None = None
    cid: Annotated[str | None, AfterValidator(_checked_cid)] = Field(default=None, pattern=r"^[0-9]{13}$")
    sex: str | None = Field(default=None, pattern=r"^[12]$")
    birth_date: DateText | None = Field(default=None, ge=date(1880, 1, 1), le=date(2200, 1, 1),  # text, not 0
                                      description="A day, YYYY-MM-DD, from 1880-01-01 to 2200-01-01.")
    adl_score: AdlScore | None = None
    nhso_group: NhsoGroup | None = None
    hospcode: str | None = Field(default=None, pattern=r"^[0-9]{5}$")
    pid: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{1,15}$")
    hn: str | None = Field(default=None, pattern=r"^[0-9A-Za-z/\-]{1,15}$",
                           description="Hospital number: letters, digits, / and -; at most 15.")
    village: Line64 | None = None
    home_parcel_code: Line32 | None = None
    home_building_code: Line40 | None = None
    home_lat: float | None = Field(default=None, ge=-90, le=90, strict=True)  # `true` is no latitude 1
    home_lon: float | None = Field(default=None, ge=-180, le=180, strict=True)
    notes: PatientNotes | None = None


class PatientPatch(BaseModel):
    """Only what is sent changes. `name_th` and `active` may be left out but not set to null."""

    model_config = ConfigDict(extra="forbid")

    name_th: Name = omittable()
    name_en: Line200 | None = None
    adl_score: AdlScore | None = None
    nhso_group: NhsoGroup | None = None
    home_parcel_code: Line32 | None = None
    home_building_code: Line40 | None = None
    home_lat: float | None = Field(default=None, ge=-90, le=90, strict=True)  # `true` is no latitude 1
    home_lon: float | None = Field(default=None, ge=-180, le=180, strict=True)
    notes: PatientNotes | None = None
    active: bool = omittable(strict=True, description="Only care managers and admins (a patient who left the programme).")


# Who may change which field of a patient they can see (PATCH); the route × role table tests it.
_HOME = frozenset({"home_parcel_code", "home_building_code", "home_lat", "home_lon"})
EDITABLE: dict[Role, frozenset[str]] = {
    Role.CAREGIVER: frozenset({"notes"}),
    Role.VOLUNTEER: frozenset({"notes", "adl_score"}) | _HOME,
    Role.HOSPITAL: frozenset({"notes", "adl_score", "nhso_group"}),
    Role.CARE_MANAGER: frozenset(PatientPatch.model_fields),
    Role.ADMIN: frozenset(PatientPatch.model_fields),
}


class PatientOut(BaseModel):
    id: int
    prename: str | None
    name_th: str
    name_en: str | None
    sex: str | None
    birth_date: date | None
    adl_score: int | None
    adl_group: str | None
    nhso_group: int | None
    village: str | None
    home_parcel_code: str | None
    home_building_code: str | None
    home_lat: float | None
    home_lon: float | None
    notes: str | None
    active: bool
    updated_at: UtcTime
    cid: str | None = Field(default=None, description="Only for the hospital and admin roles.")
    hospcode: str | None = None
    pid: str | None = None
    hn: str | None = None


def to_out(p: Patient, user: User) -> PatientOut:
    assert p.id is not None
    out = PatientOut(
        id=p.id, prename=p.prename, name_th=p.name_th, name_en=p.name_en, sex=p.sex,
        birth_date=p.birth_date, adl_score=p.adl_score, adl_group=adl_group(p.adl_score),
        nhso_group=p.nhso_group, village=p.village, home_parcel_code=p.home_parcel_code,
        home_building_code=p.home_building_code, home_lat=p.home_lat, home_lon=p.home_lon,
        notes=p.notes, active=p.active, updated_at=p.updated_at,
    )
    if Role(user.role) in CID_ROLES:
        out.cid, out.hospcode, out.pid, out.hn = p.cid, p.hospcode, p.pid, p.hn
    return out


@router.get("", response_model=list[PatientOut])
def list_patients(
    request: Request, session: SessionDep, user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500), AsciiInt] = 100,
    offset: Offset = 0,
) -> list[PatientOut]:
    """The patients the caller cares for (district roles: all)."""
    rows = session.exec(
        select(Patient).where(visible_patients_clause(user)).order_by(col(Patient.id))
        .offset(offset).limit(limit)
    ).all()
    audit.record(session, user=user, action="read", entity="patient_list",  # which records, as the other lists
                 route=f"{request.method} {request.url.path}",
                 detail={"count": len(rows), "patients": [p.id for p in rows]})
    return [to_out(p, user) for p in rows]


@router.get("/{patient_id}", response_model=PatientOut, responses=PATIENT_PROBLEMS)
def get_patient(patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser) -> PatientOut:
    return to_out(patient_for(session, user, request, patient_id), user)


@router.post("", response_model=PatientOut, status_code=201)
def create_patient(body: PatientIn, request: Request, session: SessionDep, user: Manager) -> PatientOut:
    patient = Patient(**body.model_dump())
    session.add(patient)
    session.flush()
    audit.record(session, user=user, action="create", entity="patient", entity_id=patient.id,
                 patient_id=patient.id, route=f"{request.method} {request.url.path}")
    return to_out(patient, user)


class ErasedOut(BaseModel):
    patient_id: int
    positions: int = Field(description="Positions deleted.")
    alerts: int = Field(description="Alerts kept (type, severity, times, outcome) without where or notes.")
    feed_frames: int = Field(description="Feed frames deleted.")
    visits: int = Field(description="Visits kept (time, ADL score) without notes.")
    zones: int = Field(description="Safe-zone versions deleted.")
    bands: int = Field(description="Bands unlinked and retired.")
    assignments: int = Field(description="Care assignments removed.")


@router.post("/{patient_id}/erase", response_model=ErasedOut, responses=PATIENT_PROBLEMS)
def erase_patient_data(patient_id: PatientId, request: Request, session: SessionDep, user: Admin) -> ErasedOut:
    """PDPA erasure: the patient's personal data and positions go; anonymous counts stay (docs: README)."""
    patient = patient_for(session, user, request, patient_id, action="erase")
    done = erase_patient(session, patient=patient, user=user, route=f"{request.method} {request.url.path}")
    return ErasedOut(**asdict(done))


@router.patch("/{patient_id}", response_model=PatientOut, responses=PATIENT_PROBLEMS)
def update_patient(patient_id: PatientId, body: PatientPatch, request: Request, session: SessionDep,
                   user: CurrentUser) -> PatientOut:
    """Caregivers may change notes; volunteers also the ADL score and home; the hospital notes, ADL and
    NHSO group; care managers and admins anything (`active` only they). Other fields: 403 `field_forbidden`."""
    patient = patient_for(session, user, request, patient_id, action="update")
    changes = body.model_dump(exclude_unset=True)
    refused = sorted(set(changes) - EDITABLE[Role(user.role)])
    if refused:
        deny(session, user, request, entity="patient", entity_id=patient_id, patient_id=patient_id)
        raise Problem(403, "field_forbidden", fields=refused)
    for key, value in changes.items():
        setattr(patient, key, value)
    patient.updated_at = utcnow()
    session.add(patient)
    audit.record(session, user=user, action="update", entity="patient", entity_id=patient_id,
                 patient_id=patient_id, route=f"{request.method} {request.url.path}",
                 detail={"fields": sorted(changes)})
    return to_out(patient, user)
