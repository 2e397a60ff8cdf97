#!/usr/bin/env python3
"""A per-second trace of one bench patient's wander episodes, around the real bench (dev tool, issue 13).

It runs `scripts/bench_detect.py`'s own `run(..., only=[P])` (the same sites, plans, radio and pipeline, so the
same alerts as `bench_detect.py --seed N --only P --episodes`) with three recording subclasses swapped in for the
run: the source notes the true position each second, the pipeline lends its locator, the capture notes every fix
(match) and the wander state after it and after each tick. Nothing it records feeds back into the run.

Without `--around`: the patient's true excursions, episodes (the bench's EPISODE / FALSE_WANDER lines) and alerts.
With `--around T0[,T1]` (repeatable; wall seconds since the run's first local midnight, as the bench prints them):
one row per second from T0 - window to (T1 or T0) + window (whole seconds, rounded as the bench prints them):
  truth of second s: `true` signed distance to the zone in force (+ outside), `mirror` the same for the truth
    mirrored across the nearest assigned route (the line of receivers), the nearest road (`*` an assigned route)
    and its distance, the nearest receiver and its distance;
  the fix the pipeline stamped at s (its tick after second s - 1; `-` when the band was not re-estimated):
    status, `c` centre's signed distance, `u` uncertainty, `p` outside_p, `sh` outside_share, `clr` clearance,
    `in` the region's weight inside the zone (of it in the safe place) and the receivers nearest to it (H/F/Q/-:
    heard, faint, live but silent, says nothing), `ll t-in` the window's log-likelihood at the truth minus at
    the heaviest inside cell, `A` the area (1,000 m²) the window cannot tell from its best place, inside (safe
    place) / outside, `box∌t` / `over`: the truth outside the search box / beyond a receiver's reach, `q` live
    silent receivers, and the receivers that heard / heard faintly;
  the wander state after s: lean = first fix of the run leaning outside, held = first fix held outside, since =
    the excursion's dated start (set = confirmed/started), due = since + dwell, alerted / left, ALERT when raised.

Usage: .venv/bin/python scripts/trace_wander.py --seed 9 --patient 3 --rx-spacing 50 --around 45794,46154 --window 60
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_detect as bench  # noqa: E402

from chumphae.detect.wander import dwell_s  # noqa: E402
from chumphae.map.zones import build_zone  # noqa: E402
from chumphae.timeutil import BANGKOK  # noqa: E402
from chumphae.values import AlertType, Detection, Match, Position  # noqa: E402
from gateway.locate import RECEIVER_ALIVE_S  # noqa: E402
from gateway.pipeline import Pipeline  # noqa: E402


@dataclass
class Row:
    truth: str = ""
    fix: str = ""
    state: str = ""
    alerts: list[str] = field(default_factory=list)


class Recorder:
    """What the swapped-in classes write to: rows for the seconds in the spans [lo, hi] only."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        self.spans = spans
        self.rows: dict[int, Row] = {}
        self.src: Any = None
        self.pipe: Any = None
        self.t0: datetime | None = None
        self.site: Any = None

    def want(self, s: float) -> bool:
        return any(lo <= s <= hi for lo, hi in self.spans)

    def row(self, s: float) -> Row:
        return self.rows.setdefault(int(round(s)), Row())

    def secs(self, t: datetime | None) -> str:
        assert self.t0 is not None
        return "-" if t is None else f"{(t - self.t0).total_seconds():.0f}"


REC = Recorder([])


def _truth(src: Any) -> None:
    site, t0 = REC.site, REC.t0
    assert t0 is not None and site is not None
    s = (src.wall() - t0).total_seconds()
    if not REC.want(s):
        return
    lat, lon = src.sim.pos
    to_xy = bench.local_xy(site)
    x, y = to_xy(lat, lon)
    geom = site.zone.at(src.wall())
    p = shapely.Point(x, y)
    d = float(shapely.distance(geom.boundary, p)) * (-1.0 if shapely.intersects_xy(geom, x, y) else 1.0)
    routes = site.layers.routes
    idx, dist = routes.nearest(np.array([x]), np.array([y]))
    k = int(idx[0])
    assigned = "*" if any(routes.geoms[k] is g for g in site.routes) else ""
    near = min((math.dist((x, y), to_xy(r.lat, r.lon)), r.id) for r in site.config.receivers)
    g = min(site.routes, key=lambda r: r.distance(p))  # the nearest line of receivers
    q = g.interpolate(g.project(p))
    mx, my = 2 * q.x - x, 2 * q.y - y  # the truth mirrored across it: what the receivers on it cannot tell apart
    md = float(shapely.distance(geom.boundary, shapely.Point(mx, my))) * (
        -1.0 if shapely.intersects_xy(geom, mx, my) else 1.0)
    REC.row(s).truth = (f"true {d:+7.1f} mirror {md:+7.1f} road {routes.codes[k]}{assigned} {float(dist[0]):5.1f} "
                        f"rx {near[1].removeprefix('rx-')} {near[0]:5.1f}")


