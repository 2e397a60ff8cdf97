"""A patient's wristbands: which they have had, and registering or replacing the one they wear."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from chumphae.api.deps import PATIENT_PROBLEMS, CurrentUser, SessionDep, patient_for, require_roles
from chumphae.api.http import problems
from chumphae.api.problems import Problem, invalid
from chumphae.api.routes.mobile import BandOut, band_out, page
from chumphae.api.schemas import AsciiInt, Line32, Line64, Offset, PatientId
from chumphae.models import Role, User
from chumphae.patients.bands import BandConflict, bands_of, register_band

router = APIRouter(prefix="/api/v1/patients/{patient_id}/bands", tags=["mobile app"])

# The forms the schema promises (any case; `:`, `-` or nothing between the bytes): the route also takes other
# separators (it keeps the hex digits), but the document says what is sure to be taken (api19: it said any text).
ADDRESS_PATTERN = r"^[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}$"

Fitter = Annotated[User, Depends(require_roles(Role.VOLUNTEER, Role.CARE_MANAGER, Role.ADMIN))]


class BandIn(BaseModel):
    address: str = Field(max_length=32, description="The band's BLE address, six hex bytes; separators and case do "
                                                    "not matter.",
                         json_schema_extra={"pattern": ADDRESS_PATTERN})
    # One line, as every code and docs/mobile-api.md say (a site or model with a NUL or a newline had been stored: api19)
    model: Line32 = Field(default="chumphae-v1", description="Decoder / frame format.")
    key_hex: str | None = Field(default=None, max_length=64, description="The band's 16-byte key (32 hex digits), from its label.",
                                json_schema_extra={"pattern": "^[0-9A-Fa-f]{32}$"})
    site: Line64 | None = Field(default=None, description="Site whose gateways hear it (default: the replaced "
                                                          "band's site; a first band without one gets `chumphae`, "
                                                          "which no gateway may serve: give it).")

    model_config = {"json_schema_extra": {"examples": [
        {"address": "c0:ca:fe:00:01:2a", "model": "chumphae-v1", "key_hex": "00112233445566778899aabbccddeeff",
         "site": "gw-chumphae-town"}]}}


class BandPage(BaseModel):
    """Every band of the patient, the active one first: a page as every list (`next_offset` is null once the
    page reaches the last band; a patient has a handful, so the default `limit` takes them all)."""

    items: list[BandOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class BandRegistered(BaseModel):
    band: BandOut
    replaced: list[BandOut]


@router.get("", response_model=BandPage, responses=PATIENT_PROBLEMS)
def get_bands(patient_id: PatientId, request: Request, session: SessionDep, user: CurrentUser,
              limit: Annotated[int, Query(ge=1, le=500), AsciiInt] = 50,
              offset: Offset = 0) -> dict[str, Any]:
    """Every band the patient has had, the active one first (keys are never shown), as
    `{items, total, limit, offset, next_offset}`."""
    patient_for(session, user, request, patient_id)
    bands = [band_out(b) for b in bands_of(session, patient_id=patient_id)]
    return page(bands[offset:offset + limit], len(bands), limit, offset)


@router.put("", response_model=BandRegistered, responses={
    **PATIENT_PROBLEMS, **problems(409, about={409: "The band is active on another patient (`band_in_use`), or "
                                                 "another request fitted it at the same moment (`conflict`)."})})
def put_band(patient_id: PatientId, body: BandIn, request: Request, session: SessionDep, user: Fitter) -> dict[str, Any]:
    """Register a band to the patient, retiring the one they wore; 409 if another patient wears it."""
    patient = patient_for(session, user, request, patient_id, action="update")
    try:
        band, replaced = register_band(session, user=user, patient=patient, address=body.address, model=body.model,
                                       key_hex=body.key_hex, site=body.site,
                                       route=f"{request.method} {request.url.path}")
    except BandConflict:
        raise Problem(409, "band_in_use") from None
    except ValueError as exc:
        raise invalid(str(exc), "body") from None
    return {"band": band_out(band), "replaced": [band_out(b) for b in replaced]}
