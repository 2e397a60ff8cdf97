"""Builders for detector tests: readings, positions and matches, with an explicit clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chumphae.values import Match, Motion, Place, Position, Reading, ZoneStatus

T0 = datetime(2025, 6, 1, 3, 0, 0, tzinfo=UTC)  # 10:00 in Bangkok: day schedule
NIGHT = datetime(2025, 6, 1, 16, 0, 0, tzinfo=UTC)  # 23:00 in Bangkok
ADDR = "C0:FF:EE:00:00:01"
PLACE = Place("03I002", None, None, "ห่างจากวัด 120 ม. ทางทิศเหนือ", "120 m north of the temple")


def at(s: float, base: datetime = T0) -> datetime:
    return base + timedelta(seconds=s)


def reading(t: datetime, **kw: object) -> Reading:
    fields: dict[str, object] = {"address": ADDR, "kind": "chumphae", "rssi": -70, "receiver": "rx-a",
                                 "t": t, "authenticated": True}
    fields.update(kw)
    return Reading(**fields)  # type: ignore[arg-type]


def match(t: datetime, status: ZoneStatus, dist: float | None, unc: float = 10.0,
          in_coverage: bool = True, schedule: str | None = None, share: float | None = None,
          clearance: float | None = None, p: float | None = None) -> Match:
    pos = Position(ADDR, t, 16.5442, 102.0997, unc, in_coverage=in_coverage)
    return Match(pos, status, 3, dist, None, PLACE, schedule=schedule, clearance_m=clearance, outside_share=share,
                 outside_p=p)


def still(pitch: float = 0.0, roll: float = 0.0, spread: float = 0.0) -> Motion:
    return Motion(max_g=1.0 + spread / 2, min_g=1.0 - spread / 2, mean_g=1.0, pitch_deg=pitch, roll_deg=roll)


def walking(pitch: float = -70.0, roll: float = 10.0) -> Motion:
    return Motion(max_g=1.6, min_g=0.55, mean_g=1.02, pitch_deg=pitch, roll_deg=roll)