class TraceSource(bench.BenchSource):
    def __init__(self, scenario: Any, site: Any, start: datetime) -> None:
        super().__init__(scenario, site, start)
        REC.src, REC.t0 = self, start

    def second(self) -> list[Any]:
        out: list[Any] = super().second()
        _truth(self)
        return out


class TracePipeline(Pipeline):
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        REC.pipe = self


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _receivers(address: str) -> tuple[list[str], list[str], dict[str, str]]:
    """As the locator's last window read them (`Locator._rows`): receivers that heard the band (at least half
    its packets), faint ones (fewer), and each receiver's letter: H, F, Q (live, heard nothing: "probably beyond
    my range"), - (not live: says nothing)."""
    loc, now = REC.pipe.locator, REC.src.clock()
    b = loc._bands.get(address)
    counts = {r: sum(1 for mono, _ in q if mono >= now - loc.window_s) for r, q in (b.samples.items() if b else ())}
    counts = {r: n for r, n in counts.items() if n}
    heard: list[str] = []
    faint: list[str] = []
    for r, n in sorted(counts.items()):
        n_sent = max(n, min(b.full if b else n, loc._rx_full.get(r, n)))
        (faint if 2 * n < n_sent else heard).append(r.removeprefix("rx-"))
    status = {r: "Q" for r in loc.receivers if now - loc._rx_alive.get(r, -math.inf) <= RECEIVER_ALIVE_S}
    status.update({r: "F" if r.removeprefix("rx-") in faint else "H" for r in counts})
    return heard, faint, status


_NO_PLACE: dict[int, Any] = {}


def _no_place(site: Any) -> Any:
    """The patient's day zone without its safe place (`ZoneSpec.place_codes`): what the receivers cover."""
    if site.pid not in _NO_PLACE:
        spec = replace(site.zone.spec, place_codes=())
        _NO_PLACE[site.pid] = build_zone(site.layers, spec, patient_id=site.pid, version=1).day
    return _NO_PLACE[site.pid]


def _inside_part(position: Position, status: dict[str, str]) -> str:
    """Where the region's weight inside the zone sits: its total (and the part in the safe place, outside the
    zone built without it), then the two receivers nearest to most of it, each with the
    weight of the inside cells nearest to it, its distance from their weighted mean and what it said in this
    window (H heard, F faint, Q live but silent, - says nothing: not heard by any band for RECEIVER_ALIVE_S);
    `in -` when no weight is inside."""
    site = REC.site
    if not position.region or not position.region_weights:
        return "in -"
    to_xy = bench.local_xy(site)
    xy = np.array([to_xy(la, lo) for la, lo in position.region])
    w = np.array(position.region_weights)
    geom = site.zone.at(position.t)
    inside = shapely.intersects_xy(geom, xy[:, 0], xy[:, 1])
    if not inside.any() or w[inside].sum() <= 0:
        return "in -"
    rx = site.config.receivers
    rxy = np.array([to_xy(r.lat, r.lon) for r in rx])
    cells, cw = xy[inside], w[inside]
    near = np.argmin(np.hypot(cells[:, 0, None] - rxy[None, :, 0], cells[:, 1, None] - rxy[None, :, 1]), axis=1)
    place = shapely.intersects_xy(_no_place(site), cells[:, 0], cells[:, 1]) == 0  # in the safe place's part only
    out = [f"{cw.sum():.2f}(place {cw[place].sum():.2f})"]
    for k in sorted(set(near.tolist()), key=lambda k: -cw[near == k].sum())[:2]:
        sel = near == k
        cx, cy = (cells[sel] * cw[sel, None]).sum(axis=0) / cw[sel].sum()
        rid = rx[k].id
        out.append(f"{rid.removeprefix('rx-')}:{cw[sel].sum():.2f}{status.get(rid, '-')}"
                   f"@{math.dist((cx, cy), rxy[k]):.0f}")
    return "in " + ",".join(out)


