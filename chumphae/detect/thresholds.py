"""Per-patient detector thresholds, with defaults by dependency group.

Why per patient: a wanderer (NHSO LTC group 2: mobile but cognitively
confused) must raise a wander alert within a couple of minutes, while an
independent elder (ติดสังคม) walking to the market must not raise one at all
for a short stroll past the safe zone. One set of numbers for everyone is
either too slow for the first or too noisy for the second.

Groups, most specific first:
  - "wanderer": NHSO group 2, whatever the ADL score;
  - "bedbound" ติดเตียง: Barthel ADL 0–4;
  - "homebound" ติดบ้าน: ADL 5–11;
  - "social" ติดสังคม: ADL ≥ 12;
  - "unknown": no score recorded: the homebound numbers (cautious middle).

A patient's own overrides (`Patient.thresholds`, a JSON dict, or a zone's
`dwell_s`) are applied on top by `thresholds_for`. Unknown keys are refused
rather than silently ignored: a typo in a threshold must not leave a patient
with the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, time

from chumphae.timeutil import to_bangkok


@dataclass(frozen=True, slots=True)
class Thresholds:
    group: str = "unknown"
    # wander
    wander_dwell_s: float = 300.0  # confirmed outside this long by day → wander
    wander_dwell_night_s: float = 120.0  # … at night (stricter)
    wander_margin_m: float = 0.0  # the uncertainty disc must clear the zone by this much
    night_start: time = time(20, 0)  # Asia/Bangkok
    night_end: time = time(6, 0)
    left_coverage_s: float = 120.0  # not heard this long after being near the edge/outside
    edge_m: float = 30.0  # "near the edge": within this many metres inside the boundary
    # band
    silent_s: float = 1800.0  # not heard this long while at home → band silent
    removed_still_s: float = 1200.0  # band lies dead still (table) this long while patient is active
    removed_worn_off_s: float = 60.0  # worn flag off this long → band removed
    # battery
    battery_low_pct: float = 20.0
    battery_low_hours: float = 24.0  # alert when the estimated hours left fall below this
    battery_critical_pct: float = 5.0
    # fall (per-second summaries)
    fall_impact_g: float = 2.0
    fall_min_confidence: float = 0.5
    # sos
    sos_debounce_s: float = 60.0  # one press repeated in many adverts is one SOS


_BY_GROUP: dict[str, dict[str, object]] = {
    "social": {"wander_dwell_s": 900.0, "wander_dwell_night_s": 300.0, "left_coverage_s": 300.0,
               "silent_s": 3600.0, "removed_still_s": 1800.0},
    "homebound": {},
    "unknown": {},
    "bedbound": {"wander_dwell_s": 180.0, "wander_dwell_night_s": 60.0, "left_coverage_s": 120.0,
                 "silent_s": 1200.0, "removed_still_s": 3600.0},  # bedbound people lie still: be slow here
    "wanderer": {"wander_dwell_s": 120.0, "wander_dwell_night_s": 30.0, "left_coverage_s": 60.0,
                 "silent_s": 900.0, "removed_still_s": 900.0, "edge_m": 50.0},
}


def dependency_group(adl_score: int | None, nhso_group: int | None) -> str:
    """The group whose defaults apply (see module docstring)."""
    if nhso_group == 2:
        return "wanderer"
    if adl_score is None:
        return "unknown"
    if adl_score >= 12:
        return "social"
    if adl_score >= 5:
        return "homebound"
    return "bedbound"


def _coerce(name: str, kind: object, value: object) -> object:
    if kind in (float, "float") and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (str, "str") and isinstance(value, str):
        return value
    if kind in (time, "time"):
        if isinstance(value, time):
            return value
        if isinstance(value, str):
            hh, _, mm = value.partition(":")
            return time(int(hh), int(mm or 0))
    raise ValueError(f"threshold {name!r}: bad value {value!r}")


def thresholds_for(adl_score: int | None = None, nhso_group: int | None = None,
                   overrides: Mapping[str, object] | None = None) -> Thresholds:
    """Defaults for the patient's group, then the patient's own overrides."""
    group = dependency_group(adl_score, nhso_group)
    th = replace(Thresholds(group=group), **_BY_GROUP[group])  # type: ignore[arg-type]
    if not overrides:
        return th
    kinds = {f.name: f.type for f in fields(Thresholds)}
    unknown = sorted(set(overrides) - set(kinds) - {"group"})
    if unknown:
        raise ValueError(f"unknown threshold(s): {', '.join(unknown)}")
    values = {k: _coerce(k, kinds[k], v) for k, v in overrides.items() if k != "group"}
    for k, v in values.items():
        if isinstance(v, float) and v < 0:
            raise ValueError(f"threshold {k!r} must not be negative")
    return replace(th, **values)  # type: ignore[arg-type]


def is_night(t: datetime, th: Thresholds) -> bool:
    """Whether `t` falls in the patient's night schedule (judged in Asia/Bangkok)."""
    local = to_bangkok(t).time()
    if th.night_start <= th.night_end:
        return th.night_start <= local < th.night_end
    return local >= th.night_start or local < th.night_end
