"""review19be: a `gateway_radio` whose deaf run crossed the rule across a lost link is raised, not swallowed.

The deaf run survives a reconnection (docs/gateway-protocol.md §8), so a gateway deaf at 10:00, cut off at
10:01 and back (still deaf) at 11:00 meets the rule at 11:00 with a run that "spans" an hour: the alert's time
is the run's start + 180 s (10:03), an hour before the clock sees it. When an earlier `gateway_radio` of the
gateway (opened before the run, left open by a quiet `scanning` heartbeat) was resolved by hand in between
(10:30), that time fell before the resolution and the alert was taken as late history of the resolved one: no
alert for a dead radio, and one more `late_event` on the old alert at every clock tick (every 5 s).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import Session, col, select
from websockets.asyncio.client import connect

from chumphae.alert import escalate, radio
from chumphae.alert import service as alerts
from chumphae.alert.escalate import ClockOptions
from chumphae.alert.service import AlertInput
from chumphae.ingest.connection import IngestOptions
from chumphae.models import Alert, AlertEvent, Gateway
from chumphae.timeutil import utcnow
from tests.feed.liveserver import live_server, recv_json
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import url
from tests.ingest.test_radio19 import beat

AFTER_S = 180.0


def test_a_dead_radio_met_across_a_lost_link_after_a_hand_resolution_is_raised(both_site: Site) -> None:
    engine = both_site.world.engine
    now = utcnow()
    with Session(engine) as s:
        old = alerts.raise_alert(s, now=now - timedelta(hours=2), alert=AlertInput(
            type="gateway_radio", t=now - timedelta(hours=2), patient_id=None, gateway_id=both_site.gateway_id))
        alerts.resolve(s, user=None, alert_id=old.alert_id, outcome="other", note="gone to look",
                       now=now - timedelta(minutes=30))
        gw = s.get(Gateway, both_site.gateway_id)
        assert gw is not None
        gw.health = {"scanner_state": "failed", "adverts_per_s": 0.0,
                     radio.SINCE: (now - timedelta(minutes=60)).isoformat(), radio.LAST: now.isoformat()}
        gw.last_heartbeat_at = now
        s.add(gw)
        s.commit()
    for k in range(3):
        escalate.tick(engine, now=now + timedelta(seconds=5 * k), options=ClockOptions(radio_dead_after_s=AFTER_S))
    with Session(engine) as s:
        rows = list(s.exec(select(Alert).where(Alert.type == "gateway_radio").order_by(col(Alert.id))).all())
        late = s.exec(select(AlertEvent).where(AlertEvent.alert_id == old.alert_id,
                                               AlertEvent.kind == "late_event")).all()
    assert [r.status for r in rows] == ["resolved", "open"]  # the dead radio told, once
    assert rows[1].count == 1
    assert late == []  # not filed as history of the old one, tick after tick


async def test_a_heartbeat_whose_scanner_state_is_not_text_is_stored_not_refused(site: Site) -> None:
    """`scanner_state` is the gateway's own field, kept whole (the heartbeat allows any extra field): a gateway
    that says it per adapter (`{"hci0": "failed"}`) or a list had its heartbeat refused as `unstorable`
    (`TypeError: unhashable type` in the deaf test), so its health was never stored and, at a quiet site
    sending only heartbeats, it looked silent: `gateway_offline` for a connected gateway. Not called deaf."""
    with live_server(ingest_options=IngestOptions(config_check_s=5),
                     clock_options=ClockOptions(tick_s=0.1, radio_dead_after_s=0.3)) as srv:
        async with connect(url(srv), additional_headers=site.auth()) as ws:
            await recv_json(ws)  # welcome
            for state in ({"hci0": "failed"}, ["failed"], {"hci0": "failed"}, ["failed"]):
                await beat(ws, {"scanner_state": state, "adverts_per_s": 0.0})  # acked, not refused
                await asyncio.sleep(0.2)
    with Session(site.world.engine) as s:
        gw = s.get(Gateway, site.gateway_id)
        assert gw is not None and gw.health is not None
        assert gw.health["scanner_state"] == ["failed"] and radio.SINCE not in gw.health
        assert s.exec(select(Alert).where(Alert.type == "gateway_radio")).all() == []
