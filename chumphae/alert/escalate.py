"""The server-side clock: escalates unacknowledged alerts, notices silent gateways and deaf radios.

It runs in every backend process, but on PostgreSQL each tick first takes a
transaction advisory lock with `pg_try_advisory_xact_lock`: one process does
the tick, the others skip it, so two processes never raise the same
`gateway_offline` (or `gateway_radio`) twice. Rows to escalate are also locked with
`FOR UPDATE SKIP LOCKED`. Nothing here waits for new data to arrive.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.alert import radio
from chumphae.alert.service import AlertChange, AlertInput, escalate_due, raise_alert
from chumphae.config import get_settings
from chumphae.deliver.notify import dispatch
from chumphae.models import Alert, AlertStatus, Gateway
from chumphae.timeutil import to_bangkok, utcnow
from chumphae.values import AlertType

log = logging.getLogger(__name__)

TICK_LOCK_KEY = 4005_0002


@dataclass(frozen=True, slots=True)
class ClockOptions:
    tick_s: float = 5.0
    offline_after_s: float = 90.0  # the protocol's suggestion: six missed heartbeats
    # heartbeats saying the radio cannot scan for this long: `gateway_radio` (CHUMPHAE_RADIO_DEAD_AFTER_S)
    radio_dead_after_s: float = field(default_factory=lambda: get_settings().radio_dead_after_s)


def raise_offline(session: Session, *, now: datetime, after_s: float) -> list[AlertChange]:
    """A `gateway_offline` alert for each gateway heard before but silent for `after_s`."""
    cutoff = now - timedelta(seconds=after_s)
    silent = session.exec(select(Gateway).where(Gateway.active, col(Gateway.last_heartbeat_at).is_not(None),
                                                col(Gateway.last_heartbeat_at) < cutoff)).all()
    changes = []
    for g in silent:
        already = session.exec(select(Alert.id).where(col(Alert.patient_id).is_(None), Alert.gateway_id == g.id,
                                                      Alert.type == AlertType.GATEWAY_OFFLINE.value,
                                                      Alert.status != AlertStatus.RESOLVED)).first()
        if already is not None:
            continue
        assert g.last_heartbeat_at is not None
        changes.append(raise_alert(session, now=now, alert=AlertInput(
            type=AlertType.GATEWAY_OFFLINE.value, t=g.last_heartbeat_at + timedelta(seconds=after_s),
            patient_id=None, gateway_id=g.id, lat=g.lat, lon=g.lon,
            details={"gateway": g.slug, "site": g.site, "last_heard_at": g.last_heartbeat_at.isoformat(),
                     **offline_summary(g.slug, g.site, g.last_heartbeat_at)})))
    return changes


def raise_radio_dead(session: Session, *, now: datetime, after_s: float) -> list[AlertChange]:
    """A `gateway_radio` alert for each gateway whose heartbeats said for `after_s` its radio cannot scan.

    Once per outage: not while one is unresolved, nor again after one opened since the deaf run began
    (resolved by hand while the radio is still deaf)."""
    changes = []
    for g in session.exec(select(Gateway).where(Gateway.active)).all():
        span = radio.deaf_span(g.health)
        if span is None or span[1] < after_s:
            continue
        since = span[0]
        already = session.exec(select(Alert.id).where(
            col(Alert.patient_id).is_(None), Alert.gateway_id == g.id, Alert.type == AlertType.GATEWAY_RADIO.value,
            or_(col(Alert.status) != AlertStatus.RESOLVED, col(Alert.opened_at) >= since))).first()
        if already is not None:
            continue
        health = g.health or {}
        state = str(health.get("scanner_state"))
        t = since + timedelta(seconds=after_s)
        # The run survives a lost link, so it can meet the rule only when the gateway is back, its 180 s long
        # past: before an earlier outage's alert was resolved, that time made it late history of that alert
        # (nothing raised, a late_event every tick; review19be). Such a run is dated when the clock sees it.
        resolved = session.exec(select(func.max(Alert.resolved_at)).where(
            col(Alert.patient_id).is_(None), Alert.gateway_id == g.id, Alert.type == AlertType.GATEWAY_RADIO.value,
            Alert.status == AlertStatus.RESOLVED)).one()
        if resolved is not None and t <= resolved:
            t = now
        changes.append(raise_alert(session, now=now, alert=AlertInput(
            type=AlertType.GATEWAY_RADIO.value, t=t,
            patient_id=None, gateway_id=g.id, lat=g.lat, lon=g.lon,
            details={"gateway": g.slug, "site": g.site, "deaf_since": since.isoformat(), "scanner_state": state,
                     "scanner_restarts": health.get("scanner_restarts"), "last_error": health.get("last_error"),
                     **radio.summary(g.slug, g.site, since, state)})))
    return changes


def offline_summary(slug: str, site: str, last_heard_at: datetime) -> dict[str, str]:
    """The words to show (as every gateway-raised alert carries): which gateway, since when, Bangkok time."""
    since = to_bangkok(last_heard_at).strftime("%H:%M")
    return {"summary_th": f"เกตเวย์ {slug} ({site}) ขาดการติดต่อตั้งแต่ {since} น.: ผู้ป่วยในพื้นที่นี้อาจไม่ได้รับการเฝ้าดู",
            "summary_en": f"Gateway {slug} ({site}) silent since {since} (Bangkok time): "
                          "patients in its area may be unwatched"}


def tick(engine: Engine, *, now: datetime | None = None, options: ClockOptions = ClockOptions()) -> list[AlertChange]:
    """One turn of the clock, in its own transaction; notices go out after commit."""
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        if engine.dialect.name == "postgresql":
            got = session.exec(text("SELECT pg_try_advisory_xact_lock(:k)").bindparams(k=TICK_LOCK_KEY)).one()  # type: ignore[call-overload]
            if not got[0]:
                return []  # another process has this tick
        changes = escalate_due(session, now=now)
        changes += raise_offline(session, now=now, after_s=options.offline_after_s)
        changes += raise_radio_dead(session, now=now, after_s=options.radio_dead_after_s)
        session.commit()
    dispatch(engine, changes)
    return changes


async def run(engine: Engine, options: ClockOptions) -> None:
    """Tick forever (cancelled at shutdown); a failed tick is logged and retried next time."""
    while True:
        try:
            changes = await asyncio.to_thread(tick, engine, options=options)
            for c in changes:
                log.info("alert %d %s to level %d", c.alert_id, c.event, c.level)
        except Exception:
            log.exception("alert clock tick failed")
        await asyncio.sleep(options.tick_s)
