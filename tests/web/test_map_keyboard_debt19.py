"""debt19: the map's patient dots (drawn on a canvas) are reachable from the keyboard.

A caregiver's page has no list of their patients beside the map (the alert list names only patients with an
alert; the district list is for managers), so a patient without an alert could be opened only by tapping the
dot. Now each dot is also a button in a list under the map's zoom buttons, shown while it has the focus.
Real backend on 127.0.0.1 (tests/web/stack.py, no gateway), real headless Debian chromium.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, Stack, settle_map, shot
from tests.web.test_layout_web19 import heard_at
from tests.web.test_page_views import axe, new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FOCUSED = "() => { const e = document.activeElement; return e ? (e.dataset.testid || e.tagName) : null; }"


def tab_to(page: Any, testid: str, presses: int = 60) -> int:
    """Press Tab from the top of the page until the focus is on an element with `testid`; how many presses."""
    page.locator("body").focus()
    for n in range(1, presses + 1):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED) == testid:
            return n
    raise AssertionError(f"{testid} not reached in {presses} presses of Tab")


def test_each_patient_dot_is_a_button_the_keyboard_reaches(browser: Any, stack: Stack) -> None:
    with stack.client("caregiver1") as c:
        mine = [p for p in c.get("/api/v1/patients").raise_for_status().json() if p.get("home_lat") is not None]
    assert len(mine) >= 3, mine
    for p in mine[:3]:
        heard_at(stack, p["id"], lat=p["home_lat"], lon=p["home_lon"])
    names = {str(p["id"]): p["name_th"] for p in mine[:3]}

    page = new_page(browser, stack, DESKTOP, who="caregiver1")
    settle_map(page)
    buttons = page.locator("[data-testid=map-patient]")
    expect(buttons).to_have_count(3, timeout=15_000)
    box = page.locator("[data-testid=map-patients]").bounding_box()
    assert box is not None and box["width"] <= 1, box  # out of sight until the keyboard is in it

    tab_to(page, "map-patient")
    first = page.evaluate("() => document.activeElement.dataset.patientId")
    box = page.locator("[data-testid=map-patients]").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100, box  # shown while it has the focus
    shown = {b.get_attribute("data-patient-id"): (b.inner_text(), b.get_attribute("aria-label"))
             for b in buttons.all()}
    assert set(shown) == set(names), shown
    for pid, (text, label) in shown.items():
        assert names[pid] in text and label is not None and names[pid] in label, (text, label)
        assert "ดูรายละเอียดและตำแหน่งบนแผนที่" in label, label  # Thai page: Thai label
    # focus shows that patient's name on the map (it may have been left out as crowded)
    expect(page.locator(f".patient-label[data-patient-id='{first}']:not(.crowded)").last).to_be_visible()
    shot(page, "d19-01-map-patient-focused")
    axe(page, "map with the keyboard in its patient list")

    page.keyboard.press("Enter")  # as a tap on the dot: the patient's details
    panel = page.locator("[data-testid=patient-panel]")
    expect(panel).to_contain_text(names[first], timeout=10_000)

    page.locator("[data-testid=panel-close]").click()
    page.locator("[data-testid=lang]").first.click()  # English
    tab_to(page, "map-patient")
    label = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert label.endswith(": show details and place on the map"), label
    # the next Tab goes to the next patient's button (the list keeps its focus across the page's updates)
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "map-patient"
    assert page.evaluate("() => document.activeElement.dataset.patientId") != first
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
