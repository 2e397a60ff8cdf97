"""Alerts over REST: list (filters, pages), read one with its history, acknowledge, resolve.

The only alert routes: the caregiver page, the feed and the volunteers' app
all act through `chumphae.alert.service`, so acknowledging here and on the
feed socket has the same effect and the same feed frame.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlmodel import col, func, select

from chumphae import audit
from chumphae.alert import service
from chumphae.alert.render import alert_dict
from chumphae.api.deps import PATIENT_PROBLEMS, CurrentUser, SessionDep, deny, patient_for
from chumphae.api.http import problems
from chumphae.api.problems import Problem
from chumphae.api.routes.mobile import page
from chumphae.api.schemas import (
    AckIn,
    AlertId,
    AsciiInt,
    Offset,
    OptionalPatientQuery,
    ResolveIn,
    Since,
    Until,
    UtcTime,
)
from chumphae.auth.access import sees_all, visible_patient_ids
from chumphae.db import get_engine
from chumphae.deliver.notify import dispatch
from chumphae.errors import Forbidden, NotFound
from chumphae.models import Alert, AlertEvent, AlertStatus, Patient, User
from chumphae.values import AlertType, Severity

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
# Acknowledge and resolve: `_alert`'s 403, and a resolved alert's 409.
ALERT_ACTION = problems(403, 409, about={409: "The alert is already resolved (`alert_conflict`)."})


class LastSeen(BaseModel):
    lat: float | None
    lon: float | None
    uncertainty_m: float | None
    parcel_code: str | None
    building_code: str | None
    description_th: str | None
    description_en: str | None
    zone_version: int | None


class PatientRef(BaseModel):
    id: int
    name_th: str | None
    name_en: str | None


class AlertOut(BaseModel):
    """One alert; `*_local` fields are the same instants in Asia/Bangkok."""

    id: int
    patient_id: int | None
    patient: PatientRef | None
    gateway_id: int | None
    type: str
    type_th: str
    type_en: str
    severity: str
    severity_th: str
    severity_en: str
    status: str
    opened_at: UtcTime
    opened_at_local: str
    last_triggered_at: UtcTime
    last_triggered_at_local: str
    received_at: UtcTime
    count: int
    late: bool
    escalation_level: int
    escalated_to: str
    next_escalation_at: UtcTime | None
    acknowledged_by: int | None
    acknowledged_by_name: str | None
    acknowledged_at: UtcTime | None
    acknowledged_at_local: str | None
    resolved_by: int | None
    resolved_by_name: str | None
    resolved_at: UtcTime | None
    outcome: str | None
    resolution_note: str | None
    last_seen: LastSeen
    details: dict[str, Any]


class EventOut(BaseModel):
    t: UtcTime
    kind: str
    user_id: int | None
    details: dict[str, Any]


class AlertDetail(AlertOut):
    events: list[EventOut]


class AlertPage(BaseModel):
    """A page of alerts, the shape of every list in the API (docs/mobile-api.md "Pages")."""

    items: list[AlertOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def _out(session: SessionDep, rows: list[Alert]) -> list[dict[str, Any]]:
    user_ids = {i for a in rows for i in (a.acknowledged_by, a.resolved_by) if i}
    names = {u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(user_ids))).all()} \
        if user_ids else {}
    pids = {a.patient_id for a in rows if a.patient_id}
    patients = {p.id: {"id": p.id, "name_th": f"{p.prename or ''}{p.name_th}", "name_en": p.name_en}
                for p in session.exec(select(Patient).where(col(Patient.id).in_(pids))).all()} if pids else {}
    return [{**alert_dict(a, names=names), "patient": patients.get(a.patient_id)} for a in rows]  # type: ignore[arg-type]


def _alert(session: SessionDep, user: User, request: Request, alert_id: int) -> Alert:
    try:
        return service.alert_for_user(session, user=user, alert_id=alert_id)
    except NotFound:
        raise Problem(404, "not_found") from None
    except Forbidden:
        deny(session, user, request, entity="alert", entity_id=alert_id)
        raise Problem(403, "patient_forbidden") from None


@router.get("", response_model=AlertPage, responses=PATIENT_PROBLEMS)  # `patient_id=`
def list_alerts(
    request: Request, session: SessionDep, user: CurrentUser,
    status: Annotated[list[AlertStatus] | None, Query(description="Repeat for several.")] = None,
    patient_id: OptionalPatientQuery = None,
    type: Annotated[list[AlertType] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500), AsciiInt] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Alerts of the caller's patients (district roles: all, and the gateways' own), newest first,
    as `{items, total, limit, offset, next_offset}`."""
    query = select(Alert)
    if patient_id is not None:
        patient_for(session, user, request, patient_id)  # 403 for someone else's patient, audited
        query = query.where(Alert.patient_id == patient_id)
    elif not sees_all(user):
        query = query.where(col(Alert.patient_id).in_(visible_patient_ids(session, user)))
    if status:
        query = query.where(col(Alert.status).in_([s.value for s in status]))
    if type:
        query = query.where(col(Alert.type).in_([t.value for t in type]))
    if severity:
        query = query.where(col(Alert.severity).in_([s.value for s in severity]))
    if since:
        query = query.where(col(Alert.opened_at) >= since)
    if until:
        query = query.where(col(Alert.opened_at) < until)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = list(session.exec(query.order_by(col(Alert.opened_at).desc(), col(Alert.id).desc())
                             .offset(offset).limit(limit)).all())
    audit.record(session, user=user, action="read", entity="alert_list", route=f"{request.method} {request.url.path}",
                 detail={"count": len(rows), "patients": sorted({a.patient_id for a in rows if a.patient_id})})
    return page(_out(session, rows), total, limit, offset)


