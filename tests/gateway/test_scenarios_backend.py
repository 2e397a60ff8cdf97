"""Each shipped scenario against a seeded backend: the real backend (uvicorn on loopback), the seeded
demo district, the real gateway (site config fetched with its token, decode → locate → match → detect →
outbox → uplink), flat-out speed. The alerts each scenario's header promises must be stored, and no other type."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.models import Alert, Gateway, Wristband
from chumphae.models import PositionRecord as Position
from chumphae.seed import rotate_gateway_tokens, seed_demo
from gateway.cli import main as gateway_main
from gateway.config import GatewaySettings
from gateway.service import Gateway as Gateway_
from gateway.service import run_gateway
from gateway.simulate import scenario as scenarios
from tests.feed.liveserver import live_server

SITE = "gw-chumphae-town"


@pytest.mark.parametrize("name", scenarios.shipped())
def test_shipped_scenario_raises_what_it_promises_on_the_seeded_backend(name: str, app_engine: Engine,
                                                                       tmp_path: Path) -> None:
    scen = scenarios.load(name)
    assert scen.promises and scen.prefer_backend_site, f"{name}: says what it raises and runs on a backend"
    with Session(app_engine) as s:
        seed_demo(s)
        token = rotate_gateway_tokens(s)[SITE]
        s.commit()
        gateway_id = s.exec(select(Gateway.id).where(Gateway.slug == SITE)).one()
        bands = s.exec(select(Wristband).where(Wristband.site == SITE, Wristband.active)
                       .order_by(col(Wristband.address))).all()
        patients = {b.patient_id for b in bands[:len(scen.patients)]}
    with live_server() as server:
        settings = GatewaySettings(backend_url=server.http, token=token, queue_path=tmp_path / "outbox.db",
                                   config_cache=tmp_path / "config.json", ack_timeout_s=10.0)
        gw = asyncio.run(_run_until_stored(app_engine, settings, scen, gateway_id))
    assert gw.config.site_id == SITE  # the backend's site, not the scenario's own
    assert gw.uplink is not None and gw.uplink.stats.rejected == 0  # no "not an active band of site …"
    with Session(app_engine) as s:
        alerts = s.exec(select(Alert).where(Alert.gateway_id == gateway_id)).all()
        stored = {a.type for a in alerts}
        assert {a.patient_id for a in alerts} <= patients
        assert s.exec(select(Position).where(col(Position.patient_id).in_(patients))).first() is not None
    assert set(scen.promises) <= stored, f"{name}: promised {scen.promises}, stored {sorted(stored)}"
    # and nothing it does not promise (`everything` had also stored a left_coverage here: fix17, issue 13)
    assert stored <= set(scen.promises), f"{name}: stored {sorted(stored - set(scen.promises))}, not promised"
    if "wander" in scen.promises:
        _walk_ends_outside(app_engine, next(a for a in alerts if a.type == "wander"))


async def _run_until_stored(engine: Engine, settings: GatewaySettings, scen: scenarios.Scenario,
                            gateway_id: int) -> Gateway_:
    """Run the scenario flat out until the backend stored every promised alert (or 240 s went by),
    then stop the gateway."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(settings, scenario=scen, speed=0, stop=stop))
    for _ in range(480):
        await asyncio.sleep(0.5)
        with Session(engine) as s:
            stored = set(s.exec(select(Alert.type).where(Alert.gateway_id == gateway_id)).all())
        if set(scen.promises) <= stored or task.done():
            break
    await asyncio.sleep(1.0)  # positions still in flight
    stop.set()
    return await asyncio.wait_for(task, 60)


def _walk_ends_outside(engine: Engine, wander: Alert) -> None:
    """The wanderer's track is a walk: it starts inside the zone, is confirmed outside before the alert, and
    the fix the alert was raised on has its centre outside: clear of the zone, or (once the excursion is
    confirmed) uncertain with its centre at least `STILL_OUT_M` out by day, any distance out at night
    (chumphae/detect/wander.py). Stored
    positions are a sample (on movement, status change or once a minute), so that fix is the alert's own."""
    from chumphae.detect.wander import STILL_OUT_M

    with Session(engine) as s:
        track = s.exec(select(Position).where(Position.patient_id == wander.patient_id)
                       .order_by(col(Position.t))).all()
    statuses = [p.zone_status for p in track]
    first_in = statuses.index("inside")  # located inside (a first fix may be uncertain) ...
    # left the zone before the alert: a fix outside, or uncertain (a held-outside run confirms an excursion on
    # fixes whose centre is out while their region still touches the zone: wander-13's hold); at night the
    # shorter dwell alerts on such fixes before any fix clears the zone (CI at 20:07 Bangkok time)
    away = next(i for i, st in enumerate(statuses) if i > first_in and st != "inside")
    assert track[away].t <= wander.opened_at, statuses
    d = wander.details or {}
    clear = d.get("clearance_m") is not None and d["clearance_m"] >= 0
    # By day the wanderer's dwell (120 s) lets the walk get STILL_OUT_M out; at night (20:00-06:00 Bangkok,
    # 30 s) a held-outside excursion alerts sooner, its centre outside but nearer (22 m seen): centre out.
    assert clear or d.get("distance_m", 0.0) >= (0.0 if d.get("night") else STILL_OUT_M), d
    assert d.get("distance_m", 0.0) > 0.0, d  # the fix the alert was raised on has its centre outside


def test_list_scenarios_says_where_each_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway_main(["--list-scenarios"]) == 0
    out = capsys.readouterr().out
    for name in scenarios.shipped():
        line = next(x for x in out.splitlines() if x.startswith(name + " "))
        assert "with a backend, or stand-alone on a cached site config (GATEWAY_CONFIG_CACHE): that site" in line, line
        assert "stand-alone without one: its own site" in line, line


def test_a_folder_named_like_a_scenario_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fall").mkdir()
    assert scenarios.load("fall").name == "fall"  # the shipped one, no IsADirectoryError
    (tmp_path / "broken.yaml").write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        scenarios.load("broken.yaml")
    assert gateway_main(["--simulate", "broken.yaml", "--speed", "0"]) == 2
