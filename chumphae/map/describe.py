"""Where a point is, in words a caregiver can act on: distance and direction from a landmark.

"ห่างจากวัดศรีชมภู 120 ม. ทางทิศเหนือ" / "120 m north of Wat Si Chomphu".
People in Chumphae give directions by temples, schools, the market and the
health station, not by coordinates. Directions are the 8 compass points of the
metric grid; UTM grid north differs from true north by under 1° here, far less
than the 45° sector of a compass point.
"""

from __future__ import annotations

import math

DIRECTIONS_TH = ("เหนือ", "ตะวันออกเฉียงเหนือ", "ตะวันออก", "ตะวันออกเฉียงใต้",
                 "ใต้", "ตะวันตกเฉียงใต้", "ตะวันตก", "ตะวันตกเฉียงเหนือ")
DIRECTIONS_EN = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")
AT_M = 25.0  # closer than this, the point is "at" the landmark


def compass(dx: float, dy: float) -> int:
    """Index 0..7 (N, NE, E, SE, S, SW, W, NW) of the direction of (dx east, dy north)."""
    bearing = math.degrees(math.atan2(dx, dy)) % 360.0
    return int(((bearing + 22.5) % 360.0) // 45.0)


def distance_words(metres: float) -> tuple[str, str]:
    """10 m steps under 1 km, then 0.1 km steps: the precision a person walking can use."""
    if metres < 995:
        n = max(10, int(round(metres / 10.0)) * 10)
        return f"{n} ม.", f"{n} m"
    km = f"{metres / 1000.0:.1f}"
    return f"{km} กม.", f"{km} km"


def describe(dx: float, dy: float, name_th: str | None, name_en: str | None) -> tuple[str, str]:
    """Thai and English description of a point `dx` m east and `dy` m north of a landmark."""
    th_name = name_th or name_en or "จุดอ้างอิง"
    en_name = name_en or name_th or "the landmark"
    d = math.hypot(dx, dy)
    if d < AT_M:
        return f"ที่{th_name}", f"at {en_name}"
    k = compass(dx, dy)
    th_d, en_d = distance_words(d)
    return f"ห่างจาก{th_name} {th_d} ทางทิศ{DIRECTIONS_TH[k]}", f"{en_d} {DIRECTIONS_EN[k]} of {en_name}"


def no_landmark() -> tuple[str, str]:
    return "ไม่มีจุดอ้างอิงบนแผนที่", "no landmark on the map"
