"""A patient's safe zone as GeoJSON (ETag, If-Modified-Since) and assigning its routes and safe places."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from chumphae.api.deps import PATIENT_PROBLEMS, CurrentUser, SessionDep, patient_for, require_roles
from chumphae.api.problems import Problem
from chumphae.api.routes.maplayers import NOT_MODIFIED, cached_json
from chumphae.api.schemas import ClockText, Line32, PatientId, omittable
from chumphae.models import Role, User
from chumphae.patients.safezones import ZoneBuildError, assign_zone, zone_geojson

router = APIRouter(prefix="/api/v1/patients/{patient_id}/zone", tags=["mobile app"])

Planner = Annotated[User, Depends(require_roles(Role.VOLUNTEER, Role.CARE_MANAGER, Role.ADMIN))]


class NightIn(BaseModel):
    start: ClockText = Field(description="Asia/Bangkok, e.g. 20:00")  # text: 72000 is no 20:00
    end: ClockText = Field(description="Asia/Bangkok, e.g. 06:00 (may wrap midnight)")


class ZoneIn(BaseModel):
    """Only what is sent changes; the rest is kept from the zone in force."""

    route_codes: list[Line32] | None = Field(default=None, max_length=200, description="Walking routes (tax-map `routes` codes).")
    place_codes: list[Line32] | None = Field(default=None, max_length=200, description="Safe places: landmark or parcel codes.")
    # JSON numbers (an integer is fine): `true` had saved a 1 m margin and "30" one of 30 m. Left out: kept; never
    # null (a `null` margin had answered 500: api19).
    margin_m: float = omittable(ge=0, le=200, strict=True, description="Around the home parcel.")
    tolerance_m: float = omittable(gt=0, le=200, strict=True, description="Either side of a route.")
    place_radius_m: float = omittable(gt=0, le=500, strict=True)
    night: NightIn | None = Field(default=None, description="Home only between these hours; null: no night rule.")

    model_config = {"json_schema_extra": {"examples": [
        {"route_codes": ["R00468", "R00256"], "place_codes": ["LM013"], "night": {"start": "20:00", "end": "06:00"}}]}}


class ZoneSaved(BaseModel):
    patient_id: int
    version: int
    warnings: list[str]
    spec: dict[str, Any]


@router.get("", responses={**NOT_MODIFIED, **PATIENT_PROBLEMS, 200: {"content": {"application/geo+json": {"example": {
    "type": "FeatureCollection", "patient_id": 7, "version": 3, "spec": {"route_codes": ["R00468"]},
    "features": [{"type": "Feature", "properties": {"kind": "zone_day", "version": 3},
                  "geometry": {"type": "Polygon", "coordinates": [[[102.1, 16.54], [102.101, 16.54],
                                                                   [102.101, 16.541], [102.1, 16.54]]]}}]}}}}})
def get_zone(patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The active zone (day, night) and the walking routes it was built from; 304 when unchanged."""
    patient_for(session, user, request, patient_id)
    doc, etag, made = zone_geojson(session, patient_id=patient_id)
    return cached_json(request, doc, etag, made)


@router.put("", response_model=ZoneSaved, responses=PATIENT_PROBLEMS)
def put_zone(patient_id: PatientId, body: ZoneIn, request: Request, session: SessionDep, user: Planner) -> dict[str, Any]:
    """Assign routes and safe places: the zone is rebuilt from the tax map and stored as a new version."""
    patient = patient_for(session, user, request, patient_id, action="update")
    changes = body.model_dump(exclude_unset=True)
    if "night" in changes and changes["night"] is not None:
        changes["night"] = {"start": body.night.start.strftime("%H:%M"),  # type: ignore[union-attr]
                            "end": body.night.end.strftime("%H:%M")}  # type: ignore[union-attr]
    for key in ("route_codes", "place_codes"):
        if key in changes and changes[key] is None:
            changes[key] = []
    try:
        row, zone = assign_zone(session, user=user, patient=patient, changes=changes,
                                route=f"{request.method} {request.url.path}")
    except ZoneBuildError as exc:
        raise Problem(422, "zone_build", str(exc)) from None
    return {"patient_id": patient_id, "version": row.version, "warnings": list(zone.warnings),
            "spec": {k: v for k, v in row.spec.items() if k != "home_point"}}
