"""Three layout defects of the caregiver page that web18 noticed and left (web19).

Real backend on 127.0.0.1 (tests/web/stack.py, no gateway), real headless Debian chromium. Positions are
written as ingest stores them (a PositionRecord per band) before the page opens, so the page reads them
through its own REST calls. Each view is also run through axe-core (no serious or critical violation).
Screenshots: tests/web/conftest.py SCREENSHOTS (prefix `l19-`).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, col, select

from chumphae.auth.service import create_user
from chumphae.db import make_engine
from chumphae.models import PositionRecord, Role, Wristband
from chumphae.timeutil import utcnow
from tests.web.conftest import DESKTOP, Stack, settle_map, shot
from tests.web.test_page_views import PHONE, axe, new_page  # 360x740, web18's phone

pytestmark = [pytest.mark.browser, pytest.mark.slow]



def heard_at(stack: Stack, patient_id: int, *, lat: float, lon: float) -> None:
    """The patient's band was just heard and placed at (lat, lon), as ingest stores it."""
    engine = make_engine(f"sqlite:///{stack.data_dir / 'chumphae.db'}")
    try:
        with Session(engine) as s:
            band = s.exec(select(Wristband).where(Wristband.patient_id == patient_id, col(Wristband.active))).one()
            now = utcnow()
            band.battery_pct, band.worn, band.last_seen_at = 80.0, True, now
            s.add(band)
            s.add(PositionRecord(patient_id=patient_id, band_id=band.id, t=now - timedelta(seconds=5), lat=lat,
                                 lon=lon, uncertainty_m=20.0, source="ble", in_coverage=True, zone_status="inside",
                                 received_at=now))
            s.commit()
    finally:
        engine.dispose()


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def shown_boxes(page: Any, selector: str) -> list[dict[str, Any]]:
    """Boxes of the elements a person sees (drawn, not display:none, visibility:hidden or fading out), with their
    text."""
    return list(page.evaluate("""(sel) => [...document.querySelectorAll(sel)].filter((e) => {
        const r = e.getBoundingClientRect(), cs = getComputedStyle(e);
        return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none'
          && cs.opacity !== '0';  // a name Leaflet is fading out after a redraw
      }).map((e) => { const r = e.getBoundingClientRect();
        return {x: r.left, y: r.top, width: r.width, height: r.height, text: e.innerText,
                id: e.dataset.patientId || null}; })""", selector))