def _evidence(position: Position) -> str:
    """The locator's own evidence for this window (`Locator._rows`, `_stack`, `track.Stack.loglik`; re-read at
    the same `now`, which changes nothing) at the truth against the heaviest region cell inside the zone:
    their log-likelihood difference (> 0: the window favours the truth), whether the truth lies outside the
    search box (where the 2 % fresh particles are drawn), and the receiver whose reach (heard or faint row)
    the truth is furthest beyond. Also the area the window cannot tell from its likeliest place (see below)."""
    loc, now, site = REC.pipe.locator, REC.src.clock(), REC.site
    b = loc._bands.get(position.address)
    counts = loc._window(b, now) if b else {}
    if not counts or not position.region or not position.region_weights:
        return "ev -"
    rows, box = loc._rows(b, counts, now)
    ev = loc._stack(rows, [len(rows)], [box])
    tx, ty = loc._to_xy(*REC.src.sim.pos)
    to_xy = bench.local_xy(site)
    geom = site.zone.at(position.t)
    ins = [(w, c) for w, c in zip(position.region_weights, position.region, strict=True)
           if shapely.intersects_xy(geom, *to_xy(*c))]
    out = ""
    if ins:
        ix, iy = loc._to_xy(*max(ins)[1])
        ll = ev.loglik(np.array([[tx, ix]]), np.array([[ty, iy]]))[0]
        out = f"ll t-in {ll[0] - ll[1]:+5.1f} "
    # the places the window cannot tell from its best (log-likelihood within 2 of the best, 10 m cells, 500 m
    # around the truth): their area inside the zone (of which in the safe place) and outside, in 1,000 m²
    g = np.arange(-500.0, 501.0, 10.0)
    gx, gy = np.meshgrid(tx + g, ty + g)
    gll = ev.loglik(gx.reshape(1, -1), gy.reshape(1, -1))[0]
    ok = gll >= gll.max() - 2.0
    la, lo = loc._to_latlon(gx.ravel()[ok], gy.ravel()[ok])
    mx, my = to_xy(la, lo)
    gin = shapely.intersects_xy(geom, mx, my)
    gplace = gin & ~shapely.intersects_xy(_no_place(site), mx, my)
    out += f"A in {gin.sum() / 10:.1f} (place {gplace.sum() / 10:.1f}) out {(~gin).sum() / 10:.1f} "
    x0, x1, y0, y1 = box
    out += "box∌t " if not (x0 <= tx <= x1 and y0 <= ty <= y1) else ""
    ids = list(loc.receivers)
    over = max(((math.dist((tx, ty), loc._xy[ids[i]]) - reach, ids[i]) for i, kind, _m, _s, reach in rows
                if kind < 2), default=None)
    if over is not None and over[0] > 0:
        out += f"over {over[1].removeprefix('rx-')} {over[0]:.0f}m"
    return out.strip() or "ev ok"


class TraceCapture(bench.Capture):
    def _state(self, s: float) -> None:
        st = self.detectors.states.get(REC.site.pid)
        if st is None or st.last_match is None:
            return
        w, m = st.wander, st.last_match
        due = None if w.outside_since is None else w.outside_since + timedelta(
            seconds=dwell_s(m, REC.site.th, m.position.t))
        REC.row(s).state = (f"lean {REC.secs(w.centre_out_since)} held {REC.secs(w.held_since)} "
                            f"since {REC.secs(w.outside_since)} due {REC.secs(due)}"
                            f"{' alerted' if w.alerted else ''}{' left' if w.left_alerted else ''}")

    def _keep(self, found: list[Detection]) -> list[Detection]:
        if REC.want(self.now):
            REC.row(self.now).alerts += [f"ALERT {d.type}" for d in found]
        return super()._keep(found)

    def on_position(self, position: Position, match: Match | None, patient_id: int | None) -> list[Detection]:
        out = super().on_position(position, match, patient_id)
        if REC.want(self.now) and match is not None:
            heard, faint, status = _receivers(position.address)
            quiet = sum(1 for v in status.values() if v == "Q")
            REC.row(self.now).fix = (
                f"{match.status.value[:3].upper()} c {match.distance_to_boundary_m or 0.0:+7.1f} "
                f"u {position.uncertainty_m:4.0f} p {_f(match.outside_p)} sh {_f(match.outside_share)} "
                f"clr {'-' if match.clearance_m is None else f'{match.clearance_m:.0f}'} {_inside_part(position, status)} {_evidence(position)} "
                f"q{quiet} heard [{','.join(heard)}] faint [{','.join(faint)}]")
            self._state(self.now)
        return out

    def tick(self, wall: datetime) -> list[Detection]:
        out = super().tick(wall)
        if REC.want(self.now):
            self._state(self.now)
        return out


