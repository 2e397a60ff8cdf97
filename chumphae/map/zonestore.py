"""Safe zones in the database: each change is a new version; the newest is active.

Alerts record the zone version they were judged against, so an old alert can
be explained with the zone that was in force then, not the one in force now.
"""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, update
from sqlmodel import Session, select

from chumphae.map.crs import Metric
from chumphae.map.layers import MapLayers
from chumphae.map.zones import Zone, ZoneSpec, build_zone
from chumphae.models import Patient, SafeZone
from chumphae.timeutil import utcnow


def spec_for_patient(patient: Patient, **overrides: object) -> ZoneSpec:
    """A default spec from what the patient record knows about the home."""
    point = (patient.home_lon, patient.home_lat) if patient.home_lon is not None and patient.home_lat is not None else None
    base = ZoneSpec(home_parcel_code=patient.home_parcel_code, home_building_code=patient.home_building_code,
                    home_point=point)
    return ZoneSpec.from_json({**base.to_json(), **overrides})


def save_zone(session: Session, *, patient_id: int, spec: ZoneSpec, layers: MapLayers,
              created_by: int | None = None) -> tuple[SafeZone, Zone]:
    """Build the zone, store it as the next version and make it the active one."""
    zone = build_zone(layers, spec, patient_id=patient_id)
    last = session.exec(select(func.max(SafeZone.version)).where(SafeZone.patient_id == patient_id)).one()
    version = int(last or 0) + 1
    session.exec(update(SafeZone).where(SafeZone.patient_id == patient_id, SafeZone.active)  # type: ignore[arg-type]
                 .values(active=False))
    metric = layers.metric
    row = SafeZone(patient_id=patient_id, version=version, spec=spec.to_json(),
                   day_wkb=shapely.to_wkb(metric.to_wgs84(zone.day)),
                   night_wkb=shapely.to_wkb(metric.to_wgs84(zone.night)) if zone.night is not None else None,
                   created_at=utcnow(), created_by=created_by, active=True)
    session.add(row)
    session.flush()
    return row, Zone(spec=zone.spec, metric=metric, day=zone.day, night=zone.night, patient_id=patient_id,
                     version=version, warnings=zone.warnings)


def zone_from_wgs84(day: BaseGeometry, night: BaseGeometry | None, spec: ZoneSpec, *,
                    patient_id: int | None = None, version: int | None = None,
                    metric: Metric | None = None) -> Zone:
    """A matchable zone from WGS 84 geometry (a stored row, or a zone shipped to a gateway as GeoJSON)."""
    metric = metric or Metric.for_bounds(*day.bounds)
    return Zone(spec=spec, metric=metric, day=metric.to_metric(day),
                night=metric.to_metric(night) if night is not None else None,
                patient_id=patient_id, version=version)


def zone_from_row(row: SafeZone, metric: Metric | None = None) -> Zone:
    """The stored geometry as it was built (not rebuilt from today's map)."""
    night = shapely.from_wkb(row.night_wkb) if row.night_wkb else None
    return zone_from_wgs84(shapely.from_wkb(row.day_wkb), night, ZoneSpec.from_json(dict(row.spec)),
                           patient_id=row.patient_id, version=row.version, metric=metric)


def active_zone(session: Session, patient_id: int, metric: Metric | None = None) -> Zone | None:
    row = session.exec(select(SafeZone).where(SafeZone.patient_id == patient_id, SafeZone.active)
                       .order_by(SafeZone.version.desc())).first()  # type: ignore[attr-defined]
    return zone_from_row(row, metric) if row else None


def active_zones(session: Session, metric: Metric | None = None) -> dict[int, Zone]:
    """Every patient's active zone (what a matcher loads at start)."""
    rows = session.exec(select(SafeZone).where(SafeZone.active)).all()
    return {r.patient_id: zone_from_row(r, metric) for r in rows}


def zone_history(session: Session, patient_id: int) -> list[SafeZone]:
    return list(session.exec(select(SafeZone).where(SafeZone.patient_id == patient_id)
                             .order_by(SafeZone.version)).all())  # type: ignore[arg-type]
