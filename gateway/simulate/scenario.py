"""Scenario files (YAML or JSON): a site, its patients, their routes and what happens to them.

    name: night-wander
    seed: 7                      # same seed, same adverts
    duration_s: 300
    start: "22:00+07:00"         # optional; default: now. A time of day (HH:MM with an offset, Bangkok
                                 # without one) is its latest occurrence before now, so a night scenario
                                 # runs at night yet within the backend's time window; or a full ISO time
                                 # (Asia/Bangkok without an offset)
    description: "one line for --list-scenarios"
    promises: [wander, fall]     # alert types it raises (tests check each against a seeded backend)
    prefer_backend_site: false   # true: use the backend's site config when there is one and keep
                                 # `site` only as the fallback (receivers too, if the backend has none)
    site: {...}                  # a site config (docs/gateway-protocol.md §2); optional when the
                                 # backend's config is used instead
    radio: {path_loss_n: 2.9, noise_db: 4, shadowing_db: 3, drop_rate: 0.15, sensitivity_dbm: -100,
            p1m_dbm: -59, repeats: 1}
    patients:
      - band: "C0:FF:EE:00:00:01"   # or an index into the site's bands
        at: home | [lat, lon]        # start (default: home, else the first route point)
        route: [[lat, lon], ...]     # walked back and forth; default: the part of the site's route for the
                                     # patient inside the zone in force at the start (night zone at night)
        speed_mps: 0.8
        battery_pct: 80
        drain_pct_per_h: 1.5
        events:
          - {at: 20, type: walk_to, to: [lat, lon], speed_mps: 1.2}   # wander
          - {at: 20, type: walk_to, distance_m: 400, bearing_deg: 90}  # relative: works on any site
          - {at: 20, type: walk_path, path: [[lat, lon], ...], speed_mps: 1.0}   # along these points
          - {at: 20, type: walk_out, beyond_m: 120, speed_mps: 1.1}  # home → along the patient's route →
                                                     # out of the safe zone, ending beyond_m outside it
          - {at: 25, type: quiet, duration_s: 1800}  # the band says nothing (broken, shielded)
          - {at: 30, type: fall}
          - {at: 40, type: sos, duration_s: 30}
          - {at: 50, type: remove_band}   /  {at: 90, type: put_on}
          - {at: 60, type: stop}          /  {at: 70, type: resume}
          - {at: 80, type: battery, pct: 9}
          - {at: 90, type: charge}        /  {at: 99, type: uncharge}

Leaving coverage is walking (`walk_to`) further than the receivers hear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from chumphae.timeutil import BANGKOK, utcnow
from gateway import siteconfig
from gateway.siteconfig import SiteConfig

EVENT_TYPES = {"walk_to", "walk_path", "walk_out", "quiet", "fall", "sos", "remove_band", "put_on", "stop", "resume", "battery", "charge", "uncharge"}
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    type: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PatientPlan:
    band: str | int
    at: str | tuple[float, float] = "home"
    route: tuple[tuple[float, float], ...] = ()
    speed_mps: float = 0.8
    battery_pct: float = 90.0
    drain_pct_per_h: float = 1.0
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class Radio:
    p1m_dbm: float = -59.0
    path_loss_n: float = 2.7
    noise_db: float = 3.0
    shadowing_db: float = 2.0
    drop_rate: float = 0.1
    sensitivity_dbm: float = -100.0
    repeats: int = 1


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    seed: int
    duration_s: float
    patients: tuple[PatientPlan, ...]
    radio: Radio = Radio()
    site: SiteConfig | None = None
    start: datetime | None = None
    prefer_backend_site: bool = False
    description: str = ""  # one line for --list-scenarios
    promises: tuple[str, ...] = ()  # the alert types this scenario raises (its tests check them)

    def runs_on(self) -> str:
        """Where it runs, for --list-scenarios."""
        own = self.site.site_id if self.site is not None else None
        if self.prefer_backend_site:
            site = ("with a backend, or stand-alone on a cached site config (GATEWAY_CONFIG_CACHE): that site and "
                    "its bands (band 0 = its first band)")
            return f"{site}; stand-alone without one: its own site {own}" if own else f"{site} only"
        return f"its own site {own} only (bands of a backend's site are not used)"


def parse_start(text: str, now: datetime | None = None) -> datetime:
    """A scenario's `start`: a full ISO 8601 time, or a time of day (`22:00`, `22:00+07:00`) meaning its
    latest occurrence at or before `now`; either without an offset is Asia/Bangkok time (a person wrote it; a
    full time had stayed naive, then read in the machine's own zone: fix17, issue 13)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return at.replace(tzinfo=BANGKOK) if at.tzinfo is None else at
    try:
        of_day = time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"start {text!r} is neither an ISO 8601 time nor a time of day like 22:00+07:00") from None
    zone = of_day.tzinfo or BANGKOK
    local_now = (now or utcnow()).astimezone(zone)
    at = datetime.combine(local_now.date(), of_day.replace(tzinfo=None), tzinfo=zone)
    return at if at <= local_now else at - timedelta(days=1)


