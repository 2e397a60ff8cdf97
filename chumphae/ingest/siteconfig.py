"""The site configuration a gateway fetches (protocol §2): bands and keys, receivers, zones.

Built from the database for the gateway's own site only; it holds band keys,
so it is served only to that site's gateways. No names, no national ID. The
ETag is a hash of the document, so any change of a band, patient home, zone
or receiver changes it; the gateway socket compares it to send
`config_changed`. That periodic check first reads `config_version` (one row
that database triggers bump on every change of what the document is built
from: migration 0006): while it has not moved, nothing is built. When it
moved, the site's part is built once per version for all the site's gateways.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, cast

import shapely
from shapely.geometry import mapping
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from chumphae.models import Gateway, MapFeature, Patient, SafeZone, Wristband
from chumphae.models.devices import ConfigVersion

EXTENT_PAD_DEG = 0.005  # about 500 m around what the site knows


def _geojson(wkb: bytes | None) -> dict[str, Any] | None:
    return None if wkb is None else dict(mapping(shapely.from_wkb(wkb)))


_site_lock = threading.Lock()
_site_cache: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}


def _with_night(own: dict[str, Any] | None, night: object) -> dict[str, Any]:
    """The patient's own threshold overrides, with the hours of the zone's night rule (`PUT …/zone` `night`,
    Asia/Bangkok) as `night_start` / `night_end`: the gateway judges night by these (matcher and dwell alike),
    so the hours a volunteer sets are the hours it keeps. Without a night rule the overrides go as they are."""
    out = dict(own or {})
    if isinstance(night, dict) and isinstance(night.get("start"), str) and isinstance(night.get("end"), str):
        out["night_start"], out["night_end"] = night["start"], night["end"]
    return out


def _site_part(session: Session, site: str) -> dict[str, Any]:
    """What every gateway of `site` gets alike: receivers, bands, patients, zones, routes."""
    bands = session.exec(select(Wristband).where(Wristband.site == site, Wristband.active)
                         .order_by(col(Wristband.address))).all()
    patient_ids = sorted({b.patient_id for b in bands if b.patient_id is not None})
    patients = session.exec(select(Patient).where(col(Patient.id).in_(patient_ids), Patient.active)
                            .order_by(col(Patient.id))).all() if patient_ids else []
    zones = session.exec(select(SafeZone).where(col(SafeZone.patient_id).in_(patient_ids), SafeZone.active)
                         .order_by(col(SafeZone.patient_id))).all() if patient_ids else []
    gateways = session.exec(select(Gateway).where(Gateway.site == site, Gateway.active)
                            .order_by(col(Gateway.id))).all()
    receivers = [dict(r) for g in gateways for r in (g.receivers or [])]
    nights: dict[int | None, object] = {
        z.patient_id: cast(dict[str, Any], (z.spec or {}).get("schedules") or {}).get("night") for z in zones}
    route_codes: dict[str, list[int]] = {}  # a route walked by two patients is each one's route
    for z in zones:
        for code in cast(list[str], (z.spec or {}).get("route_codes") or []):
            walkers = route_codes.setdefault(code, [])
            if z.patient_id not in walkers:
                walkers.append(z.patient_id)
    routes = []
    if route_codes:
        features = session.exec(select(MapFeature).where(MapFeature.layer == "routes",
                                                         col(MapFeature.code).in_(sorted(route_codes)))
                                .order_by(col(MapFeature.code))).all()
        routes = [{"patient_id": pid, "code": f.code, "geometry": _geojson(f.geom_wkb)}
                  for f in features if f.code for pid in route_codes[f.code]]
    points = [(float(r["lat"]), float(r["lon"])) for r in receivers if "lat" in r and "lon" in r]  # type: ignore[arg-type]
    points += [(p.home_lat, p.home_lon) for p in patients if p.home_lat is not None and p.home_lon is not None]
    return {
        "points": points,
        "receivers": receivers,
        "bands": [{"address": b.address, "key_hex": b.key_hex, "patient_id": b.patient_id, "model": b.model}
                  for b in bands if b.key_hex],
        # Detection thresholds: group defaults from ADL / NHSO group, then the patient's own overrides.
        "patients": [{"id": p.id, "code": f"P-{p.id:03d}", "ltc_group": p.nhso_group, "adl_score": p.adl_score,
                      "thresholds": _with_night(p.thresholds, nights.get(p.id)),
                      "home": {"lat": p.home_lat, "lon": p.home_lon} if p.home_lat is not None else None}
                     for p in patients],
        "zones": [{"patient_id": z.patient_id, "version": z.version,
                   "geometry": _geojson(z.day_wkb), "night_geometry": _geojson(z.night_wkb)} for z in zones],
        "routes": routes,
    }


def _site_cached(session: Session, site: str, version: int | None) -> dict[str, Any]:
    """The site's part, built once per configuration version for all the site's gateways (None: always built).

    `version` must have been read before this builds: a change committed after the read moves the version,
    so the next check builds again."""
    engine = session.get_bind().engine
    key = (f"{engine.url}#{id(engine)}", site)
    if version is not None:
        with _site_lock:
            hit = _site_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
    part = _site_part(session, site)
    if version is not None:
        with _site_lock:
            _site_cache[key] = (version, part)
    return part


_CV = ConfigVersion.__table__  # type: ignore[attr-defined]
_VERSION = sa_select(_CV.c.version).where(_CV.c.id == 1)


def version(conn: Connection) -> int | None:
    """The configuration version (one read of one row); None if the row is missing (then always build)."""
    v = conn.execute(_VERSION).scalar()
    return None if v is None else int(v)


def build(session: Session, gateway: Gateway, *, version: int | None = None) -> dict[str, Any]:
    """The JSON document for `gateway` (deterministic order, so the ETag is stable).

    `version` (read before): the site's part may come from a build of the same configuration version for
    another gateway of the site; the REST route always builds afresh.
    """
    part = _site_cached(session, gateway.site, version)
    points = list(part["points"])
    if gateway.lat is not None and gateway.lon is not None:
        points.append((gateway.lat, gateway.lon))
    extent = None
    if points:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        extent = {"min_lat": min(lats) - EXTENT_PAD_DEG, "min_lon": min(lons) - EXTENT_PAD_DEG,
                  "max_lat": max(lats) + EXTENT_PAD_DEG, "max_lon": max(lons) + EXTENT_PAD_DEG}
    return {
        "site_id": gateway.site,
        "gateway_id": gateway.slug,
        "version": gateway.config_version,
        "extent": extent,
        "receivers": part["receivers"],
        "bands": part["bands"],
        "patients": part["patients"],
        "zones": part["zones"],
        "routes": part["routes"],
    }


def etag(doc: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'"{digest[:20]}"'


def config_and_etag(session: Session, gateway_id: int, *, version: int | None = None
                    ) -> tuple[dict[str, Any], str]:
    gateway = session.get(Gateway, gateway_id)
    assert gateway is not None
    doc = build(session, gateway, version=version)
    return doc, etag(doc)


def versioned_etag(session: Session, gateway_id: int, known: tuple[int | None, str] | None = None, *,
                   fresh: bool = False) -> tuple[int | None, str]:
    """(configuration version, ETag) for `gateway_id`; `known` (an earlier answer) is returned as it is while
    the version has not moved, so an unchanged configuration costs one read of one row. `fresh`: built from
    the tables whatever the version says."""
    v = version(session.connection())
    if known is not None and v is not None and known[0] == v and not fresh:
        return known
    return v, config_and_etag(session, gateway_id, version=None if fresh else v)[1]
