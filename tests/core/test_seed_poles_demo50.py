"""demo50: the demo district follows the deployment rule, a receiver every 50 m along each zone route.

The wander bench meets issue 13's alarm goals only with receivers every 50 m along the zone's routes
(docs/wander-detection.md, wander-26 and wander-27). Along a route with a receiver at least every 50 m no point
is more than 25 m from one; the seed, as the bench's `build_site`, adds no pole within 50/3 m of one already
placed (routes sharing a road or a corner), which can move the nearest receiver that much further away.
"""

from __future__ import annotations

import shapely
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.models import Gateway
from chumphae.seed import seed_demo

EVERY_M = 50.0  # the rule
MERGE_M = EVERY_M / 3  # poles closer than this are one (scripts/bench_detect.py build_site: spacing / 3)
ROUNDING_M = 0.5  # receivers are stored with 6 decimals of a degree (~0.1 m)


def test_every_point_of_every_demo_zone_route_has_a_receiver_of_its_site_nearby(app_engine: Engine) -> None:
    from chumphae.map.demo import demo_homes
    from chumphae.map.store import load_layers
    from chumphae.seed import RNG_SEED, _slug

    with Session(app_engine, expire_on_commit=False) as s:
        seed_demo(s)
        s.commit()
        layers = load_layers(s)
        homes = demo_homes(layers, 30, seed=RNG_SEED)
        metres = 0
        for home in homes:
            gw = s.exec(select(Gateway).where(Gateway.slug == _slug(home.area))).one()
            rx = shapely.MultiPoint([tuple(map(float, layers.metric.xy(float(r["lon"]), float(r["lat"]))))  # type: ignore[arg-type]
                                     for r in gw.receivers])
            for code in home.zone_spec().route_codes:
                line = layers.routes.geom(code)
                assert line is not None and line.length > 0, code
                n = int(line.length)  # a point each metre, both ends included
                points = [line.interpolate(k * line.length / n) for k in range(n + 1)]
                far = max(float(p.distance(rx)) for p in points)
                assert far <= EVERY_M / 2 + MERGE_M + ROUNDING_M, (home.area, code, round(far, 1))
                metres += n
        assert metres > 10_000  # the 30 patients' routes were walked, not an empty list
