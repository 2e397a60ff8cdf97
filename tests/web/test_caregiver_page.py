"""The caregiver page in a real headless Chromium against the real backend on 127.0.0.1.

Alerts here are raised by the backend's own alert service (`chumphae.alert.service`,
what gateway ingest calls) from outside the server process, so they reach the page
through the real feed: feed_event row → the server's feed socket (it polls the log)
→ WebSocket → page. The full path from a simulated gateway is in
`test_demo_end_to_end.py`. Screenshots: tests/web/conftest.py SCREENSHOTS.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from chumphae.alert.service import AlertInput, raise_alert
from chumphae.db import make_engine
from chumphae.timeutil import utcnow
from tests.web.conftest import CARD, DESKTOP, PHONE, Stack, cards, open_page, settle_map, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def raise_in_backend(stack: Stack, *, patient_id: int, type: str, lat: float, lon: float) -> int:
    """Raise an alert exactly as ingest does (service call + commit), from another process."""
    engine = make_engine(f"sqlite:///{stack.data_dir / 'chumphae.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            change = raise_alert(session, alert=AlertInput(
                type=type, t=utcnow(), patient_id=patient_id, lat=lat, lon=lon, uncertainty_m=25.0,
                description_th="ห่างจากบ้าน 150 ม. ทางทิศตะวันออก", description_en="150 m east of home"))
            session.commit()
            return change.alert_id
    finally:
        engine.dispose()


def test_live_feed_ack_isolation_reconnect(browser: Any, stack: Stack) -> None:
    pid = int(stack.info["patient_id"])
    with stack.client("caregiver1") as c:
        patient = c.get(f"/api/v1/patients/{pid}").raise_for_status().json()
    lat, lon = patient["home_lat"] + 0.0002, patient["home_lon"] + 0.0014

    cg1 = open_page(browser, stack, "caregiver1", PHONE)       # caregiver of the patient, on a phone
    cg1b = open_page(browser, stack, "caregiver1b", DESKTOP)   # another caregiver of the same patient
    cg2 = open_page(browser, stack, "caregiver2", PHONE)       # caregiver of other patients only
    for page in (cg1, cg1b, cg2):
        page.wait_for_selector("[data-testid=no-alerts]")
    assert cg1.evaluate("window.__chumphae.beeps()") == 0

    # A wander alert arrives without a reload, rings (sound + notification) for the caregiver.
    wander_id = raise_in_backend(stack, patient_id=pid, type="wander", lat=lat, lon=lon)
    card = cards(cg1, alert_id=wander_id)
    card.wait_for(timeout=15_000)
    assert cg1.evaluate("window.__sameDocument") is True
    assert card.get_attribute("data-status") == "open"
    text = card.inner_text()
    assert "ออกนอกเขตปลอดภัย" in text and "ห่างจากบ้าน 150 ม." in text
    assert patient["name_th"] in text
    assert cg1.evaluate("window.__chumphae.beeps()") >= 1
    assert cg1.evaluate("window.__chumphae.notifications()") >= 1
    shot(cg1, "01-wander-alert-phone")
    cards(cg1b, alert_id=wander_id).wait_for(timeout=15_000)
    shot(cg1b, "02-wander-alert-desktop")

    # Acknowledge on the phone; the other caregiver of the same patient sees who took it.
    cards(cg1, alert_id=wander_id).locator("[data-testid=ack]").click()
    cg1.wait_for_selector(f"{CARD}[data-alert-id='{wander_id}'][data-status=acknowledged]", timeout=10_000)
    cg1b.wait_for_selector(f"{CARD}[data-alert-id='{wander_id}'][data-status=acknowledged]", timeout=15_000)
    assert "รับทราบแล้วโดย ผู้ดูแล ลูกสาว" in cards(cg1b, alert_id=wander_id).inner_text()
    shot(cg1b, "03-acknowledged-seen-by-second-caregiver-desktop")

    # The caregiver of other patients saw nothing of it, then or now.
    assert cg2.locator(CARD).count() == 0
    assert cg2.locator("[data-testid=no-alerts]").is_visible()
    assert cg2.evaluate("window.__chumphae.beeps()") == 0
    assert cg2.evaluate("window.__chumphae.alertIds()") == []
    shot(cg2, "04-other-patients-caregiver-sees-nothing-phone")

    # The phone loses its connection; an SOS is raised meanwhile (the desktop sees it live).
    cg1.context.set_offline(True)
    cg1.wait_for_selector("[data-testid=feed-banner][data-kind=lost]", timeout=15_000)
    shot(cg1, "05-connection-lost-phone")
    sos_id = raise_in_backend(stack, patient_id=pid, type="sos", lat=lat, lon=lon)
    cards(cg1b, alert_id=sos_id).wait_for(timeout=15_000)
    assert cards(cg1, alert_id=sos_id).count() == 0
    beeps_before = cg1.evaluate("window.__chumphae.beeps()")

    # Back online: the missed SOS is filled in, the banner says so, and it rings.
    cg1.context.set_offline(False)
    cg1.wait_for_selector("[data-testid=feed-banner][data-kind=back]", timeout=20_000)
    cards(cg1, alert_id=sos_id).wait_for(timeout=15_000)
    banner = cg1.locator("[data-testid=feed-banner]")
    expect(banner).to_have_attribute("data-missed", "1", timeout=10_000)  # the SOS, nothing else
    assert "ได้รับการแจ้งเตือนที่พลาดไป" in banner.inner_text()
    assert cg1.evaluate("window.__sameDocument") is True
    assert cg1.evaluate("window.__chumphae.beeps()") > beeps_before
    # Most severe first: the SOS (critical, not yet acknowledged) is the top card.
    assert cg1.locator(CARD).first.get_attribute("data-alert-id") == str(sos_id)
    shot(cg1, "06-reconnected-missed-sos-filled-in-phone")
    assert cg2.locator(CARD).count() == 0

    # Resolve asks for the outcome; the alert leaves both caregivers' lists.
    cards(cg1, alert_id=wander_id).locator("[data-testid=resolve]").click()
    dialog = cg1.locator("[data-testid=resolve-dialog]")
    dialog.wait_for()
    assert dialog.locator("[data-testid=resolve-confirm]").is_disabled()
    dialog.locator("[data-testid=outcome-patient_safe]").check()
    shot(cg1, "07-resolve-asks-outcome-phone")
    dialog.locator("[data-testid=resolve-confirm]").click()
    cards(cg1, alert_id=wander_id).wait_for(state="detached", timeout=10_000)
    cards(cg1b, alert_id=wander_id).wait_for(state="detached", timeout=15_000)
    with stack.client("caregiver1") as c:
        resolved = c.get(f"/api/v1/alerts/{wander_id}").raise_for_status().json()
    assert resolved["status"] == "resolved" and resolved["outcome"] == "patient_safe"

    # The map: our own tax-map layers (no tiles), the alert pinned, the patient's panel.
    assert set(cg1b.layers) == {"parcels", "buildings", "routes", "landmarks"}  # type: ignore[attr-defined]
    assert cg1b.layers["parcels"] > 50 and cg1b.layers["buildings"] > 20  # type: ignore[attr-defined]
    cards(cg1b, alert_id=sos_id).locator("[data-testid=show-on-map]").click()
    panel = cg1b.locator("[data-testid=patient-panel]")
    panel.wait_for(timeout=10_000)
    assert patient["name_th"] in panel.inner_text()
    assert "SOS" in panel.locator("[data-testid=panel-alerts]").inner_text() or \
        "ขอความช่วยเหลือ" in panel.locator("[data-testid=panel-alerts]").inner_text()
    # The panel reads the mobile API's status: the open SOS makes it "alert", with every reason.
    expect(panel.locator("[data-testid=panel-condition]")).to_have_attribute("data-status", "alert", timeout=10_000)
    cg1b.wait_for_selector(".alert-pin", timeout=10_000)
    assert cg1b.locator(".leaflet-tile").count() == 0, "no base-map tiles"
    settle_map(cg1b)
    shot(cg1b, "08-map-tax-layers-patient-panel-desktop")
    cg1.locator("[data-testid=tab-map]").click()
    cg1.wait_for_selector(".alert-pin", timeout=10_000)
    settle_map(cg1)
    shot(cg1, "09-map-phone")

    # English on request; Thai stays the default. Landmark labels follow without a reload.
    labels_th = cg1b.locator(".landmark-label").all_inner_texts()
    assert labels_th and any("\u0e00" <= ch <= "\u0e7f" for ch in "".join(labels_th)), labels_th
    cg1b.locator("[data-testid=lang]").click()
    cg1b.get_by_text("Acknowledge").first.wait_for()
    labels_en = cg1b.locator(".landmark-label").all_inner_texts()
    assert labels_en != labels_th and not any("\u0e00" <= ch <= "\u0e7f" for ch in "".join(labels_en)), labels_en
    assert cg1b.evaluate("window.__sameDocument") is True, "switching language must not reload the page"
    shot(cg1b, "10-english-desktop")

    for page in (cg1, cg1b, cg2):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]
        page.context.close()
