"""Storing a batch of gateway messages: once per id, in arrival order, in one transaction.

The caller acknowledges the returned ids only after this transaction
commits (protocol §3.2: ack after commit). Each message runs in a savepoint,
so one that breaks a rule (a band of another site) is refused on its own
while the rest of the batch is kept. Heartbeats and hellos are not
deduplicated: they only overwrite the gateway's latest health.

Order per band: positions are stored with their true time; a band's current
state (last seen, battery, worn) only moves forward in time, so a message
re-sent after a reconnect never overwrites newer news.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chumphae.alert import service as alerts
from chumphae.alert.service import AlertChange, AlertInput
from chumphae.feed import log as feed_log
from chumphae.map.shared import place_at
from chumphae.ingest.envelope import AlertBody, HeartbeatBody, HelloBody, Message, PositionBody, ReadingBody, Rejection
from chumphae.models import Alert, AlertStatus, Gateway, IngestedMessage, Outcome, PositionRecord, Wristband
from chumphae.timeutil import as_utc, utcnow
from chumphae.values import AlertType

UNQUEUED = frozenset({"hello", "heartbeat"})


class Refused(Exception):
    """A well-formed message this gateway may not send (answered with `bad_body`)."""


@dataclass
class BatchResult:
    acked: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    changes: list[AlertChange] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0


def ingest_batch(session: Session, *, gateway_id: int, messages: list[Message],
                 now: datetime | None = None) -> BatchResult:
    """Store `messages` from one gateway; the caller commits, then acks `result.acked`."""
    now = now or utcnow()
    gateway = session.get(Gateway, gateway_id)
    assert gateway is not None
    result = BatchResult()
    ids = [m.id for m in messages if m.type not in UNQUEUED]
    seen = set(session.exec(select(IngestedMessage.msg_id).where(col(IngestedMessage.msg_id).in_(ids))).all()) \
        if ids else set()
    bands: dict[str, Wristband | None] = {}
    for msg in messages:
        if msg.type in UNQUEUED:
            _health(gateway, msg)
            result.acked.append(msg.id)
            continue
        if msg.id in seen:
            result.duplicates += 1
            result.acked.append(msg.id)
            continue
        try:
            with session.begin_nested():
                session.add(IngestedMessage(msg_id=msg.id, gateway_id=gateway_id, kind=msg.type, received_at=now))
                session.flush()
                change = _store(session, gateway, msg, bands, now)
        except IntegrityError:  # the same id stored a moment ago through another connection
            result.duplicates += 1
            result.acked.append(msg.id)
            continue
        except Refused as exc:
            result.rejected.append(Rejection(msg.id, "bad_body", str(exc)))
            continue
        seen.add(msg.id)
        result.stored += 1
        result.acked.append(msg.id)
        if change is not None:
            result.changes.append(change)
    gateway.last_heartbeat_at = now  # the gateway's last message time, for gateway_offline
    if result.rejected:
        health = dict(gateway.health or {})
        health["backend_rejected"] = int(health.get("backend_rejected", 0) or 0) + len(result.rejected)
        gateway.health = health
    session.add(gateway)
    result.changes.extend(_back_online(session, gateway, now))
    session.flush()
    return result


def _health(gateway: Gateway, msg: Message) -> None:
    health = dict(gateway.health or {})
    if isinstance(msg.body, HeartbeatBody):
        keep = {k: v for k, v in health.items() if k in ("backend_rejected", "hello")}
        health = {**keep, **msg.body.model_dump(exclude_none=True)}
    elif isinstance(msg.body, HelloBody):
        health["hello"] = msg.body.model_dump(exclude_none=True)
    gateway.health = health


def _band(session: Session, gateway: Gateway, address: str, cache: dict[str, Wristband | None]) -> Wristband:
    key = address.upper()
    if key not in cache:
        cache[key] = session.exec(select(Wristband).where(Wristband.address == key)).first()
    band = cache[key]
    if band is None or band.site != gateway.site or not band.active:
        raise Refused(f"band {key} is not an active band of site {gateway.site}")
    return band


def _store(session: Session, gateway: Gateway, msg: Message, bands: dict[str, Wristband | None],
           now: datetime) -> AlertChange | None:
    body = msg.body
    if isinstance(body, PositionBody):
        _position(session, gateway, _band(session, gateway, body.address, bands), body, now)
    elif isinstance(body, ReadingBody):
        _reading(session, gateway, _band(session, gateway, body.address, bands), body)
    elif isinstance(body, AlertBody):
        return alerts.raise_alert(session, alert=_alert_input(session, gateway, body, bands), now=now)
    return None


def _moves_forward(band: Wristband, t: datetime) -> bool:
    return band.last_seen_at is None or t >= as_utc(band.last_seen_at)


def _place(session: Session, given: Any, lat: float | None, lon: float | None) -> Any:
    """The gateway's place if it gave one in words, else ours from the tax map."""
    if given is not None and given.description_th:
        return given
    if lat is None or lon is None:
        return given
    return place_at(session, lon, lat) or given


