"""Search mode: volunteers' phones hear a missing patient's band; the backend places the band.

Each sighting is the phone's own GPS fix (with its accuracy) and the RSSI at
which it heard the band. The phone is a receiver that happens to move: every
sighting becomes a receiver at the phone's position, and the same locate step
the gateways use (`gateway.locate.Locator`: IQR median, log-distance,
multilateration with three or more spots, proximity otherwise) turns a window
of sightings into a Position. GPS error adds to ranging error, so the phone's
accuracy is added to the uncertainty. The Position then goes through the same
match step (`chumphae.map.match.Matcher` against the active safe zone), is
stored with source "search" and appears on the caregivers' live feed.

A walking searcher gives spots around the band, which is what multilateration
needs; a standing one gives "within ~d m of me", which is still worth sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from chumphae.feed import log as feed_log
from chumphae.ingest.service import position_dict
from chumphae.map.match import Matcher
from chumphae.map.zonestore import active_zone
from chumphae.models import PositionRecord, Wristband
from chumphae.timeutil import as_utc, utcnow
from chumphae.values import Match, Position, PositionSource
from gateway.locate import Locator
from gateway.siteconfig import Receiver

WINDOW_S = 60.0  # sightings this close in time are taken to see the band in one place
PHONE_P1M_DBM = -59.0  # RSSI at 1 m for a phone when the band states no tx power (phones vary ±6 dB)
PHONE_PATH_LOSS_N = 2.7


@dataclass(frozen=True, slots=True)
class Sighting:
    """The phone heard the band at `rssi` while it stood at (lat, lon) ± accuracy_m."""

    t: datetime
    lat: float
    lon: float
    accuracy_m: float
    rssi: int
    tx_power: int | None = None  # the band's calibrated RSSI at 1 m, when its frame says


def windows(sightings: Sequence[Sighting], window_s: float = WINDOW_S) -> list[list[Sighting]]:
    """Time-ordered groups, each spanning at most `window_s`."""
    out: list[list[Sighting]] = []
    for s in sorted(sightings, key=lambda s: as_utc(s.t)):
        if out and (as_utc(s.t) - as_utc(out[-1][0].t)).total_seconds() <= window_s:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def locate_window(address: str, group: Sequence[Sighting]) -> Position:
    """One Position from one window of sightings, through gateway.locate.

    Sightings from about the same spot (same 1e-4° cell, ~11 m) are one
    receiver with several samples, so a phone standing still is a receiver
    whose RSSI gets the locator's median, not three receivers at one point.
    """
    spots: dict[tuple[float, float, float], str] = {}
    receivers: list[Receiver] = []
    heard: list[tuple[str, Sighting]] = []
    for s in group:
        p1m = float(s.tx_power) if s.tx_power is not None else PHONE_P1M_DBM
        key = (round(s.lat, 4), round(s.lon, 4), p1m)
        if key not in spots:
            spots[key] = f"phone-{len(spots)}"
            receivers.append(Receiver(id=spots[key], lat=s.lat, lon=s.lon, p1m_dbm=p1m,
                                      path_loss_n=PHONE_PATH_LOSS_N))
        heard.append((spots[key], s))
    locator = Locator(receivers, window_s=WINDOW_S + 1.0)
    t0 = as_utc(group[0].t)
    for rid, s in heard:
        locator.observe(address, rid, s.rssi, as_utc(s.t), (as_utc(s.t) - t0).total_seconds())
    now = (as_utc(group[-1].t) - t0).total_seconds()
    pos = locator.estimate(address, now)
    assert pos is not None  # every receiver was just observed
    gps = sorted(s.accuracy_m for s in group)[len(group) // 2]
    return replace(pos, t=as_utc(group[-1].t), source=PositionSource.SEARCH,
                   uncertainty_m=round(pos.uncertainty_m + gps, 1), receivers=len(receivers))


@dataclass(frozen=True, slots=True)
class SearchResult:
    row: PositionRecord
    match: Match | None


def record_sightings(session: Session, *, band: Wristband, sightings: Sequence[Sighting],
                     matcher: Matcher | None) -> list[SearchResult]:
    """Locate, match, store and publish; one position per window of sightings."""
    assert band.patient_id is not None
    zone = active_zone(session, band.patient_id, matcher.layers.metric) if matcher is not None else None
    newest = session.exec(select(func.max(PositionRecord.t)).where(PositionRecord.patient_id == band.patient_id)).one()
    now = utcnow()
    out = []
    for group in windows(sightings):
        pos = locate_window(band.address, group)
        m = matcher.match(pos, zone) if matcher is not None else None
        place = m.place if m is not None else None
        row = PositionRecord(
            patient_id=band.patient_id, band_id=band.id, t=pos.t, lat=pos.lat, lon=pos.lon,
            uncertainty_m=pos.uncertainty_m, source=PositionSource.SEARCH.value, in_coverage=True,
            zone_status=m.status.value if m else None, zone_version=m.zone_version if m else None,
            distance_to_boundary_m=m.distance_to_boundary_m if m else None,
            parcel_code=place.parcel_code if place else None, building_code=place.building_code if place else None,
            worn=band.worn, battery_pct=band.battery_pct, received_at=now)
        session.add(row)
        session.flush()
        if newest is None or pos.t >= as_utc(newest):
            newest = pos.t
            payload = position_dict(row, description_th=place.description_th if place else None,
                                    description_en=place.description_en if place else None)
            feed_log.append(session, kind="position", patient_id=band.patient_id, payload={"position": payload})
        out.append(SearchResult(row, m))
    last = max(as_utc(s.t) for s in sightings)
    if band.last_seen_at is None or last >= as_utc(band.last_seen_at):
        band.last_seen_at = last
        band.last_rssi = max(sightings, key=lambda s: as_utc(s.t)).rssi
        session.add(band)
    session.flush()
    return out
