"""What the caregiver page's map reads: tax-map layers in a bbox; a patient's safe zone, status, track.

Thin routes over the map engineer's functions (`chumphae.map.geojson`,
`chumphae.map.zonestore`); no logic of their own. They live under `/web/api/`
because they serve this page; when the mobile API offers the same data, the
page can switch (`web/src/api.ts` PATHS) and this module can go.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Query, Request
from shapely.geometry import mapping
from sqlmodel import col, select

from chumphae.api.deps import CurrentUser, SessionDep, patient_for
from chumphae.api.problems import Problem
from chumphae.map.geojson import PRECISION_DEG, BBoxError, features_geojson
from chumphae.map.importer import LAYERS
from chumphae.alert.render import iso
from chumphae.ingest.service import position_dict
from chumphae.models import MapFeature, PositionRecord, SafeZone, Wristband
from chumphae.timeutil import utcnow

router = APIRouter(prefix="/web/api", tags=["caregiver page"])


@router.get("/map/{layer}")
def map_layer(layer: str, session: SessionDep, user: CurrentUser,
              bbox: Annotated[str, Query(description="minlon,minlat,maxlon,maxlat (WGS 84)")],
              limit: Annotated[int, Query(ge=1, le=5000)] = 3000) -> dict[str, Any]:
    """One tax-map layer (parcels, buildings, routes, landmarks) clipped to `bbox`, capped."""
    if layer not in LAYERS:
        raise Problem(404, "not_found", f"layers: {', '.join(LAYERS)}")
    try:
        return features_geojson(session, layer, bbox, limit)
    except BBoxError as exc:
        raise Problem(400, "bad_request", str(exc)) from None


def _geom(wkb: bytes) -> dict[str, Any]:
    return mapping(shapely.set_precision(shapely.from_wkb(wkb), PRECISION_DEG))  # type: ignore[no-any-return]


@router.get("/patients/{patient_id}/zone")
def patient_zone(patient_id: int, request: Request, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The active safe zone (day, and night if any) and the walking routes it was built from."""
    patient_for(session, user, request, patient_id)  # 403 for someone else's patient, audited
    row = session.exec(select(SafeZone).where(SafeZone.patient_id == patient_id, col(SafeZone.active))
                       .order_by(col(SafeZone.version).desc())).first()
    features: list[dict[str, Any]] = []
    if (zone := row) is not None:
        features.append({"type": "Feature", "properties": {"kind": "zone_day", "version": zone.version},
                         "geometry": _geom(zone.day_wkb)})
        if zone.night_wkb:
            features.append({"type": "Feature", "properties": {"kind": "zone_night", "version": zone.version},
                             "geometry": _geom(zone.night_wkb)})
        codes = list((zone.spec or {}).get("route_codes") or [])
        if codes:
            t = MapFeature.__table__  # type: ignore[attr-defined]
            for code, wkb in session.connection().execute(
                    select(t.c.code, t.c.geom_wkb).where(t.c.layer == "routes", t.c.code.in_(codes))):
                features.append({"type": "Feature", "properties": {"kind": "route", "code": code},
                                 "geometry": _geom(wkb)})
    return {"type": "FeatureCollection", "patient_id": patient_id, "features": features}


@router.get("/patients/{patient_id}/status")
def patient_status(patient_id: int, request: Request, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The patient's band (battery, worn, last heard) and newest position, for the page's panel."""
    patient_for(session, user, request, patient_id)
    band = session.exec(select(Wristband).where(Wristband.patient_id == patient_id, col(Wristband.active))
                        .order_by(col(Wristband.last_seen_at).desc())).first()
    newest = session.exec(select(PositionRecord).where(PositionRecord.patient_id == patient_id)
                          .order_by(col(PositionRecord.t).desc(), col(PositionRecord.id).desc())).first()
    return {
        "patient_id": patient_id,
        "battery_pct": band.battery_pct if band else None,
        "worn": band.worn if band else None,
        "charging": band.charging if band else None,
        "last_seen_at": iso(band.last_seen_at) if band else None,
        "in_coverage": newest.in_coverage if newest else None,
        "zone_status": newest.zone_status if newest else None,
        "position": position_dict(newest) if newest else None,
    }


@router.get("/patients/{patient_id}/track")
def patient_track(patient_id: int, request: Request, session: SessionDep, user: CurrentUser,
                  hours: Annotated[float, Query(gt=0, le=24)] = 2,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 300) -> list[dict[str, Any]]:
    """Positions of the last `hours`, oldest first (at most `limit`, the newest kept)."""
    patient_for(session, user, request, patient_id)
    since = utcnow() - timedelta(hours=hours)
    rows = session.exec(select(PositionRecord).where(PositionRecord.patient_id == patient_id,
                                                     col(PositionRecord.t) >= since)
                        .order_by(col(PositionRecord.t).desc()).limit(limit)).all()
    return [position_dict(r) for r in reversed(rows)]