def _position(session: Session, gateway: Gateway, band: Wristband, b: PositionBody, now: datetime) -> None:
    m = b.match
    place = _place(session, m.place if m else None, b.lat, b.lon)
    newest = None
    if band.patient_id is not None:
        newest = session.exec(select(func.max(PositionRecord.t))
                              .where(PositionRecord.patient_id == band.patient_id)).one()
    row = PositionRecord(
        patient_id=band.patient_id, band_id=band.id, gateway_id=gateway.id, t=b.t, lat=b.lat, lon=b.lon,
        uncertainty_m=b.uncertainty_m, source=b.source, in_coverage=b.in_coverage,
        zone_status=m.status if m else None, zone_version=m.zone_version if m else None,
        distance_to_boundary_m=m.distance_to_boundary_m if m else None,
        parcel_code=place.parcel_code if place else None, building_code=place.building_code if place else None,
        worn=band.worn, battery_pct=band.battery_pct, received_at=now,
    )
    session.add(row)
    if _moves_forward(band, b.t):
        band.last_seen_at, band.last_gateway_id = b.t, gateway.id
        session.add(band)
    session.flush()
    if band.patient_id is not None and (newest is None or b.t >= as_utc(newest)):
        payload = position_dict(row, description_th=place.description_th if place else None,
                                description_en=place.description_en if place else None)
        feed_log.append(session, kind="position", patient_id=band.patient_id, payload={"position": payload})


def position_dict(row: PositionRecord, *, description_th: str | None = None,
                  description_en: str | None = None) -> dict[str, Any]:
    """A position as the feed shows it (also used for the snapshot)."""
    from chumphae.alert.render import iso
    from chumphae.timeutil import iso_bangkok

    return {
        "patient_id": row.patient_id, "t": iso(row.t), "t_local": iso_bangkok(row.t),
        "lat": row.lat, "lon": row.lon, "uncertainty_m": row.uncertainty_m, "source": row.source,
        "in_coverage": row.in_coverage, "zone_status": row.zone_status, "zone_version": row.zone_version,
        "parcel_code": row.parcel_code, "building_code": row.building_code,
        "description_th": description_th, "description_en": description_en,
    }


def _reading(session: Session, gateway: Gateway, band: Wristband, b: ReadingBody) -> None:
    if not _moves_forward(band, b.t):
        return  # older than what we know: the band's state does not go back in time
    band.last_seen_at, band.last_gateway_id = b.t, gateway.id
    if b.rssi is not None:
        band.last_rssi = b.rssi
    if b.seq is not None:
        band.last_seq = b.seq
    for name in ("battery_pct", "battery_mv", "worn", "charging"):
        value = getattr(b, name)
        if value is not None:
            setattr(band, name, value)
    session.add(band)


def _alert_input(session: Session, gateway: Gateway, b: AlertBody, bands: dict[str, Wristband | None]) -> AlertInput:
    band = _band(session, gateway, b.address, bands) if b.address else None
    if band is not None:
        patient_id = band.patient_id
    elif b.patient_id is not None:  # no band named: the patient must wear one of this site's bands
        ok = session.exec(select(Wristband.id).where(Wristband.patient_id == b.patient_id,
                                                     Wristband.site == gateway.site)).first()
        if ok is None:
            raise Refused(f"patient {b.patient_id} has no band at site {gateway.site}")
        patient_id = b.patient_id
    else:
        raise Refused("alert names neither a band nor a patient")
    if patient_id is None:
        raise Refused("band is not given to a patient")
    place = _place(session, b.match.place if b.match else None, b.lat, b.lon)
    details = dict(b.details)
    if b.severity:
        details["gateway_severity"] = b.severity
    return AlertInput(
        type=b.type.value, t=b.t, patient_id=patient_id, gateway_id=gateway.id,
        band_id=band.id if band else None, lat=b.lat, lon=b.lon, uncertainty_m=b.uncertainty_m,
        parcel_code=place.parcel_code if place else None, building_code=place.building_code if place else None,
        description_th=place.description_th if place else None,
        description_en=place.description_en if place else None,
        zone_version=b.match.zone_version if b.match else None, confidence=b.confidence, details=details,
    )


def _back_online(session: Session, gateway: Gateway, now: datetime) -> list[AlertChange]:
    """A gateway that speaks again clears its own `gateway_offline` alert."""
    rows = session.exec(select(Alert).where(col(Alert.patient_id).is_(None), Alert.gateway_id == gateway.id,
                                            Alert.type == AlertType.GATEWAY_OFFLINE.value,
                                            Alert.status != AlertStatus.RESOLVED)).all()
    changes = []
    for row in rows:
        assert row.id is not None
        _, change = alerts.resolve(session, user=None, alert_id=row.id, outcome=Outcome.DEVICE_FIXED,
                                   note="เกตเวย์กลับมาออนไลน์ / gateway back online", now=now)
        changes.append(change)
    return changes
