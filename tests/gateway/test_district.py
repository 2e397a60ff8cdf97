"""The living district on the seeded town site, through the real pipeline (decode → locate → match →
detect → outbox): routines raise no alert, a walk out raises a wander, nights are spent at home."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.ingest.siteconfig import build
from chumphae.models import Gateway
from chumphae.seed import seed_demo
from gateway import siteconfig
from gateway.pipeline import Pipeline
from gateway.queue import Outbox
from gateway.service import default_steps
from gateway.simulate.district import DistrictSource, is_night
from gateway.simulate.radio import distance_m
from gateway.siteconfig import SiteConfig

MORNING = datetime.fromisoformat("2025-06-02T09:00:00+07:00")


@pytest.fixture
def town(app_engine: Engine) -> SiteConfig:
    with Session(app_engine) as s:
        seed_demo(s)
        s.commit()
        gw = s.exec(select(Gateway).where(Gateway.slug == "gw-chumphae-town")).one()
        return siteconfig.parse(json.loads(json.dumps(build(s, gw))))


def play(src: DistrictSource, seconds: int, tmp_path: Path, track: int | None = None
         ) -> tuple[list[dict[str, object]], dict[int, int], list[tuple[float, float]]]:
    matcher, detector = default_steps(src.site)
    ob = Outbox(tmp_path / "outbox.db")
    pipe = Pipeline(src.site, ob, matcher, detector)
    path: list[tuple[float, float]] = []
    for _ in range(seconds):
        for a in src.second():
            pipe.handle(a)
        src._now += 1.0
        pipe.tick(src.clock(), src.wall())
        if track is not None:
            path.append(src.sims[track].pos)
    pipe.flush()
    rows = [json.loads(q.text) for q in ob.pending(100_000)]
    ob.close()
    alerts = [r["body"] for r in rows if r["type"] == "alert"]
    positions: dict[int, int] = {}
    for r in rows:
        if r["type"] == "position":
            pid = int(r["body"]["patient_id"])
            positions[pid] = positions.get(pid, 0) + 1
    return alerts, positions, path


def test_a_morning_of_routines_is_heard_and_raises_nothing(town: SiteConfig, tmp_path: Path) -> None:
    src = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(5.0, 60.0))
    alerts, positions, _ = play(src, 420, tmp_path)
    assert set(positions) == {b.patient_id for b in town.bands}  # every patient heard: no "band off"
    assert all(t > 60.0 for t in src.next_walk)  # everyone went for a walk (or has no route to walk)
    assert sum(1 for s in src.sims if s.steps) >= len(src.sims) // 2
    assert [(a["type"], a["patient_id"]) for a in alerts] == []


def test_a_walk_out_is_a_walk_and_raises_wander(town: SiteConfig, tmp_path: Path) -> None:
    src = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(3000.0, 3600.0))
    ex = src.excursion("walk_out", 0, at=10.0)
    assert ex.leaves_zone_at is not None and ex.end_outside_m == pytest.approx(120, abs=6)
    seconds = int(ex.leaves_zone_at + 240)
    alerts, _, path = play(src, seconds, tmp_path, track=0)
    assert max(distance_m(p, q) for p, q in zip(path, path[1:], strict=False)) <= 1.1 + 1e-6  # no jump
    wanders = [a for a in alerts if a["type"] == "wander"]
    assert wanders and wanders[0]["patient_id"] == ex.patient_id
    assert {a["patient_id"] for a in alerts} == {ex.patient_id}  # nobody else


def test_nights_are_spent_at_home(town: SiteConfig) -> None:
    night = datetime.fromisoformat("2025-06-02T23:00:00+07:00")
    assert is_night(night) and not is_night(MORNING)
    src = DistrictSource(town, speed=0, start=night, first_walk_s=(0.0, 1.0))
    for _ in range(120):
        src.second()
        src._now += 1.0
    assert all(s.pos == home and not s.walking for s, home in zip(src.sims, src.homes, strict=True))


async def test_a_fall_in_the_district_demo_is_read_over_simulated_gatt(town: SiteConfig, tmp_path: Path) -> None:
    """`chumphae demo` hands its DistrictSource to run_gateway: the fall excursion's band is streamed
    over simulated GATT and the model's alert is the one fall alert; routines open no session."""
    import asyncio

    from gateway.config import GatewaySettings
    from gateway.gatt import SOURCE_RAW
    from gateway.service import run_gateway

    src = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(3000.0, 3600.0))
    ex = src.excursion("fall", 1, at=20.0)
    src.scenario = replace(src.scenario, duration_s=60.0)
    settings = GatewaySettings(token="", queue_path=tmp_path / "ob.db", config_cache=tmp_path / "c.json")
    gw = await asyncio.wait_for(run_gateway(settings, source=src, config=town, exit_when_done=True), 120)
    assert gw.raw is not None
    ob = Outbox(settings.queue_path)
    alerts = [json.loads(q.text)["body"] for q in ob.pending(100_000) if q.type == "alert"]
    ob.close()
    assert [(a["type"], a["patient_id"], a["details"]["source"]) for a in alerts] == [("fall", ex.patient_id, SOURCE_RAW)]
    assert gw.raw.streams.stats.sessions == 1