@router.get("/{alert_id}", response_model=AlertDetail, responses=problems(403))
def get_alert(alert_id: AlertId, request: Request, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """One alert with its history (opened, re-triggered, acknowledged, escalated, resolved)."""
    row = _alert(session, user, request, alert_id)
    audit.record(session, user=user, action="read", entity="alert", entity_id=alert_id,
                 patient_id=row.patient_id, route=f"{request.method} {request.url.path}")
    events = session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                          .order_by(col(AlertEvent.id))).all()
    return {**_out(session, [row])[0],
            "events": [{"t": e.t, "kind": e.kind, "user_id": e.user_id, "details": e.details} for e in events]}


@router.post("/{alert_id}/acknowledge", response_model=AlertOut, responses=ALERT_ACTION)
def acknowledge_alert(alert_id: AlertId, request: Request, session: SessionDep, user: CurrentUser,
                      body: AckIn | None = None) -> dict[str, Any]:
    """I am on it: stops escalation. Acknowledging again changes nothing."""
    _alert(session, user, request, alert_id)
    try:
        row, change = service.acknowledge(session, user=user, alert_id=alert_id, note=body.note if body else None,
                                          route=f"{request.method} {request.url.path}")
    except service.AlertConflict:
        raise Problem(409, "alert_conflict") from None
    out = _out(session, [row])[0]
    session.commit()
    dispatch(get_engine(), [change] if change else [])
    return out


@router.post("/{alert_id}/resolve", response_model=AlertOut, responses=ALERT_ACTION)
def resolve_alert(alert_id: AlertId, body: ResolveIn, request: Request, session: SessionDep,
                  user: CurrentUser) -> dict[str, Any]:
    """Close the alert with what happened (false alarm, patient safe, found, taken to hospital, ...)."""
    _alert(session, user, request, alert_id)
    try:
        row, change = service.resolve(session, user=user, alert_id=alert_id, outcome=body.outcome,
                                      note=body.note, route=f"{request.method} {request.url.path}")
    except service.AlertConflict:
        raise Problem(409, "alert_conflict") from None
    out = _out(session, [row])[0]
    session.commit()
    dispatch(get_engine(), [change])
    return out