def _pt(v: Any) -> tuple[float, float]:
    lat, lon = v
    return float(lat), float(lon)


def parse(doc: dict[str, Any]) -> Scenario:
    patients = []
    for p in doc.get("patients") or []:
        events = []
        for e in p.get("events") or []:
            e = dict(e)
            at, kind = float(e.pop("at")), str(e.pop("type"))
            if kind not in EVENT_TYPES:
                raise ValueError(f"unknown event type {kind!r} (know: {sorted(EVENT_TYPES)})")
            if "to" in e:
                e["to"] = _pt(e["to"])
            events.append(Event(at, kind, e))
        at = p.get("at", "home")
        patients.append(
            PatientPlan(
                band=p["band"],
                at=at if isinstance(at, str) else _pt(at),
                route=tuple(_pt(x) for x in p.get("route") or ()),
                speed_mps=float(p.get("speed_mps", 0.8)),
                battery_pct=float(p.get("battery_pct", 90.0)),
                drain_pct_per_h=float(p.get("drain_pct_per_h", 1.0)),
                events=tuple(sorted(events, key=lambda e: e.at)),
            )
        )
    start = doc.get("start")
    return Scenario(
        name=str(doc.get("name", "scenario")),
        seed=int(doc.get("seed", 1)),
        duration_s=float(doc.get("duration_s", 120)),
        patients=tuple(patients),
        radio=Radio(**(doc.get("radio") or {})),
        site=siteconfig.parse(doc["site"]) if doc.get("site") else None,
        start=parse_start(start) if isinstance(start, str) else start,
        prefer_backend_site=bool(doc.get("prefer_backend_site", False)),
        description=str(doc.get("description", "")),
        promises=tuple(str(x) for x in doc.get("promises") or ()),
    )


def load(path_or_name: str | Path) -> Scenario:
    """A scenario file, or the name of one shipped in gateway/scenarios ("demo")."""
    p = Path(path_or_name)
    if not p.is_file():  # a folder named like a scenario is not one: the shipped one is meant
        for ext in (".yaml", ".yml", ".json"):
            cand = SCENARIO_DIR / f"{path_or_name}{ext}"
            if cand.exists():
                p = cand
                break
        else:
            raise FileNotFoundError(f"no scenario {path_or_name!r} (shipped: {shipped()})")
    text = p.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: a scenario is a mapping")
    return parse(doc)


def shipped() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.y*ml"))


def listing() -> list[str]:
    """One line per shipped scenario: name, what it does, where it runs (`--list-scenarios`)."""
    lines = []
    for name in shipped():
        scen = load(name)
        lines.append(f"{name} — {scen.description} [{scen.runs_on()}]")
    return lines