def test_the_demo_walks_out_first_the_band_whose_wander_alert_comes_soonest(town: SiteConfig) -> None:
    from chumphae.demo import FIRST_EXCURSION_S, plan, quickest_walk_out
    from chumphae.detect.thresholds import thresholds_for

    src = DistrictSource(town, speed=0, start=MORNING)
    band = quickest_walk_out(src)
    dwell = {p["id"]: thresholds_for(p.get("adl_score"), p.get("ltc_group"), p.get("thresholds") or None).wander_dwell_s
             for p in src.site.patients}
    due = []  # seconds from the walk's start to the earliest wander alert: to the zone's edge, then the dwell
    for i, sim in enumerate(src.sims):
        leaves = src.walk_out_plan(i)[1]
        due.append(float("inf") if leaves is None else leaves + dwell[sim.band.patient_id])
    assert due[band] == min(due) and due[band] < 240.0
    assert FIRST_EXCURSION_S < 60.0  # the walk begins within a minute of the start
    assert next(plan({"gw-chumphae-town": len(src.sims), "gw-b": 3}, {"gw-chumphae-town": band})) == (
        "walk_out", "gw-chumphae-town", band)


def test_a_walk_out_at_night_is_announced_against_the_night_zone(town: SiteConfig, tmp_path: Path) -> None:
    """At night only the home counts: the walk is out as soon as it leaves the home parcel, and the
    announcement says so (edge of the night zone, the night dwell), and the alert follows it."""
    from chumphae.demo import announce, dwell_in_force
    from chumphae.detect.thresholds import thresholds_for

    evening = datetime.fromisoformat("2025-06-02T20:30:00+07:00")  # the night zone is in force from 20:00
    day = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(3000.0, 3600.0))
    src = DistrictSource(town, speed=0, start=evening, first_walk_s=(3000.0, 3600.0))
    _walk, leaves_day, out_day = day.walk_out_plan(0, 10.0)
    ex = src.excursion("walk_out", 0, at=10.0)
    assert leaves_day is not None and out_day is not None
    assert ex.leaves_zone_at is not None and ex.end_outside_m is not None
    assert ex.leaves_zone_at - 10.0 < leaves_day  # out of the home parcel before the end of the day zone
    assert ex.end_outside_m > out_day  # and further from the (smaller) night zone at the end
    p = next(q for q in town.patients if q["id"] == ex.patient_id)
    th = thresholds_for(p.get("adl_score"), p.get("ltc_group"), p.get("thresholds") or None)
    dwell = dwell_in_force(src, ex.patient_id, ex.leaves_zone_at)
    assert dwell == th.wander_dwell_night_s and dwell_in_force(day, ex.patient_id, 10.0) == th.wander_dwell_s
    text = announce(ex, src, "gw-chumphae-town", {}, speed=1.0)
    assert f"after {dwell:.0f} s outside" in text and f"(+{ex.leaves_zone_at:.0f} s)" in text
    alerts, _, _ = play(src, int(ex.leaves_zone_at + dwell + 180), tmp_path)
    wanders = [a for a in alerts if a["type"] == "wander"]
    assert wanders and wanders[0]["patient_id"] == ex.patient_id and wanders[0]["details"]["night"] is True
    assert not any(a["type"] == "wander" for a in alerts if a["patient_id"] != ex.patient_id)


def _alerts_by_second(src: DistrictSource, seconds: int, tmp_path: Path, until_patient: int | None = None
                      ) -> list[tuple[float, str, int]]:
    """(simulated second it was queued, type, patient) for every alert the pipeline raises, up to the
    first of `until_patient` if given."""
    matcher, detector = default_steps(src.site)
    ob = Outbox(tmp_path / "outbox.db")
    pipe = Pipeline(src.site, ob, matcher, detector)
    out: list[tuple[float, str, int]] = []
    seen = 0
    for _ in range(seconds):
        for a in src.second():
            pipe.handle(a)
        src._now += 1.0
        pipe.tick(src.clock(), src.wall())
        pipe.flush()
        rows = [json.loads(q.text) for q in ob.pending(100_000) if q.type == "alert"]
        out += [(src.clock(), r["body"]["type"], int(r["body"]["patient_id"])) for r in rows[seen:]]
        seen = len(rows)
        if any(pid == until_patient for _t, _a, pid in out):
            break
    ob.close()
    return out


