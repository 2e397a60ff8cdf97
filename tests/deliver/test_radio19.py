"""radio19: what the care manager's LINE message says of a gateway's alert (docs/delivery.md).

Before: a gateway's alert was worded as a patient's: "ผู้ป่วย: gw-…" ("Patient: gw-…") and "พบล่าสุด:
ไม่ทราบตำแหน่ง ดูแผนที่" ("Last seen: unknown, see the map"), and nothing said what was wrong with the gateway.
Now it names the gateway and carries the alert's own summary (its radio, since when)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.alert import radio
from chumphae.alert.escalate import ClockOptions, tick
from chumphae.auth.service import create_gateway
from tests.conftest import World
from tests.deliver.conftest import LINE_IDS, T0, Clock, Fakes
from tests.deliver.test_worker import notices, worker


async def test_a_gateway_radio_alert_reaches_the_care_manager_naming_the_gateway_and_its_radio(
        engine: Engine, district: World, fakes: Fakes) -> None:
    with Session(engine) as s:
        gw, _ = create_gateway(s, slug="gw-ban-deaf", name="หูหนวก", site="ban-deaf")
        gw.last_heartbeat_at = T0
        gw.health = {"scanner_state": "failed", "adverts_per_s": 0.0, "scanner_restarts": 3,
                     radio.SINCE: (T0 - timedelta(seconds=200)).isoformat(), radio.LAST: T0.isoformat()}
        s.add(gw)
        s.commit()
    changes = tick(engine, now=T0 + timedelta(seconds=1), options=ClockOptions(radio_dead_after_s=180))
    assert [(c.type, c.event, c.patient_id) for c in changes] == [("gateway_radio", "opened", None)]
    async with worker(engine, fakes, Clock(T0 + timedelta(seconds=1))) as w:
        await w.run_once()
    line = [n for n in notices(engine, channel="line") if n.alert_id == changes[0].alert_id]
    assert [n.status for n in line] == ["sent"]
    hits = [h for h in fakes.line.hits if h.body["to"] == LINE_IDS["care_manager"]]
    text = hits[-1].body["messages"][0]["text"]
    assert text.splitlines()[0] == "วิทยุของเกตเวย์ไม่ทำงาน (ระดับปานกลาง)"
    assert "เกตเวย์: gw-ban-deaf" in text and "ผู้ป่วย:" not in text and "พบล่าสุด" not in text
    assert "วิทยุบลูทูธไม่ทำงานตั้งแต่ 09:56 น." in text  # the summary: since when, Bangkok time
    assert not [h for h in fakes.line.hits if h.body["to"] in (LINE_IDS["caregiver"], LINE_IDS["volunteer"])]
