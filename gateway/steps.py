"""The real match and detect steps behind the pipeline's `Matcher` / `Detector` protocols.

`gateway.basic` holds small fallbacks (zone polygons from the site config,
edge-triggered detectors). These are the real ones:

* match: `chumphae.map.match.Matcher` against each patient's `Zone` built
  from the tax map (home parcel + assigned routes + safe places, night rule);
  the Match says which schedule applied ("day" / "night"), so the wander
  detector uses the stricter night dwell exactly when the night zone is in force;
* detect: `chumphae.detect.runner.Detectors` with per-patient thresholds.

    matcher, detector = map_steps(layers, zones, thresholds)
    pipeline = Pipeline(config, outbox, matcher, detector)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from chumphae.detect.runner import Detectors
from chumphae.detect.thresholds import Thresholds
from chumphae.map.layers import MapLayers
from chumphae.map.match import Matcher as TaxMapMatcher
from chumphae.map.zones import Zone
from chumphae.values import Match, Position


class MapMatcher:
    """`Matcher` protocol: a position × the patient's tax-map zone → Match (None for no patient)."""

    def __init__(self, layers: MapLayers, zones: Mapping[int, Zone]) -> None:
        self.matcher = TaxMapMatcher(layers)
        self.zones = dict(zones)

    def __call__(self, position: Position, patient_id: int | None) -> Match | None:
        if patient_id is None:
            return None
        zone = self.zones.get(patient_id)
        m = self.matcher.match(position, zone)
        if zone is None:
            return m
        return replace(m, schedule="night" if zone.is_night(position.t) else "day")

    def match_many(self, positions: Sequence[Position], patient_ids: Sequence[int | None]) -> list[Match | None]:
        """The same Matches as calling this once per position, from one vectorised batch
        (`chumphae.map.match.Matcher.match_many`: one CRS transform, one STRtree query per layer)."""
        idx = [i for i, pid in enumerate(patient_ids) if pid is not None]
        out: list[Match | None] = [None] * len(positions)
        if idx:
            zones = [self.zones.get(patient_ids[i]) for i in idx]  # type: ignore[arg-type]
            ms = self.matcher.match_many([positions[i] for i in idx], zones, schedule=True)
            for i, m in zip(idx, ms, strict=True):
                out[i] = m
        return out


def map_steps(layers: MapLayers, zones: Mapping[int, Zone],
              thresholds: Mapping[int, Thresholds] | None = None) -> tuple[MapMatcher, Detectors]:
    """The (matcher, detector) pair for `gateway.pipeline.Pipeline`."""
    detectors = Detectors()
    for pid, th in (thresholds or {}).items():
        detectors.set_thresholds(pid, th)
    return MapMatcher(layers, zones), detectors


__all__ = ["MapMatcher", "map_steps"]
