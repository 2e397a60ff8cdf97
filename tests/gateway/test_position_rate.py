"""Positions leave the gateway at a bounded rate: a still band once a minute, a band that moves, changes zone
status or leaves coverage at once (what keeps a province's day of stored positions bounded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chumphae.values import Match, Place, Position, ZoneStatus
from gateway.locate import Fix
from gateway.pipeline import Pipeline
from gateway.siteconfig import parse

ADDR = "AA:BB:CC:00:00:01"
T0 = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
HOME = (16.5442, 102.0997)


class Steps:
    """A matcher whose verdict the test sets, a detector that finds nothing."""

    def __init__(self) -> None:
        self.status = ZoneStatus.UNCERTAIN

    def __call__(self, position: Position, patient_id: int | None) -> Match:
        return Match(position, self.status, 1, -5.0, None, Place(None, None, None, "", ""))

    def on_reading(self, *_: Any) -> list[Any]:
        return []

    def on_position(self, *_: Any) -> list[Any]:
        return []

    def tick(self, *_: Any) -> list[Any]:
        return []


def test_a_still_band_once_a_minute_a_moving_or_changed_one_at_once() -> None:
    cfg = parse({"site_id": "t", "receivers": [{"id": "r", "lat": HOME[0], "lon": HOME[1]}],
                 "bands": [{"address": ADDR, "key_hex": "00" * 16, "patient_id": 1}]})
    steps = Steps()
    pipe = Pipeline(cfg, None, steps, steps)

    def fix(second: int, north_m: float = 0.0) -> None:
        pipe.handle_fix(Fix(ADDR, T0 + timedelta(seconds=second), HOME[0] + north_m / 110_574.0, HOME[1], 8.0),
                        float(second))

    for s in range(0, 181):  # three minutes still, a fix every second
        fix(s)
    assert pipe.stats.positions == 4  # 0, 60, 120, 180 s
    fix(181, north_m=50.0)  # moved 50 m: at once
    assert pipe.stats.positions == 5
    fix(182, north_m=52.0)  # 2 m more: within its uncertainty, not sent
    assert pipe.stats.positions == 5
    steps.status = ZoneStatus.OUTSIDE
    fix(183, north_m=52.0)  # same place, the verdict changed: at once
    assert pipe.stats.positions == 6
    for s in range(184, 244):
        fix(s, north_m=52.0)
    assert pipe.stats.positions == 7  # and once a minute again (243 − 183 = 60 s)
