"""The caregiver page as an outsider reads README's "The caregiver page": what it found wrong (web18).

Real backend on 127.0.0.1 (tests/web/stack.py, no gateway), real headless Debian chromium; alerts are
raised by the backend's own alert service from another process, as ingest does, and reach the page
through the real feed. Screenshots: tests/web/conftest.py SCREENSHOTS (prefix `o18-`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from chumphae.alert.service import AlertInput, raise_alert
from chumphae.db import make_engine
from chumphae.timeutil import utcnow
from tests.web.conftest import PHONE, Stack, cards, open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_outside_for_counts_from_when_the_patient_left_not_from_the_alert(browser: Any, stack: Stack) -> None:
    """README: each card says "how long they have been outside". A wander alert opens only after the
    care plan's dwell (300 s by default), and the detector writes when the patient left
    (`details.outside_since`); the page counted from the alert's opening, 5 minutes short by default.
    Here the patient left 12 minutes before the alert opened: the card must say 12 minutes, not under one."""
    pid = int(stack.info["patient_id"])
    with stack.client("caregiver1") as c:
        patient = c.get(f"/api/v1/patients/{pid}").raise_for_status().json()
    page = open_page(browser, stack, "caregiver1", PHONE)
    page.wait_for_selector("[data-testid=no-alerts]")

    now = utcnow()
    left = now - timedelta(minutes=12)
    engine = make_engine(f"sqlite:///{stack.data_dir / 'chumphae.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            change = raise_alert(session, alert=AlertInput(
                type="wander", t=now, patient_id=pid, lat=patient["home_lat"] + 0.0002,
                lon=patient["home_lon"] + 0.0014, uncertainty_m=25.0,
                description_th="ห่างจากบ้าน 150 ม. ทางทิศตะวันออก", description_en="150 m east of home",
                details={"outside_for_s": 720, "outside_since": left.isoformat(), "night": False}))
            session.commit()
            alert_id = change.alert_id
    finally:
        engine.dispose()

    card = cards(page, alert_id=alert_id)
    card.wait_for(timeout=15_000)
    outside = card.locator("[data-testid=alert-outside]").inner_text()
    shot(page, "o18-01-outside-for-since-left-phone")
    assert "ไม่ถึง 1 นาที" not in outside, outside
    m = re.search(r"(\d+) นาที", outside)
    assert m and int(m.group(1)) in (12, 13), outside
    # "since" names the Bangkok clock time the patient left, not the alert's opening.
    bangkok = (left + timedelta(hours=7)).strftime("%H:%M")
    assert bangkok in outside, (bangkok, outside)
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_villages_tab_names_a_volunteer_once(browser: Any, stack: Stack) -> None:
    """README: care managers get a "หมู่บ้าน / Villages" tab with a list filtered by volunteer. Each
    patient's line said the volunteer's title twice, "อสม. อสม. มาลี": the seed's (and Thai habit's)
    names carry the title already. In English the label stays ("Volunteer อสม. มาลี")."""
    page = open_page(browser, stack, "care_manager", PHONE)
    page.locator("[data-testid=tab-district]").click()
    rows = page.locator("[data-testid=district-patient]")
    rows.first.wait_for(timeout=15_000)
    text = "\n".join(rows.all_inner_texts())
    shot(page, "o18-02-villages-volunteer-once-phone")
    assert "อสม." in text, text[:500]  # the seed's patients have volunteers
    assert "อสม. อสม." not in text, text[:500]
    page.locator("[data-testid=lang]").click()
    expect(page.locator("#district-title")).to_have_text("District at a glance")
    text_en = "\n".join(rows.all_inner_texts())
    assert "Volunteer อสม." in text_en, text_en[:500]
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_told_line_says_delivered_not_unseen(browser: Any, stack: Stack) -> None:
    """Each card's "Told" line read "ผู้ดูแล … (feed) · ยังไม่เห็น" ("not seen yet") for every notice, even
    delivered ones and after the caregiver acknowledged: the backend's deliveries say whether a notice was
    delivered (`status`, `delivered`), never whether it was read, and `feed` is a code, not words."""
    pid = int(stack.info["patient_id"])
    with stack.client("caregiver1") as c:
        patient = c.get(f"/api/v1/patients/{pid}").raise_for_status().json()
    page = open_page(browser, stack, "caregiver1", PHONE)
    page.wait_for_selector("[data-testid=no-alerts]")
    engine = make_engine(f"sqlite:///{stack.data_dir / 'chumphae.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            alert_id = raise_alert(session, alert=AlertInput(
                type="sos", t=utcnow(), patient_id=pid, lat=patient["home_lat"], lon=patient["home_lon"],
                uncertainty_m=25.0)).alert_id
            session.commit()
    finally:
        engine.dispose()
    with stack.client("caregiver1") as c:
        told = c.get(f"/api/v1/alerts/{alert_id}/deliveries").raise_for_status().json()["deliveries"]
    assert told and all(d["delivered"] for d in told if d["channel"] == "feed"), told
    line = cards(page, alert_id=alert_id).locator("[data-testid=alert-told]")
    expect(line).to_contain_text("ส่งถึงแล้ว", timeout=15_000)
    text = line.inner_text()
    shot(page, "o18-03-told-delivered-phone")
    assert "ยังไม่เห็น" not in text and "(feed)" not in text, text
    assert "หน้าแจ้งเตือน" in text, text
    page.locator("[data-testid=lang]").click()
    expect(line).to_contain_text("(alert page) · ✓ delivered")
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_left_coverage_says_outside_only_when_the_detector_does(browser: Any, stack: Stack) -> None:
    """A left-coverage card said "ออกนอกเขตมาแล้ว N นาที" (outside the zone for N min, since the alert)
    for every band gone quiet, even one last heard inside its zone (`details.last_status: inside`,
    `outside_for_s: null`). It now says it only when the detector knows (`outside_for_s`), counted from
    when the patient left."""
    with stack.client("caregiver1") as c:
        mine = c.get("/api/v1/patients").raise_for_status().json()
    (a, b) = [p for p in mine if p.get("home_lat") is not None][:2]
    page = open_page(browser, stack, "caregiver1", PHONE)
    page.wait_for_selector("[data-testid=no-alerts]")
    now = utcnow()
    engine = make_engine(f"sqlite:///{stack.data_dir / 'chumphae.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            inside = raise_alert(session, alert=AlertInput(
                type="left_coverage", t=now, patient_id=a["id"], lat=a["home_lat"], lon=a["home_lon"],
                uncertainty_m=25.0, details={"silent_for_s": 90, "last_status": "inside", "outside_for_s": None})).alert_id
            outside = raise_alert(session, alert=AlertInput(
                type="left_coverage", t=now, patient_id=b["id"], lat=b["home_lat"] + 0.002, lon=b["home_lon"],
                uncertainty_m=25.0, details={"silent_for_s": 90, "last_status": "outside", "outside_for_s": 600})).alert_id
            session.commit()
    finally:
        engine.dispose()
    cards(page, alert_id=inside).wait_for(timeout=15_000)
    cards(page, alert_id=outside).wait_for(timeout=15_000)
    shot(page, "o18-04-left-coverage-outside-only-when-known-phone")
    assert cards(page, alert_id=inside).locator("[data-testid=alert-outside]").count() == 0, \
        cards(page, alert_id=inside).inner_text()
    text = cards(page, alert_id=outside).locator("[data-testid=alert-outside]").inner_text()
    m = re.search(r"(\d+) นาที", text)
    assert m and int(m.group(1)) in (10, 11), text
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    page.context.close()
