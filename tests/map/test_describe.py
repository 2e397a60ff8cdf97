"""Landmark descriptions: compass sectors, rounding, Thai and English."""

from __future__ import annotations

import math

import pytest

from chumphae.map.describe import DIRECTIONS_EN, DIRECTIONS_TH, compass, describe, distance_words


@pytest.mark.parametrize(("bearing", "index"), [
    (0, 0), (22.4, 0), (22.6, 1), (45, 1), (90, 2), (135, 3), (180, 4), (225, 5), (270, 6), (315, 7),
    (337.4, 7), (337.6, 0), (359.9, 0),
])
def test_eight_compass_sectors(bearing: float, index: int) -> None:
    a = math.radians(bearing)
    assert compass(100 * math.sin(a), 100 * math.cos(a)) == index


def test_the_example_from_the_issue() -> None:
    assert describe(0, 120, "วัดศรีชมภู", "Wat Si Chomphu") == (
        "ห่างจากวัดศรีชมภู 120 ม. ทางทิศเหนือ", "120 m north of Wat Si Chomphu")


def test_every_direction_reads_right() -> None:
    for k in range(8):
        a = math.radians(45 * k)
        th, en = describe(300 * math.sin(a), 300 * math.cos(a), "ตลาด", "the market")
        assert th == f"ห่างจากตลาด 300 ม. ทางทิศ{DIRECTIONS_TH[k]}"
        assert en == f"300 m {DIRECTIONS_EN[k]} of the market"


def test_rounding_and_nearness() -> None:
    assert distance_words(124) == ("120 ม.", "120 m")
    assert distance_words(31) == ("30 ม.", "30 m")
    assert distance_words(994) == ("990 ม.", "990 m")
    assert distance_words(1249) == ("1.2 กม.", "1.2 km")
    assert describe(10, -12, "รพ.สต.บ้านโนนหัน", "Ban Non Han Health-Promoting Hospital") == (
        "ที่รพ.สต.บ้านโนนหัน", "at Ban Non Han Health-Promoting Hospital")
    assert describe(0, -2500, "วัด", None) == ("ห่างจากวัด 2.5 กม. ทางทิศใต้", "2.5 km south of วัด")
