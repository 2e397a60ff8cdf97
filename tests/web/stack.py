"""The whole system for the browser tests, in one process: `python -m tests.web.stack DATA_DIR PORT`.

It is `chumphae demo` (`chumphae.demo.run_demo`: seeded demo district, the backend,
a simulated gateway for the town site) with a scenario written for the test, and one
extra caregiver of the wandering patient. Before handing over to `run_demo` it prints
one line `STACK {json}` with that caregiver's token and the patient; `run_demo` then
prints the demo accounts' tokens (it issues fresh ones). The test reads both from
stdout (the last `  caregiver1    chu_...` lines are the valid tokens). With
`--no-gateway` it runs the backend alone. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import shapely
import yaml
from sqlmodel import Session, col, select

from chumphae.auth.service import assign, create_user
from chumphae.config import Settings
from chumphae.db import init_engine, session_scope
from chumphae.demo import DEMO_SITE, run_demo
from chumphae.map.zonestore import active_zone
from chumphae.models import CareAssignment, Gateway, Patient, Role, SafeZone, User, Wristband
from chumphae.seed import SeedResult, print_tokens, rotate_demo_tokens, seed_demo

SECOND_CAREGIVER = "ผู้ดูแล คนที่สอง (e2e caregiver 1b)"


def scenario(band: str, *, to: tuple[float, float], wander_at: float, sos_at: float) -> dict[str, object]:
    """The wanderer walks off early (to `to`, outside the zone, still heard); later they press SOS."""
    return {
        "name": "e2e-wander-then-sos",
        "seed": 11,
        "duration_s": 900,
        "prefer_backend_site": True,
        "radio": {"p1m_dbm": -59, "path_loss_n": 2.0, "noise_db": 2.0, "shadowing_db": 1.0,
                  "drop_rate": 0.05, "sensitivity_dbm": -98, "repeats": 1},
        "patients": [{
            "band": band, "at": "home", "speed_mps": 0.5,
            "events": [
                {"at": wander_at, "type": "walk_to", "to": [to[0], to[1]], "speed_mps": 2.0},
                {"at": sos_at, "type": "sos", "duration_s": 20},
            ],
        }],
    }


def wander_target(session: Session, patient_id: int) -> tuple[float, float]:
    """(lat, lon) 120–300 m from the wanderer's home, 100 m or more outside their safe zone.

    Receivers are added along the way and around that spot: the demo seed has one receiver
    per house, which hears a band but cannot place it outside a zone with confidence (the
    position stays 'uncertain', so no wander alert would ever be raised)."""
    me = session.get(Patient, patient_id)
    zone = active_zone(session, patient_id)
    assert me is not None and me.home_lat is not None and me.home_lon is not None and zone is not None
    m = zone.metric
    home = m.to_metric(shapely.Point(me.home_lon, me.home_lat))
    keep_out = zone.day.buffer(100)  # clearly outside, even with a position's uncertainty disc
    target = None
    for dist in range(120, 300, 10):
        for bearing in range(0, 360, 15):
            a = math.radians(bearing)
            p = shapely.Point(home.x + dist * math.sin(a), home.y + dist * math.cos(a))
            if not keep_out.contains(p):
                target = p
                break
        if target is not None:
            break
    if target is None:
        raise SystemExit("no point 70-110 m from the wanderer's home outside their zone: the seed changed")
    gw = session.exec(select(Gateway).where(Gateway.site == DEMO_SITE)).one()
    # Receivers along the way (every 40 m) and around the destination, so the walker stays
    # heard and is placed by several receivers at once.
    n = max(2, int(home.distance(target) // 40))
    ring = [(home.x + (target.x - home.x) * k / n, home.y + (target.y - home.y) * k / n) for k in range(1, n + 1)]
    ring += [(target.x + 35 * math.sin(math.radians(b)), target.y + 35 * math.cos(math.radians(b)))
             for b in range(0, 360, 60)]
    added = []
    for i, (x, y) in enumerate(ring):
        pt = m.to_wgs84(shapely.Point(x, y))
        added.append({"id": f"rx-e2e-{i}", "lat": round(pt.y, 7), "lon": round(pt.x, 7),
                      "p1m_dbm": -59, "path_loss_n": 2.0})
    gw.receivers = [*gw.receivers, *added]
    # This patient's care plan: 20 s outside before a wander alert (the default is longer).
    row = session.exec(select(SafeZone).where(SafeZone.patient_id == patient_id, col(SafeZone.active))
                       .order_by(col(SafeZone.version).desc())).first()
    assert row is not None
    row.spec = {**row.spec, "dwell_s": 20}
    session.add(row)
    gw.config_version += 1
    session.add(gw)
    t = m.to_wgs84(target)
    return float(t.y), float(t.x)


def prepare(settings: Settings, *, wander_at: float, sos_at: float) -> dict[str, object]:
    """Seed, add a second caregiver to caregiver1's first town patient, write the scenario."""
    engine = init_engine(settings.effective_database_url)
    with session_scope(engine) as session:
        seed_demo(session)
        cg1 = session.exec(select(User).where(col(User.name).contains("demo caregiver 1"))).one()
        band = session.exec(
            select(Wristband).join(CareAssignment, col(CareAssignment.patient_id) == Wristband.patient_id)
            .where(CareAssignment.user_id == cg1.id, Wristband.site == DEMO_SITE)
            .order_by(col(Wristband.patient_id))
        ).first()
        if band is None or band.patient_id is None:
            raise SystemExit(f"no band of caregiver 1 on site {DEMO_SITE}: the demo seed changed")
        to = wander_target(session, band.patient_id)
        user, token = create_user(session, name=SECOND_CAREGIVER, role=Role.CAREGIVER)
        assign(session, user_id=user.id, patient_id=band.patient_id)  # type: ignore[arg-type]
        info = {"patient_id": band.patient_id, "band": band.address, "caregiver1b": token}
    path = Path(settings.data_dir) / "e2e-scenario.yaml"
    path.write_text(yaml.safe_dump(scenario(band.address, to=to, wander_at=wander_at, sos_at=sos_at)),
                    encoding="utf-8")
    info["scenario"] = str(path)
    return info


async def backend_only(settings: Settings) -> None:
    """The backend alone (no gateway): tests that raise alerts through the backend's own service."""
    import uvicorn

    from chumphae.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, manage_engine=False), host=settings.host,
                                           port=settings.port, log_config=None, lifespan="on"))
    await server.serve()


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("port", type=int)
    ap.add_argument("--wander-at", type=float, default=3.0, help="scenario second the wanderer walks off")
    ap.add_argument("--sos-at", type=float, default=120.0, help="scenario second they press SOS")
    ap.add_argument("--no-gateway", action="store_true", help="run the backend only")
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir, host="127.0.0.1", port=args.port, log_level="INFO")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    info = prepare(settings, wander_at=args.wander_at, sos_at=args.sos_at)
    print("STACK " + json.dumps(info), flush=True)
    from chumphae import logs

    logs.setup(settings.log_level)
    if args.no_gateway:
        engine = init_engine(settings.effective_database_url)
        with session_scope(engine) as session:
            print_tokens(SeedResult(created=False, patients=0, tokens=rotate_demo_tokens(session)))
        sys.stdout.flush()
        asyncio.run(backend_only(settings))
    else:
        asyncio.run(run_demo(settings, scenario=str(info["scenario"]), speed=1.0, open_browser=False))


if __name__ == "__main__":
    main()
