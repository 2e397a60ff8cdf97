"""The simulator through the real pipeline: its bytes decode, its scenarios raise the right alerts."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path

import pytest
from shapely.geometry import Point

from gateway.decode import default_decoders
from gateway.pipeline import Pipeline
from gateway.queue import Outbox
from gateway.service import default_steps
from gateway.simulate import motion, paths
from gateway.simulate import scenario as scenarios
from gateway.simulate.radio import distance_m
from gateway.simulate.scenario import Scenario
from gateway.simulate.source import SimSource
from gateway.siteconfig import SiteConfig


def run(name: str, tmp_path: Path) -> tuple[SimSource, list[dict[str, object]]]:
    scen = scenarios.load(name)
    assert scen.site is not None
    return run_on(scen, scen.site, tmp_path / f"{name}.db")


def run_on(scen: Scenario, site: SiteConfig, db: Path) -> tuple[SimSource, list[dict[str, object]]]:
    """Play a scenario on a site through the real pipeline at full speed; the alerts its outbox holds."""
    src = SimSource(scen, site, speed=0)
    matcher, detector = default_steps(site)
    ob = Outbox(db)
    pipe = Pipeline(site, ob, matcher, detector)
    for a in src.frames():
        if a is None:
            pipe.tick(src.clock(), src.wall())
        else:
            pipe.handle(a)
    pipe.flush()
    alerts = [json.loads(q.text)["body"] for q in ob.pending(10_000) if q.type == "alert"]
    ob.close()
    return src, alerts


def test_every_simulated_advert_is_a_real_authenticated_frame() -> None:
    scen = scenarios.load("everything")
    assert scen.site is not None
    src = SimSource(scen, scen.site, speed=0)
    reg = default_decoders(scen.site.key_for)
    n = 0
    for a in src.frames():
        if a is None:
            continue
        r = reg.decode(a)
        assert r is not None and r.kind == "chumphae" and r.authenticated
        n += 1
    assert n > 500 and reg.stats.failures == 0


def test_demo_walks_out_of_the_zone_stand_alone(tmp_path: Path) -> None:
    src, alerts = run("demo", tmp_path)
    wanders = [a for a in alerts if a["type"] == "wander"]
    assert wanders and wanders[0]["patient_id"] == 1
    assert (datetime.fromisoformat(str(wanders[0]["t"])) - src.start).total_seconds() < 240
    assert all(a["patient_id"] == 1 for a in alerts)  # patient 2 walks their route: no alert


def test_walk_out_is_a_walk_from_inside_to_beyond_the_zone() -> None:
    scen = scenarios.load("demo")
    assert scen.site is not None
    src = SimSource(scen, scen.site, speed=0)
    frame = paths.frame_for(scen.site)
    zone = paths.zone_of(scen.site, frame, 1)
    assert zone is not None
    track = []
    for a in src.frames():
        if a is None:
            track.append(src.sims[0].pos)
    steps = [distance_m(p, q) for p, q in zip(track, track[1:], strict=False)]
    assert max(steps) <= 1.4 + 1e-6  # at walking speed, no jump
    inside = [zone.contains(Point(*frame.xy(p))) for p in track]
    assert inside[0] and not inside[-1]
    assert zone.distance(Point(*frame.xy(track[-1]))) == pytest.approx(60, abs=6)


def test_fall_scenario_raises_one_fall_for_the_patient_who_fell(tmp_path: Path) -> None:
    _src, alerts = run("fall", tmp_path)
    assert [(a["type"], a["patient_id"]) for a in alerts] == [("fall", 2)]
    assert alerts[0]["lat"] is not None  # where the patient lies


def test_fall_trace_has_free_fall_impact_and_stillness_and_slap_does_not_flag() -> None:
    rng = random.Random(2)
    tr = motion.fall(rng)
    per_s = [motion.summarise(tr[i * motion.HZ : (i + 1) * motion.HZ]) for i in range(3)]
    assert per_s[1].min_g < 0.5 and per_s[1].max_g > 2.5  # free fall and impact in the same second
    assert per_s[2].max_g - per_s[2].min_g < 0.2  # stillness afterwards
    assert per_s[2].pitch_deg is not None and abs(per_s[2].pitch_deg) > 60  # lying: new orientation
    assert motion.band_flags_fall(tr)
    assert not motion.band_flags_fall(motion.table_slap(rng))


def test_scenario_with_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        scenarios.parse({"patients": [{"band": 0, "events": [{"at": 1, "type": "teleport"}]}]})


def test_night_wander_scenario_reports_night(tmp_path: Path) -> None:
    # 22:00 Bangkok; the zone's dwell_s is both the day and the night dwell
    src, alerts = run("night-wander", tmp_path)
    wanders = [a for a in alerts if a["type"] == "wander"]
    assert wanders and wanders[0]["patient_id"] == 1
    assert src.wall().utcoffset() is not None  # an aware wall clock, judged in Asia/Bangkok
    assert wanders[0]["details"]["night"] is True  # type: ignore[index]


def test_scenario_start_as_a_time_of_day_is_its_latest_occurrence() -> None:
    """A night scenario starts at the last 22:00 Bangkok, so its times are night and within the backend's
    30-day window; a full ISO time is kept; anything else is a clear error."""
    from datetime import UTC, datetime

    from gateway.simulate.scenario import parse_start

    morning = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 14:00 Bangkok
    assert parse_start("22:00+07:00", morning) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    late = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 23:00 Bangkok
    assert parse_start("22:00", late) == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert parse_start("2025-06-01T22:00:00+07:00") == datetime(2025, 6, 1, 15, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="time of day"):
        parse_start("tonight")


async def test_fall_scenario_through_the_gateway_streams_the_fall_over_simulated_gatt(tmp_path: Path) -> None:
    """`--simulate fall`: the band that fell is read over (simulated) GATT and the model's alert is the
    one sent: one alert for one fall. The summary path's (the summary model since falls-11) decides at
    impact + 8 s of its own adverts, here after the raw verdict: it is dropped as a duplicate, not folded in."""
    from gateway.config import GatewaySettings
    from gateway.gatt import SOURCE_RAW
    from gateway.service import run_gateway

    settings = GatewaySettings(token="", queue_path=tmp_path / "ob.db", config_cache=tmp_path / "c.json")
    gw = await run_gateway(settings, scenario=scenarios.load("fall"), speed=0, exit_when_done=True)
    assert gw.raw is not None
    ob = Outbox(settings.queue_path)
    alerts = [json.loads(q.text)["body"] for q in ob.pending(10_000) if q.type == "alert"]
    ob.close()
    assert [(a["type"], a["patient_id"]) for a in alerts] == [("fall", 2)]
    details = alerts[0]["details"]
    assert details["source"] == SOURCE_RAW and "summary_rule_confidence" not in details
    assert alerts[0]["confidence"] == details["model_confidence"] >= 0.5
    health = gw.raw.health()
    assert health["falls_deduped"] == 1 and health["falls_overruled"] == 0  # the summary path called it too
    assert health["gatt_sessions"] >= 1 and health["gatt_connect_failures"] == 0 and health["gatt_lost"] == 0
    assert gw.supervisor.health()["task_restarts"].get("gatt", 0) == 0
