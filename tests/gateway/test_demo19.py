"""demo19: what `chumphae demo` announces is what the viewer then sees. Each excursion's two lines (Thai,
English) name the alert by the label the page and the messages give it (`TYPE_LABELS`), and the Thai line
says as much as the English one: when the alert is expected (a time for every time)."""

from __future__ import annotations

import re

import pytest

from chumphae.alert.render import TYPE_LABELS
from gateway.simulate.district import DistrictSource
from gateway.siteconfig import SiteConfig
from tests.gateway.test_district import MORNING, town  # noqa: F401  (fixture: the seeded town site)

# the alert(s) each excursion raises (test_district.py plays them through the pipeline)
RAISES = {"walk_out": ["wander"], "fall": ["fall"], "sos": ["sos"], "remove_band": ["band_removed"],
          "quiet": ["left_coverage", "band_silent"]}


@pytest.mark.parametrize("kind", list(RAISES))
def test_the_announcement_names_the_alert_the_page_shows_in_both_languages(
        kind: str, town: SiteConfig) -> None:  # noqa: F811
    from chumphae.demo import announce

    src = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(3000.0, 3600.0))
    ex = src.excursion(kind, 0, at=15.0)
    thai, english = announce(ex, src, "gw-chumphae-town", {}, speed=1.0).strip().splitlines()
    for alert in RAISES[kind]:
        label_th, label_en = TYPE_LABELS[alert]
        assert f"'{label_th}'" in thai, (kind, alert, thai)
        assert f"'{label_en}'" in english, (kind, alert, english)
    # every other alert's Thai name is absent (the wander line once said 'ออกนอกพื้นที่', a near twin of
    # left coverage's 'ออกนอกพื้นที่สัญญาณ')
    others = [TYPE_LABELS[t][0] for t in TYPE_LABELS if t not in RAISES[kind]]
    assert not [o for o in others if f"'{o}'" in thai], thai
    # the Thai line gives the same times (Asia/Bangkok clock and seconds from now) as the English one
    times = re.compile(r"\d\d:\d\d:\d\d \(\+\d+ s\)")
    assert times.findall(thai) == times.findall(english) and times.findall(thai), (thai, english)
    # and the same expectation words: when an alert is expected, Thai says so too
    if kind == "fall":
        assert "ภายใน" in thai  # within (a minute)
    if kind == "sos":
        assert "ทันที" in thai  # at once


def test_a_sped_up_demo_stays_within_the_backends_clock_window(town: SiteConfig,  # noqa: F811
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`chumphae demo --speed 8`: the simulated clock ran ahead of the wall clock by 7 s a second, and after about
    90 s every position was refused (bad_body, `time outside the accepted window (… +10 minutes)`; seen on
    2026-12-03). The demo's sources now run fast only until `MAX_AHEAD_S` ahead, then at real time, and the
    announcements' "(+N s)" count real seconds under that rule (here the cap is 3 s, the speed 40)."""
    import asyncio
    import time

    from chumphae import demo
    from chumphae.timeutil import utcnow

    monkeypatch.setattr(demo, "MAX_AHEAD_S", 3.0)
    src = demo.district_source(town, "gw-chumphae-town", 40.0)

    async def run(seconds: float) -> None:
        t0 = time.monotonic()
        async for _ in src:
            if time.monotonic() - t0 > seconds:
                return

    asyncio.run(run(2.5))
    lead = (src.wall() - utcnow()).total_seconds()
    assert src.clock() >= 3.0 + 2.0  # it did run faster than real time first
    assert lead <= 3.0 + 1.5, lead  # uncapped it would be ~100 s ahead
    assert 95.0 <= src.real_s_until(src.clock() + 100.0) <= 100.5  # held: real seconds from here
    ex = src.excursion("sos", 0, at=src.clock() + 15.0)
    assert re.search(r"\(\+1[45] s\)", demo.announce(ex, src, "gw-chumphae-town", {}, speed=40.0))