@contextlib.contextmanager
def traced(spans: list[tuple[float, float]]) -> Iterator[Recorder]:
    """The bench with the recording classes swapped in, recording the seconds in `spans`; restored after."""
    global REC
    names = ("BenchSource", "Capture", "Pipeline", "run_patient")
    saved = [getattr(bench, n) for n in names]
    REC = Recorder(spans)
    real_run_patient = bench.run_patient

    def run_patient(site: Any, *a: Any, **k: Any) -> Any:
        REC.site = site
        return real_run_patient(site, *a, **k)

    for n, v in zip(names, (TraceSource, TraceCapture, TracePipeline, run_patient), strict=True):
        setattr(bench, n, v)
    try:
        yield REC
    finally:
        for n, v in zip(names, saved, strict=True):
            setattr(bench, n, v)


def trace(seed: int, patient: int, *, days: int = 5, patients: int = 20, spacing_m: float = bench.RX_SPACING_M,
          spans: list[tuple[float, float]] | None = None, place_rx: bool = True) -> tuple[Any, Recorder]:
    """The bench's report for this one patient (jobs=1) and what was recorded."""
    with traced(spans or []) as rec:
        rep = bench.run(days, patients, seed, spacing_m=spacing_m, only=[patient], place_rx=place_rx)
    return rep, rec


def clock(s: float) -> str:
    t = datetime(2025, 6, 2, tzinfo=BANGKOK) + timedelta(seconds=s)
    return f"d{int(s // bench.DAY)} {t:%H:%M:%S}"


def summary(seed: int, rep: Any) -> list[str]:
    r = rep.runs[0]
    out = [f"patient {r.pid} ({r.group}; dwell day {r.dwell_day:.0f} s, night {r.dwell_night:.0f} s)"]
    out += [f"  excursion exit {a:.0f} ({clock(a)}) return {b:.0f} ({b - a:.0f} s){' night' if n else ''}"
            for a, b, n in r.excursions]
    out += [f"  alert {x.type} at {x.at:.0f} ({clock(x.at)})" for x in r.raised if x.type in (
        AlertType.WANDER, AlertType.LEFT_COVERAGE)]
    return out + bench.episode_lines(seed, rep)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--patient", type=int, required=True)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--rx-spacing", type=float, default=bench.RX_SPACING_M)
    ap.add_argument("--no-place-rx", action="store_true", help="as bench_detect.py's: no safe-place receiver")
    ap.add_argument("--around", action="append", default=[], help="T0[,T1]: wall seconds (as the bench prints "
                    "them); may be repeated")
    ap.add_argument("--window", type=float, default=60.0, help="seconds before T0 and after T1")
    a = ap.parse_args(argv)
    spans = []
    for span in a.around:
        t = [float(v) for v in span.split(",")]
        spans.append((t[0] - a.window, t[-1] + a.window))
    rep, rec = trace(a.seed, a.patient, days=a.days, patients=a.patients, spacing_m=a.rx_spacing, spans=spans,
                     place_rx=not a.no_place_rx)
    last = None
    for s in sorted(rec.rows):
        if last is not None and s > last + 1:
            print("...")
        last = s
        r = rec.rows[s]
        print(f"{s:>7} {clock(s)[-8:]} {r.truth or '-':<59} | {r.fix or '-':<100} | {r.state} {' '.join(r.alerts)}")
    for line in summary(a.seed, rep):
        print(line)


if __name__ == "__main__":
    main()
