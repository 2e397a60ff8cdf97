"""Home visits: list a patient's visits (by time, in pages) and log one with an ADL re-assessment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from chumphae.alert.render import iso
from chumphae.api.deps import PATIENT_PROBLEMS, CurrentUser, SessionDep, patient_for, require_roles
from chumphae.api.problems import Problem
from chumphae.api.routes.mobile import page
from chumphae.api.schemas import AdlScore, AsciiInt, LocalWhen, Offset, PatientId, Since, Until, VisitNotes
from chumphae.models import Role, User, Visit, adl_group
from chumphae.patients.visits import list_visits, log_visit
from chumphae.timeutil import iso_bangkok, utcnow

router = APIRouter(prefix="/api/v1/patients/{patient_id}/visits", tags=["mobile app"])

Visitor = Annotated[User, Depends(require_roles(Role.VOLUNTEER, Role.CARE_MANAGER, Role.ADMIN))]


class VisitIn(BaseModel):
    t: LocalWhen | None = Field(default=None, description="When the visit took place (default: now). ISO 8601, "
                                "e.g. 2025-01-15T10:30:00+07:00; without an offset, Asia/Bangkok time. An app that "
                                "was offline sends the real time.")
    adl_score: AdlScore | None = Field(default=None, description="Barthel ADL re-assessed, 0–20.")
    notes: VisitNotes | None = None

    model_config = {"json_schema_extra": {"examples": [
        {"t": "2025-01-15T10:30:00+07:00", "adl_score": 8, "notes": "เดินได้เองในบ้าน ญาติดูแลดี"}]}}


class VisitOut(BaseModel):
    id: int
    patient_id: int
    user_id: int
    t: str
    t_local: str | None
    adl_score: int | None
    adl_group: str | None
    notes: str | None


class VisitPage(BaseModel):
    items: list[VisitOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def visit_out(v: Visit) -> dict[str, Any]:
    return {"id": v.id, "patient_id": v.patient_id, "user_id": v.user_id, "t": iso(v.t), "t_local": iso_bangkok(v.t),
            "adl_score": v.adl_score, "adl_group": adl_group(v.adl_score), "notes": v.notes}


@router.get("", response_model=VisitPage, responses=PATIENT_PROBLEMS)
def get_visits(
    patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=200), AsciiInt] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The patient's home visits, newest first."""
    patient_for(session, user, request, patient_id)
    rows, total = list_visits(session, patient_id=patient_id, since=since, until=until, limit=limit, offset=offset)
    return page([visit_out(v) for v in rows], total, limit, offset)


@router.post("", response_model=VisitOut, status_code=201, responses=PATIENT_PROBLEMS)
def post_visit(patient_id: PatientId, body: VisitIn, request: Request, session: SessionDep, user: Visitor) -> dict[str, Any]:
    """Log a home visit; a score updates the patient's ADL unless a later visit already scored them."""
    patient = patient_for(session, user, request, patient_id, action="update")
    if body.t is not None and (body.t - utcnow()).total_seconds() > 300:
        raise Problem(422, "visit_in_future")
    visit = log_visit(session, user=user, patient=patient, t=body.t, adl_score=body.adl_score, notes=body.notes,
                      route=f"{request.method} {request.url.path}")
    return visit_out(visit)
