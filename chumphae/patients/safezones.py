"""Assigning walking routes and safe places to a patient: a new, versioned safe zone.

The volunteer picks route and landmark codes on the tax map; the zone is
rebuilt by the map engineer's `build_zone` (home parcel + buffered routes +
places, home only at night) and stored as the next version by `save_zone`.
What is not said is kept from the zone in force (or the patient's home), so
adding one route does not drop the temple.

Also the zone as GeoJSON (day, night, and the routes it was built from): the
one shape the app and the caregiver page read.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import shapely
from shapely.geometry import mapping
from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.map.geojson import PRECISION_DEG
from chumphae.map.shared import current_layers
from chumphae.map.zones import Zone, ZoneBuildError, ZoneSpec
from chumphae.map.zonestore import save_zone, spec_for_patient
from chumphae.models import MapFeature, Patient, SafeZone, User

__all__ = ["ZoneBuildError", "active_row", "assign_zone", "zone_geojson"]


def active_row(session: Session, patient_id: int) -> SafeZone | None:
    return session.exec(select(SafeZone).where(SafeZone.patient_id == patient_id, col(SafeZone.active))
                        .order_by(col(SafeZone.version).desc())).first()


def assign_zone(session: Session, *, user: User, patient: Patient, changes: dict[str, Any],
                route: str | None = None) -> tuple[SafeZone, Zone]:
    """Merge `changes` (route_codes, place_codes, margin_m, tolerance_m, night) into the spec in force; save."""
    assert patient.id is not None
    layers = current_layers(session)
    if layers is None:
        raise ZoneBuildError("no tax map is loaded / ยังไม่มีแผนที่ภาษี")
    row = active_row(session, patient.id)
    base = dict(row.spec) if row is not None else spec_for_patient(patient).to_json()
    merged = {**base, **{k: v for k, v in changes.items() if k != "night"}}
    if "night" in changes:
        night = changes["night"]
        merged["schedules"] = {} if night is None else {"night": {**night, "only": "home"}}
    spec = ZoneSpec.from_json(merged)
    saved, zone = save_zone(session, patient_id=patient.id, spec=spec, layers=layers, created_by=user.id)
    audit.record(session, user=user, action="update", entity="safe_zone", entity_id=saved.id,
                 patient_id=patient.id, route=route,
                 detail={"version": saved.version, "routes": len(spec.route_codes), "places": len(spec.place_codes)})
    return saved, zone


def _geom(wkb: bytes) -> dict[str, Any]:
    return mapping(shapely.set_precision(shapely.from_wkb(wkb), PRECISION_DEG))  # type: ignore[no-any-return]


def zone_geojson(session: Session, *, patient_id: int) -> tuple[dict[str, Any], str, datetime | None]:
    """The active zone as a FeatureCollection, its ETag (hash of the content) and when it was made."""
    row = active_row(session, patient_id)
    features: list[dict[str, Any]] = []
    spec: dict[str, Any] = {}
    if row is not None:
        spec = dict(row.spec or {})
        features.append({"type": "Feature", "properties": {"kind": "zone_day", "version": row.version},
                         "geometry": _geom(row.day_wkb)})
        if row.night_wkb:
            features.append({"type": "Feature", "properties": {"kind": "zone_night", "version": row.version,
                                                               "schedule": (spec.get("schedules") or {}).get("night")},
                             "geometry": _geom(row.night_wkb)})
        codes = list(spec.get("route_codes") or [])
        if codes:
            t = MapFeature.__table__  # type: ignore[attr-defined]
            found = session.connection().execute(
                select(t.c.code, t.c.name_th, t.c.name_en, t.c.geom_wkb)
                .where(t.c.layer == "routes", t.c.code.in_(codes)).order_by(t.c.code)).all()
            for code, th, en, wkb in found:
                features.append({"type": "Feature", "id": code,
                                 "properties": {"kind": "route", "code": code, "name_th": th, "name_en": en},
                                 "geometry": _geom(wkb)})
    spec_out = {k: v for k, v in spec.items() if k != "home_point"}  # no exact home point in a shared view
    doc = {"type": "FeatureCollection", "patient_id": patient_id,
           "version": row.version if row else None, "spec": spec_out, "features": features}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode())
    return doc, f'"z{digest.hexdigest()[:24]}"', last_modified(session, row) if row else None


def last_modified(session: Session, row: SafeZone) -> datetime:
    """The zone version's `Last-Modified`, whole seconds (as HTTP has it), later than every earlier version's:
    two versions saved within one second had the same one, so `If-Modified-Since` with the first's answered
    304 to a client holding the old zone. A version saved in the second of the one before it takes the next."""
    times = session.exec(select(SafeZone.created_at).where(SafeZone.patient_id == row.patient_id,
                                                           SafeZone.version <= row.version)
                         .order_by(col(SafeZone.version))).all()
    stamp: datetime | None = None
    for t in times:
        whole = t.replace(microsecond=0)
        stamp = whole if stamp is None or whole > stamp else stamp + timedelta(seconds=1)
    return stamp or row.created_at.replace(microsecond=0)
