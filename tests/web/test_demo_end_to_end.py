"""The whole path in a real browser: scenario → simulated gateway → backend → feed → page.

The stack is `chumphae demo` (`run_demo`) with a test scenario: the wanderer walks to a
neighbour's house (outside their safe zone, still heard by the receivers there) a few
seconds in, and presses SOS at SOS_AT seconds. Screenshots (prefix `e2e-`) go to
tests/web/conftest.py SCREENSHOTS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import CARD, DESKTOP, PHONE, Stack, cards, open_page, settle_map, shot, start_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WANDER_AT = 3.0
SOS_AT = 150.0  # after the wander alert (about 70 s in), its acknowledgement and the drop
WANDER_WITHIN_S = 120  # seen: about 70 s from start (walk 140 m, 20 s dwell); slack for a busy machine


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path, gateway=True, wander_at=WANDER_AT, sos_at=SOS_AT)
    try:
        yield s
    finally:
        s.stop()


def test_simulated_wander_reaches_caregivers_only(browser: Any, stack: Stack) -> None:
    pid = int(stack.info["patient_id"])
    cg1 = open_page(browser, stack, "caregiver1", PHONE)
    cg1b = open_page(browser, stack, "caregiver1b", DESKTOP)
    cg2 = open_page(browser, stack, "caregiver2", PHONE)

    wander = cg1.locator(f"{CARD}[data-type=wander][data-patient-id='{pid}']")
    wander.wait_for(timeout=WANDER_WITHIN_S * 1000)
    assert cg1.evaluate("window.__sameDocument") is True  # arrived without a reload
    alert_id = wander.get_attribute("data-alert-id")
    assert cg1.evaluate("window.__chumphae.beeps()") >= 1
    assert "เห็นล่าสุด" in wander.inner_text()
    shot(cg1, "e2e-01-simulated-wander-phone")
    cards(cg1b, alert_id=alert_id).wait_for(timeout=15_000)

    wander.locator("[data-testid=ack]").click()
    cg1b.wait_for_selector(f"{CARD}[data-alert-id='{alert_id}'][data-status=acknowledged]", timeout=15_000)
    shot(cg1b, "e2e-02-acknowledged-by-other-caregiver-desktop")
    assert cg2.evaluate("window.__chumphae.alertIds()") == [] or all(
        cards(cg2, alert_id=i).get_attribute("data-patient-id") != str(pid)
        for i in cg2.evaluate("window.__chumphae.alertIds()"))
    assert cards(cg2, alert_id=alert_id).count() == 0

    # Offline before the scenario's SOS; the desktop sees it live, the phone after reconnecting.
    cg1.context.set_offline(True)
    cg1.wait_for_selector("[data-testid=feed-banner][data-kind=lost]", timeout=15_000)
    sos = cg1b.locator(f"{CARD}[data-type=sos][data-patient-id='{pid}']")
    sos.wait_for(timeout=int(SOS_AT + 60) * 1000)
    sos_id = sos.get_attribute("data-alert-id")
    assert cards(cg1, alert_id=sos_id).count() == 0
    cg1.context.set_offline(False)
    cg1.wait_for_selector("[data-testid=feed-banner][data-kind=back]", timeout=20_000)
    cards(cg1, alert_id=sos_id).wait_for(timeout=15_000)
    assert cg1.evaluate("window.__sameDocument") is True
    shot(cg1, "e2e-03-missed-sos-after-reconnect-phone")
    assert cards(cg2, alert_id=sos_id).count() == 0

    # The patient's panel from the real band: battery and worn come from the wristband's frames.
    cards(cg1b, alert_id=sos_id).locator("[data-testid=show-on-map]").click()
    panel = cg1b.locator("[data-testid=patient-panel]")
    panel.wait_for()
    expect(panel.locator("[data-testid=panel-battery]")).to_contain_text("%", timeout=15_000)
    expect(panel.locator("[data-testid=panel-worn]")).to_have_text("สวมอยู่")
    settle_map(cg1b)
    shot(cg1b, "e2e-04-map-patient-panel-desktop")
    for page in (cg1, cg1b, cg2):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]
        page.context.close()
