"""Test builders: adverts shaped as bleak would hand them to us."""

from __future__ import annotations

from datetime import UTC, datetime

from chumphae.values import Advert

T0 = datetime(2025, 6, 1, 13, 0, 0, tzinfo=UTC)


def advert(**overrides: object) -> Advert:
    fields: dict[str, object] = {
        "address": "C0:FF:EE:00:00:01",
        "rssi": -70,
        "receiver": "rx-a",
        "t": T0,
        "monotonic": 100.0,
    }
    fields.update(overrides)
    return Advert(**fields)  # type: ignore[arg-type]
