"""The site configuration a gateway fetches (protocol §2): bands and keys, receivers, zones.

Built from the database for the gateway's own site only; it holds band keys,
so it is served only to that site's gateways. No names, no national ID. The
ETag is a hash of the document, so any change of a band, patient home, zone
or receiver changes it; the gateway socket compares it to send
`config_changed`. That periodic check may reuse the site's part of the
document (`site_max_age_s`), so the gateways of one site share one build.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, cast

import shapely
from shapely.geometry import mapping
from sqlmodel import Session, col, select

from chumphae.models import Gateway, MapFeature, Patient, SafeZone, Wristband

EXTENT_PAD_DEG = 0.005  # about 500 m around what the site knows


def _geojson(wkb: bytes | None) -> dict[str, Any] | None:
    return None if wkb is None else dict(mapping(shapely.from_wkb(wkb)))


_site_lock = threading.Lock()
_site_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


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
                      "thresholds": dict(p.thresholds or {}),
                      "home": {"lat": p.home_lat, "lon": p.home_lon} if p.home_lat is not None else None}
                     for p in patients],
        "zones": [{"patient_id": z.patient_id, "version": z.version,
                   "geometry": _geojson(z.day_wkb), "night_geometry": _geojson(z.night_wkb)} for z in zones],
        "routes": routes,
    }


def _site_cached(session: Session, site: str, max_age_s: float) -> dict[str, Any]:
    """The site's part, rebuilt at most once per `max_age_s` for all the site's gateways (0: always)."""
    engine = session.get_bind().engine
    key = (f"{engine.url}#{id(engine)}", site)
    if max_age_s > 0:
        with _site_lock:
            hit = _site_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age_s:
            return hit[1]
    part = _site_part(session, site)
    with _site_lock:
        _site_cache[key] = (time.monotonic(), part)
    return part


def build(session: Session, gateway: Gateway, *, site_max_age_s: float = 0.0) -> dict[str, Any]:
    """The JSON document for `gateway` (deterministic order, so the ETag is stable).

    `site_max_age_s` > 0 lets the socket's periodic ETag check reuse the site's part built by
    another gateway of the same site within that many seconds; the REST route always builds afresh.
    """
    part = _site_cached(session, gateway.site, site_max_age_s)
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


def config_and_etag(session: Session, gateway_id: int, *, site_max_age_s: float = 0.0
                    ) -> tuple[dict[str, Any], str]:
    gateway = session.get(Gateway, gateway_id)
    assert gateway is not None
    doc = build(session, gateway, site_max_age_s=site_max_age_s)
    return doc, etag(doc)
