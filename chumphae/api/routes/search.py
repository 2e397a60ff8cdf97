"""Search mode: a phone reports sightings of a missing patient's band; the backend places the band."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from chumphae import audit
from chumphae.api.deps import PATIENT_PROBLEMS, SessionDep, patient_for, require_roles
from chumphae.api.http import problems
from chumphae.api.problems import Problem, invalid
from chumphae.api.routes.bands import ADDRESS_PATTERN
from chumphae.api.routes.mobile import PositionOut
from chumphae.api.schemas import PatientId, When
from chumphae.ingest.service import position_dict
from chumphae.map.shared import current_matcher
from chumphae.models import Role, User, Wristband
from chumphae.patients.bands import normalise_address
from chumphae.patients.search import Sighting, record_sightings
from chumphae.timeutil import utcnow

router = APIRouter(prefix="/api/v1/patients/{patient_id}/search", tags=["mobile app"])

Searcher = Annotated[User, Depends(require_roles(Role.CAREGIVER, Role.VOLUNTEER, Role.CARE_MANAGER, Role.ADMIN))]


class SightingIn(BaseModel):
    t: When = Field(description="When the phone heard the band (ISO 8601 with offset).")
    # JSON numbers and integers only: "16.5", `true` or an `rssi` of -70.0 had been taken (docs16)
    lat: float = Field(ge=-90, le=90, strict=True, description="The phone's own GPS fix.")
    lon: float = Field(ge=-180, le=180, strict=True)
    accuracy_m: float = Field(gt=0, le=500, strict=True, description="The phone's GPS accuracy (68 %), metres.")
    rssi: int = Field(ge=-120, le=0, strict=True, description="dBm at which the phone heard the band.")
    tx_power: int | None = Field(default=None, ge=-100, le=20, strict=True,
                                 description="The band's RSSI at 1 m, if its frame says.")


class SightingsIn(BaseModel):
    address: str | None = Field(default=None, max_length=32, description="The band heard; default: the patient's active band.",
                                json_schema_extra={"pattern": ADDRESS_PATTERN})
    sightings: list[SightingIn] = Field(min_length=1, max_length=500)

    # No `address`: the patient's active band, so "Try it out" runs for any patient with a band (on the demo
    # patient 7's band is not the one a fixed address would name: 409 band_mismatch).
    model_config = {"json_schema_extra": {"examples": [{"sightings": [
        {"t": "2025-01-15T21:40:05+07:00", "lat": 16.54512, "lon": 102.10233, "accuracy_m": 6, "rssi": -78},
        {"t": "2025-01-15T21:40:20+07:00", "lat": 16.54498, "lon": 102.10281, "accuracy_m": 5, "rssi": -71},
        {"t": "2025-01-15T21:40:41+07:00", "lat": 16.54455, "lon": 102.10262, "accuracy_m": 7, "rssi": -74}]}]}}


class SearchOut(BaseModel):
    patient_id: int
    positions: list[PositionOut] = Field(description="One per window of sightings (60 s), oldest first.")


@router.post("/sightings", response_model=SearchOut, status_code=201, responses={**PATIENT_PROBLEMS, **problems(
    409, about={409: "The patient has no band (`no_band`), or the band heard is not theirs (`band_mismatch`)."})})
def post_sightings(patient_id: PatientId, body: SightingsIn, request: Request, session: SessionDep,
                   user: Searcher) -> dict[str, Any]:
    """Turn the phone's sightings into positions through locate → match; they join the live feed."""
    patient_for(session, user, request, patient_id)
    band = session.exec(select(Wristband).where(Wristband.patient_id == patient_id, col(Wristband.active))
                        .order_by(col(Wristband.id).desc())).first()
    if band is None:
        raise Problem(409, "no_band")
    if body.address is not None:
        try:
            heard = normalise_address(body.address)
        except ValueError as exc:
            raise invalid(str(exc), "body", "address") from None
        if heard != band.address:
            raise Problem(409, "band_mismatch")
    if any(s.t.tzinfo is None for s in body.sightings):
        raise invalid("every sighting time needs a UTC offset", "body", "sightings")
    if any((s.t - utcnow()).total_seconds() > 300 for s in body.sightings):
        raise invalid("a sighting is in the future", "body", "sightings")
    sightings = [Sighting(t=s.t, lat=s.lat, lon=s.lon, accuracy_m=s.accuracy_m, rssi=s.rssi, tx_power=s.tx_power)
                 for s in body.sightings]
    results = record_sightings(session, band=band, sightings=sightings, matcher=current_matcher(session))
    audit.record(session, user=user, action="create", entity="search_sighting", patient_id=patient_id,
                 route=f"{request.method} {request.url.path}",
                 detail={"sightings": len(sightings), "positions": len(results)})
    return {"patient_id": patient_id, "positions": [
        position_dict(r.row, description_th=r.match.place.description_th if r.match else None,
                      description_en=r.match.place.description_en if r.match else None) for r in results]}