def test_phone_map_patient_names_do_not_lie_on_one_another(browser: Any, stack: Stack) -> None:
    """web18: on the phone map two patients' names were drawn over each other ("Suphan Jaidee" over another,
    neither readable). Three of caregiver1's patients heard a few metres apart (one dot-width each way):
    every name shown must be clear of the others, and a name left out shows when its dot is tapped."""
    with stack.client("caregiver1") as c:
        mine = [p for p in c.get("/api/v1/patients").raise_for_status().json() if p.get("home_lat") is not None]
    assert len(mine) >= 3, mine
    a = mine[0]
    lat0, lon0 = a["home_lat"], a["home_lon"]
    m_lon = 111_320 * math.cos(math.radians(lat0))
    # 60 m east of each other and 6 m apart north-south: at the page's zoom (16-18) the dots are apart
    # (27-105 px), the names (120 px or more, to the right of each dot) lie over one another.
    spots = [(lat0, lon0), (lat0 + 6 / 111_320, lon0 + 60 / m_lon), (lat0 - 6 / 111_320, lon0 + 120 / m_lon)]
    for p, (lat, lon) in zip(mine[:3], spots, strict=True):
        heard_at(stack, p["id"], lat=lat, lon=lon)
    names = {str(p["id"]): p["name_th"] for p in mine[:3]}

    page = new_page(browser, stack, PHONE, who="caregiver1")
    page.locator("[data-testid=tab-map]").click()
    settle_map(page)
    # Any name shown (`:visible`): the first `.patient-label` in the page may be an old one fading out (Leaflet
    # re-creates a tooltip as positions come) or one left out as crowded, and waiting on it alone timed out.
    page.locator(".patient-label:visible").first.wait_for(timeout=15_000)
    page.wait_for_timeout(500)
    labels = shown_boxes(page, ".patient-label")
    shot(page, "l19-01-phone-map-patient-names")
    assert labels, "no patient name on the map"
    for i, x in enumerate(labels):
        for y in labels[i + 1:]:
            assert not overlaps(x, y), f"names over one another: {x['text']!r} and {y['text']!r} ({x}, {y})"
    axe(page, "phone map with crowded patients")

    # Each name left out is one tap away: tapping its dot shows it (and the patient's sheet names them).
    hidden = [pid for pid in names if pid not in {b["id"] for b in labels}]
    assert hidden, "the three names cannot all fit side by side here: some must have been left out"
    for pid in hidden:
        el = page.locator(f".patient-label.crowded[data-patient-id='{pid}']").last  # the newest (not fading)
        # Its dot: the name sits 12 px right of it (plus Leaflet's 6 px margin), centred on it.
        box = el.evaluate("e => { const r = e.getBoundingClientRect(); return {x: r.left, y: r.top, h: r.height}; }")
        page.mouse.click(box["x"] - 18, box["y"] + box["h"] / 2)
        panel = page.locator("[data-testid=patient-panel]")
        expect(panel).to_contain_text(names[pid], timeout=10_000)
        page.wait_for_timeout(500)  # the old names fade out (Leaflet: 200 ms)
        shown = shown_boxes(page, ".patient-label")
        assert pid in {b["id"] for b in shown}, (pid, shown)
        for i, x in enumerate(shown):
            for y in shown[i + 1:]:
                assert not overlaps(x, y), (x, y)
        shot(page, f"l19-02-phone-map-tapped-{pid}")
        page.locator("[data-testid=panel-close]").click()
        page.locator("[data-testid=tab-map]").click()
        settle_map(page)
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_desktop_villages_map_key_covers_no_village_name(browser: Any, stack: Stack) -> None:
    """web18: on a desktop the care manager's Villages map opened with its key (open there) over one village's
    name. At the district's first view every village name must be clear of the key."""
    page = new_page(browser, stack, DESKTOP, who="care_manager")
    page.locator("[data-testid=tab-district]").click()
    page.wait_for_selector(".village-label span", timeout=15_000)
    settle_map(page)
    page.wait_for_timeout(500)
    key = page.locator("[data-testid=map-legend]")
    assert key.evaluate("d => d.open") is True  # open on a wide screen: that is when it covers names
    k = key.bounding_box()
    villages = shown_boxes(page, ".village-label span")
    shot(page, "l19-03-desktop-villages-map-key")
    assert len(villages) >= 5, villages
    under = [v["text"] for v in villages if overlaps(v, k)]
    assert under == [], f"village names under the map key: {under}"
    m = page.locator("[data-testid=map]").bounding_box()
    assert m
    for v in villages:  # and still on the map
        assert v["x"] >= m["x"] and v["x"] + v["width"] <= m["x"] + m["width"] + 0.5, v
    axe(page, "desktop villages map")
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_header_says_the_role_once(browser: Any, stack: Stack) -> None:
    """web18: the desktop header read "ผู้จัดการการดูแล (demo CM) · ผู้จัดการการดูแล". Names here may carry the
    role already (the demo's, and Thai habit: "อสม. มาลี"); the header does not repeat what the name says,
    and still says the role when the name does not (in English: "Care manager"). On a phone, where only the
    role fits, the role stays."""
    desktop = new_page(browser, stack, DESKTOP, who="care_manager")
    who = desktop.locator("[data-testid=who]")
    text = who.inner_text()
    shot(desktop, "l19-04-desktop-header-role-once")
    assert "demo CM" in text, text  # the name is shown
    assert text.count("ผู้จัดการการดูแล") == 1, text
    axe(desktop, "desktop header")
    desktop.locator("[data-testid=lang]").click()
    expect(who).to_contain_text("Care manager")  # the Thai name does not say it in English
    assert who.inner_text().count("Care manager") == 1, who.inner_text()
    desktop.locator("[data-testid=lang]").click()  # back to Thai (saved for the next start)
    expect(who).not_to_contain_text("Care manager")

    # A volunteer: "อสม. มาลี (demo volunteer 1)", not "… · อสม.".
    vol = new_page(browser, stack, DESKTOP, who="volunteer1")
    vtext = vol.locator("[data-testid=who]").inner_text()
    assert "มาลี" in vtext and vtext.count("อสม.") == 1, vtext
    # A care manager whose name is only a name (as a real user's is) sees the role after it.
    engine = make_engine(f"sqlite:///{stack.data_dir / 'chumphae.db'}")
    try:
        with Session(engine) as s:
            _user, stack.tokens["somsri"] = create_user(s, name="สมศรี ใจดี", role=Role.CARE_MANAGER)
            s.commit()
    finally:
        engine.dispose()
    cg = new_page(browser, stack, DESKTOP, who="somsri")
    ctext = cg.locator("[data-testid=who]").inner_text()
    assert "สมศรี ใจดี" in ctext and ctext.count("ผู้จัดการการดูแล") == 1, ctext

    phone = new_page(browser, stack, PHONE, who="care_manager")
    expect(phone.locator("[data-testid=role]")).to_be_visible()
    assert phone.locator("[data-testid=who]").inner_text().strip() == "ผู้จัดการการดูแล"
    axe(phone, "phone header")
    for page in (desktop, vol, cg, phone):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]
        page.context.close()