@pytest.mark.parametrize("kind", ["remove_band", "quiet"])
def test_the_demo_announces_the_alert_a_band_excursion_raises_and_when(
        kind: str, town: SiteConfig, tmp_path: Path) -> None:
    """The demo's words come true: a band taken off is a band-removed alert about `removed_worn_off_s`
    after (its worn sensor), a band gone quiet is the alert the announcement names for its case
    (left coverage near the zone's edge, band silent well inside), each within half a minute. The
    announcement is made on one source, the excursion played on a second from the same start."""
    from chumphae.demo import announce
    from chumphae.detect.thresholds import thresholds_for

    src = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(3000.0, 3600.0))
    for _ in range(120):  # everyone heard for two minutes first
        src.second()
        src._now += 1.0
    ex = src.excursion(kind, 1, at=src.clock() + 15.0)
    p = next(q for q in town.patients if q["id"] == ex.patient_id)
    th = thresholds_for(p.get("adl_score"), p.get("ltc_group"), p.get("thresholds") or None)
    text = announce(ex, src, "gw-chumphae-town", {}, speed=1.0)
    src2 = DistrictSource(town, speed=0, start=MORNING, first_walk_s=(3000.0, 3600.0))
    src2.excursion(kind, 1, at=ex.at)
    horizon = ex.at + (th.removed_worn_off_s if kind == "remove_band" else th.silent_s) + 60.0
    raised = [(t, a) for t, a, pid in _alerts_by_second(src2, int(horizon), tmp_path, ex.patient_id)
              if pid == ex.patient_id]
    assert raised, f"nothing raised for {kind}"
    t, alert = raised[0]
    if kind == "remove_band":
        expected = [("band_removed", ex.at + th.removed_worn_off_s)]
        assert f"(+{15 + th.removed_worn_off_s:.0f} s)" in text
    else:
        left = min(th.left_coverage_s, 60.0)  # or when the gateway calls the band out of coverage (60 s)
        expected = [("left_coverage", ex.at + left), ("band_silent", ex.at + th.silent_s)]
        assert f"(+{15 + left:.0f} s)" in text and f"(+{15 + th.silent_s:.0f} s)" in text
    due = dict(expected)
    assert alert in due and abs(t - due[alert]) <= 30.0, (alert, t, expected)


def test_a_resting_wrist_is_not_a_band_on_a_table(town: SiteConfig) -> None:
    """The routine's resting wrist shifts now and then, so the table signature (detect/band.py: every
    summary dead still, orientation unchanged) never lasts the shortest `removed_still_s` (900 s);
    a band taken off does."""
    from chumphae.detect.band import _dead_still
    from gateway.simulate import motion

    src = DistrictSource(town, speed=0, start=MORNING)
    resting, off = src.sims[0], src.sims[1]
    resting.walking, resting.path = False, []
    off.worn = False

    def longest_dead_still(sim: object) -> int:
        ref, run, best = None, 0, 0
        for _ in range(2400):
            m = motion.summarise(src._samples(sim))  # type: ignore[arg-type]
            src._now += 1.0
            if _dead_still(m, ref):
                ref, run = ref or m, run + 1
            else:
                ref, run = None, 0
            best = max(best, run)
        return best

    assert longest_dead_still(resting) < 900
    src._now = 0.0
    assert longest_dead_still(off) == 2400


def test_the_demos_gateways_say_they_are_simulated(town: SiteConfig, tmp_path: Path) -> None:
    """`chumphae demo` hands each seeded gateway a DistrictSource (no scenario): its hello and heartbeat said
    `"simulated": false` and `scanner_state` "unknown", as a radio gateway's would (docs14). Any simulated
    source now says so, through the recorder too; the gateway still follows config changes (not a scenario's)."""
    from gateway.config import GatewaySettings
    from gateway.record import RecordingSource
    from gateway.service import Gateway

    settings = GatewaySettings(queue_path=tmp_path / "q.db", token="")
    src = DistrictSource(town, speed=1.0, seed=1)
    for source in (src, RecordingSource(src, tmp_path / "rec.jsonl", kind="simulated")):
        gw = Gateway(settings, town, source, uplink=False)
        try:
            assert gw.hello()["simulated"] is True
            health = gw.health()
            assert health["simulated"] is True and health["scanner_state"] == "simulated"
            assert not gw.simulated  # config changes still apply (a scenario's site is fixed)
        finally:
            gw.outbox.close()
