"""The gateway's fast paths give exactly what the straightforward ones give, on real band bytes.

* decode: the band decoder keeps the last verified payload per band and does not decrypt the very
  same bytes again; a changed byte, another key or an older counter still fail as before;
* match: a tick's positions matched in one batch (`MapMatcher.match_many`, cells of every region
  in one transform) = each position matched alone (`MapMatcher.__call__`, `_region_status`);
* the pipeline with the batch = the pipeline without it, item for item in the outbox, on the
  tax map with patients walking out, pressing SOS and going quiet;
* `Pipeline.feed` (repeated frames only located) = `Pipeline.handle` on every advert, likewise;
* the outbox bodies built field by field = `dataclasses.asdict` as before;
* the battery detector's remembered drain fit = the fit made afresh every time;
* the particle filter's likelihood = the first-written float64 arithmetic to float32 rounding, and
  its region cells = the first-written ones exactly.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from chumphae.detect import battery
from chumphae.detect.runner import Detectors
from chumphae.detect.state import PatientState
from chumphae.detect.thresholds import Thresholds
from chumphae.map.layers import MapLayers
from chumphae.map.zones import Zone
from chumphae.values import Advert, Match, Motion, Position, Reading, ZoneStatus
from gateway import track
from gateway.decode import chumphae_band, default_decoders
from gateway.locate import Locator
from gateway.pipeline import Pipeline, _json, alert_body, position_body, reading_body
from gateway.simulate.scenario import Event, PatientPlan, Radio, Scenario
from gateway.simulate.source import SimSource
from gateway.siteconfig import SiteConfig
from gateway.steps import MapMatcher
from tests.gateway.builders import T0

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import bench_gateway as bench
finally:
    sys.path.remove(str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def layers() -> MapLayers:
    return MapLayers.from_file(bench.MAP)


@pytest.fixture(scope="module")
def walk_outs(layers: MapLayers) -> tuple[SiteConfig, Zone, list[Advert | None]]:
    """Six patients of one tax-map home: two walk out of the zone, one presses SOS, one goes quiet."""
    site, zone, _ = bench.build(layers, 6, 1)
    home = site.patients[0]["home"]
    rng = random.Random(3)
    events = [(Event(5, "walk_out", {"beyond_m": 120, "speed_mps": 1.4}),),
              (Event(10, "sos", {"duration_s": 15}),),
              (Event(15, "walk_to", {"distance_m": 400, "bearing_deg": 45, "speed_mps": 1.5}),),
              (Event(40, "quiet", {"duration_s": 200}),),
              (), ()]
    plans = tuple(PatientPlan(band=i, at=(home["lat"] + rng.uniform(-5e-5, 5e-5), home["lon"] + rng.uniform(-5e-5, 5e-5)),
                              events=events[i]) for i in range(6))
    scen = Scenario("walk-outs", 3, 300.0, plans,
                    Radio(path_loss_n=2.2, noise_db=4.0, shadowing_db=3.0, drop_rate=0.15, repeats=3))
    return site, zone, list(SimSource(scen, site, speed=0, start=bench.START).frames())


class Recorder:
    """An outbox that keeps what it is given, as the JSON the uplink would send."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def put_many(self, items: Any) -> list[Any]:
        self.items.extend((kind, json.dumps(body, ensure_ascii=False)) for kind, body, _ in items)
        return []


class OneByOne:
    """A matcher without `match_many`: the pipeline then matches each position alone."""

    def __init__(self, inner: MapMatcher) -> None:
        self.inner = inner
        self.seen: list[tuple[Position, int | None]] = []

    def __call__(self, position: Position, patient_id: int | None) -> Match | None:
        self.seen.append((position, patient_id))
        return self.inner(position, patient_id)


def _steps(layers: MapLayers, site: SiteConfig, zone: Zone) -> tuple[MapMatcher, Detectors]:
    """The benchmark's steps with a 30 s wander dwell (so a short run raises a wander)."""
    m, d = bench._steps(layers, site, zone)
    for pid, th in d.thresholds.items():
        d.set_thresholds(pid, replace(th, wander_dwell_s=30.0, wander_dwell_night_s=30.0))
    return m, d


def _play(site: SiteConfig, items: list[Advert | None], matcher: Any, detectors: Detectors,
          pipeline: type[Pipeline] = Pipeline, feed: bool = False, locator: type[Locator] = Locator) -> Pipeline:
    pipe = pipeline(site, Recorder(), matcher, detectors)  # type: ignore[arg-type]
    pipe.locator = locator(site.receivers, window_s=15.0, coverage_timeout_s=60.0)
    now = 0.0
    for a in items:
        if a is None:
            now = float(int(now) + 1)
            pipe.tick(now, bench.START + timedelta(seconds=now))
        else:
            now = a.monotonic
            if feed:
                pipe.feed(a)
            else:
                pipe.handle(a)
    pipe.flush()
    return pipe


class Counting(Pipeline):
    """The pipeline, counting the adverts that went the whole way (`handle`)."""

    handled = 0

    def handle(self, advert: Advert) -> Reading | None:
        self.handled += 1
        return super().handle(advert)


def test_batched_ticks_give_the_same_outbox_as_one_by_one(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]]) -> None:
    site, zone, items = walk_outs
    m1, d1 = _steps(layers, site, zone)
    m2, d2 = _steps(layers, site, zone)
    one = OneByOne(m2)
    fast = _play(site, items, m1, d1)
    slow = _play(site, items, one, d2)
    assert isinstance(fast.outbox, Recorder) and isinstance(slow.outbox, Recorder)
    assert fast.outbox.items == slow.outbox.items
    assert d1.states == d2.states
    kinds = {json.loads(body)["type"] for kind, body in fast.outbox.items if kind == "alert"}
    assert {"wander", "sos"} <= kinds  # the run went where the batch has work to do
    assert fast.stats == slow.stats


def test_feed_gives_what_handle_gives(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]]) -> None:
    """`feed` (the scan loop's call) takes repeated band frames the short way, and the outbox, the
    detectors, the counters and the positions are those of `handle` for every advert."""
    site, zone, items = walk_outs
    m1, d1 = _steps(layers, site, zone)
    m2, d2 = _steps(layers, site, zone)
    fed = _play(site, items, m1, d1, Counting, feed=True)
    handled = _play(site, items, m2, d2)
    assert isinstance(fed.outbox, Recorder) and isinstance(handled.outbox, Recorder)
    assert fed.outbox.items == handled.outbox.items
    assert {kind for kind, _body in fed.outbox.items} == {"reading", "position", "alert"}
    assert d1.states == d2.states
    assert fed.stats == handled.stats and fed.decoders.stats == handled.decoders.stats
    adverts = sum(1 for a in items if a is not None)
    assert isinstance(fed, Counting) and fed.handled < adverts / 2  # most adverts are repeats
    assert {a: b.last for a, b in fed.locator._bands.items()} == {a: b.last for a, b in handled.locator._bands.items()}


def test_band_decoder_repeat_is_only_the_very_same_verified_bytes() -> None:
    address, key = "C0:FF:EE:00:00:01", bytes(range(16))
    keys = {address: key}
    reg = default_decoders(keys.get)
    band = reg.band
    assert band is not None
    state = chumphae_band.BandState(seq=7, battery_pct=64)
    payload = chumphae_band.encode(address, key, state)
    first = _frame_advert(address, key, state, "rx-a", 100.0, payload)
    assert band.repeat(first, payload) is None  # not verified yet
    assert reg.decode(first) is not None
    assert band.repeat(_frame_advert(address, key, state, "rx-b", 100.3, payload), payload) == 7
    bad = bytearray(payload)
    bad[-1] ^= 1
    assert band.repeat(_frame_advert(address, key, state, "rx-b", 100.4, bytes(bad)), bytes(bad)) is None
    keys[address] = bytes(16)
    assert band.repeat(_frame_advert(address, key, state, "rx-b", 100.5, payload), payload) is None
    keys[address] = key
    # past the repeat window the guard refuses the same counter: no repeat (decode counts the replay)
    late = _frame_advert(address, key, state, "rx-a", 106.0, payload)
    assert band.repeat(late, payload) is None
    assert reg.decode(late) is None and reg.stats.replays == 1


def test_match_many_is_each_position_matched_alone(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]]) -> None:
    site, zone, items = walk_outs
    m, d = _steps(layers, site, zone)
    one = OneByOne(m)
    _play(site, items, one, d)
    positions = [p for p, _pid in one.seen]
    pids = [pid for _p, pid in one.seen]
    alone = [m(p, pid) for p, pid in one.seen]
    assert m.match_many(positions, pids) == alone
    # the region cells decide some of them, both ways, and the batched cells = the cell-by-cell rule
    assert sum(1 for x in alone if x is not None and x.status != ZoneStatus.UNCERTAIN and x.position.region
               and abs(x.distance_to_boundary_m or 0.0) < x.position.uncertainty_m) > 0
    uncertain = [(p, zone) for p in positions if p.region]
    batch = m.matcher._region_statuses([p for p, _z in uncertain], [z for _p, z in uncertain],
                                       [z.at(p.t) for p, z in uncertain])
    assert batch == [m.matcher._region_status(p, z) for p, z in uncertain]
    assert {s for s, _c, _f, _q in batch} == {ZoneStatus.INSIDE, ZoneStatus.OUTSIDE, ZoneStatus.UNCERTAIN}


def _frame_advert(address: str, key: bytes, state: chumphae_band.BandState, receiver: str, mono: float,
                  payload: bytes | None = None) -> Advert:
    raw = payload if payload is not None else chumphae_band.encode(address, key, state)
    return Advert(address, -70, receiver, T0 + timedelta(seconds=mono), mono, {chumphae_band.COMPANY_ID: raw})


def test_band_decoder_reuses_only_the_very_same_verified_bytes() -> None:
    address, key = "C0:FF:EE:00:00:01", bytes(range(16))
    keys = {address: key}
    reg = default_decoders(keys.get)
    state = chumphae_band.BandState(seq=7, sos=True, battery_pct=64, steps=12,
                                    motion=Motion(1.5, 0.5, 1.0, 10.0, -20.0))
    payload = chumphae_band.encode(address, key, state)
    want = chumphae_band.decode_frame(address, key, payload)
    for k, rx in enumerate(("rx-a", "rx-b", "rx-a")):  # one frame heard by several receivers, repeated
        r = reg.decode(_frame_advert(address, key, state, rx, 100.0 + k * 0.3, payload))
        assert r is not None and r.receiver == rx and r.authenticated
        assert (r.seq, r.sos, r.battery_pct, r.steps, r.motion) == (want.seq, want.sos, float(want.battery_pct),
                                                                      want.steps, want.motion)
    # a flipped bit of the cached frame is no cached frame
    bad = bytearray(payload)
    bad[-1] ^= 1
    assert reg.decode(_frame_advert(address, key, state, "rx-a", 101.0, bytes(bad))) is None
    assert reg.stats.auth_failures == 1
    # the same bytes under a rotated key do not verify
    keys[address] = bytes(16)
    assert reg.decode(_frame_advert(address, key, state, "rx-a", 101.1, payload)) is None
    assert reg.stats.auth_failures == 2
    keys[address] = key
    # a newer frame, then the cached older one again after the repeat window: a replay
    newer = chumphae_band.BandState(seq=8)
    assert reg.decode(_frame_advert(address, key, newer, "rx-a", 102.0)) is not None
    assert reg.decode(_frame_advert(address, key, state, "rx-a", 102.1, payload)) is None
    assert reg.stats.replays == 1 and reg.stats.decoded == {"chumphae": 4}


def test_bodies_are_asdict_field_for_field(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]]) -> None:
    site, zone, items = walk_outs
    m, d = _steps(layers, site, zone)
    one = OneByOne(m)
    _play(site, items[:4000], one, d)
    for p, pid in one.seen[:200]:
        match = m(p, pid)
        ref = _json(asdict(p))
        ref.pop("region")
        ref.pop("region_weights")  # the region's cell weights stay in the gateway, like the region
        ref.pop("passages")  # the track's smoothed past too (wander-15)
        ref["patient_id"] = pid
        mref = _json(asdict(match)) if match is not None else None
        if mref is not None:
            mref.pop("position")
        ref["match"] = mref
        assert json.dumps(position_body(p, pid, match)) == json.dumps(ref)
    r = Reading("C0:FF:EE:00:00:01", "chumphae", -70, "rx-a", T0, seq=3, battery_pct=50.0, worn=True,
                motion=Motion(1.0, 0.9, 1.0, None, 4.0), accel_g=(0.0, 0.1, float("nan")))
    ref = _json(asdict(r))
    ref["patient_id"] = 5
    assert json.dumps(reading_body(r, 5)) == json.dumps(ref)
    alerts = [json.loads(body) for kind, body in _play(site, items, m, d).outbox.items  # type: ignore[attr-defined]
              if kind == "alert"]
    assert alerts and all(a["match"] is None or "position" not in a["match"] for a in alerts)
    assert alert_body  # the alert body reuses match_body (compared above through position_body)


def test_battery_fit_remembered_is_the_fit_made_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    th = Thresholds()

    def run() -> list[Any]:
        state, out = PatientState(patient_id=41), []
        for s in range(0, 5 * 3600, 7):  # five hours, a reading every 7 s, draining
            r = Reading("C0:FF:EE:00:00:01", "chumphae", -70, "rx-a", T0 + timedelta(seconds=s),
                        battery_pct=round(30.0 - s / 1200.0, 1), worn=True)
            state, found = battery.step(state, r, th, r.t)
            out.append((state.battery, [replace(f, details=dict(f.details)) for f in found]))
        return out

    fast = run()
    monkeypatch.setattr(battery, "_drain", lambda _pid, samples: battery.drain(samples))
    assert run() == fast
    assert any(found for _b, found in fast)


def _loglik_reference(ev: track.Evidence, px: NDArray[np.float64], py: NDArray[np.float64]) -> NDArray[np.float64]:
    """`Evidence.loglik` as first written (masks and columns taken afresh on every call)."""
    d2 = (px[:, None] - ev.x[None, :]) ** 2 + (py[:, None] - ev.y[None, :]) ** 2
    mu = ev.p1m[None, :] - ev.slope[None, :] * np.log(np.maximum(0.25, d2))
    heard = ev.kind == 0
    ll = np.zeros(len(px))
    if heard.any():
        z = (ev.rssi[heard][None, :] - mu[:, heard]) / ev.sigma[heard][None, :]
        ll -= 0.5 * np.einsum("ij,ij->i", z, z)
    bounded = np.isfinite(ev.reach)
    if bounded.any():
        over = np.maximum(0.0, np.sqrt(d2[:, bounded]) - ev.reach[bounded][None, :]) / track.REACH_SOFT_M
        ll -= 0.5 * np.einsum("ij,ij->i", over, over)
    cens = ~heard
    if cens.any():
        zc = (ev.sensitivity - mu[:, cens]) / ev.sigma[cens][None, :]
        ll -= np.logaddexp(0.0, -1.702 * zc).sum(axis=1)
    return ll


def _windows(layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]],
             monkeypatch: pytest.MonkeyPatch, adverts: int) -> list[list[track.Evidence]]:
    """The windows of a real run's ticks (each tick's bands in order) as `track.Evidence`, one per band."""
    site, zone, items = walk_outs
    ticks: list[list[track.Evidence]] = []
    real_rows, real_many = Locator._rows, Locator.estimate_many

    def rows(self: Locator, *args: Any) -> Any:
        r, box = real_rows(self, *args)
        ia = np.array([x[0] for x in r])
        cols = np.array([x[1:] for x in r], dtype=float)
        ticks[-1].append(track.Evidence(self._rx_x[ia], self._rx_y[ia], self._rx_p1m[ia], self._rx_n[ia],
                                        cols[:, 0].astype(np.int8), cols[:, 1], cols[:, 2], self.sensitivity_dbm,
                                        cols[:, 3], box))
        return r, box

    def many(self: Locator, *args: Any) -> Any:
        ticks.append([])
        return real_many(self, *args)

    monkeypatch.setattr(Locator, "_rows", rows)
    monkeypatch.setattr(Locator, "estimate_many", many)
    m, d = _steps(layers, site, zone)
    _play(site, items[:adverts], m, d)
    monkeypatch.undo()
    return [t for t in ticks if t]


def test_track_fast_arithmetic_matches_the_first_written(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The particle filter's likelihood (coefficients prepared once per window, receiver by receiver
    over every band of a tick, float32 arithmetic) equals the first-written float64 arithmetic to
    float32 rounding (a millionth of each term; 1e-5 relative leaves room for the sums), and its
    region cells (ranked without a sort) exactly, on the windows of a real run."""
    seen = [ev for tick in _windows(layers, walk_outs, monkeypatch, 6000) for ev in tick]
    assert len(seen) > 50
    rng = np.random.default_rng(1)
    for ev in seen:
        px, py = track._uniform(rng, ev.box, 512)
        np.testing.assert_allclose(ev.loglik(px, py), _loglik_reference(ev, px, py), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(ev.loglik(px[:64], py[:64]), _loglik_reference(ev, px[:64], py[:64]),
                                   rtol=1e-5, atol=1e-4)
    for spread in (3.0, 40.0, 300.0, 5000.0):  # the last one is wider than the dense table: sorted
        px, py = rng.normal(0.0, spread, 512), rng.normal(0.0, spread, 512)
        for cell in track.CELL_SIZES:
            ix, iy, inv, k = track._cells(px, py, cell)
            key = (ix - ix.min()) * (int(iy.max() - iy.min()) + 1) + (iy - iy.min())
            uniq, want = np.unique(key, return_inverse=True)
            assert k == len(uniq) and np.array_equal(inv, want)


def test_bands_stepped_together_get_what_each_gets_alone(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick's windows stacked (`track.stack`: padded rows, one likelihood pass or one per receiver)
    weigh each band's places exactly as its window alone does, and `track.step_many` gives each band
    exactly the track `track.step` gives it alone (the same random streams), on the windows of a real run."""
    ticks = [t for t in _windows(layers, walk_outs, monkeypatch, 20000) if len(t) > 1]
    assert len(ticks) > 10 and max(len(t) for t in ticks) >= 4
    assert {int(k) for t in ticks for ev in t for k in ev.kind} == {0, 1, 2}  # heard, faint and quiet rows
    rng = np.random.default_rng(2)

    def stacked(evs: list[track.Evidence]) -> track.Stack:
        fields = ("x", "y", "p1m", "n", "kind", "rssi", "sigma", "reach")
        cat = [np.concatenate([getattr(ev, f) for ev in evs]) for f in fields]  # heard, faint, quiet already
        x, y, p1m, n, kind, rssi, sigma, reach = cat
        return track.stack([len(ev.x) for ev in evs], x, y, p1m, n, kind, rssi, sigma, reach, evs[0].sensitivity,
                           [ev.box for ev in evs])

    # a stack too large for one pass goes receiver by receiver: the same numbers as one pass and as each alone
    many = [ev for tick in ticks[:10] for ev in tick]
    big = stacked(many)
    px, py = rng.uniform(-400.0, 400.0, (2, len(many), 576))
    by_rows = big._loglik_rows(px, py)
    assert big.x.shape[0] * px.size > track.BLOCK_ELEMENTS >= big.x.shape[0] * 576
    assert np.array_equal(by_rows, big.loglik(px, py)) and np.array_equal(by_rows, big._loglik_block(px, py))
    for j, ev in enumerate(many):
        assert np.array_equal(by_rows[j], ev.loglik(px[j], py[j]))
    stepped = resampled = 0
    for tick in ticks:
        stack = stacked(tick)
        px = np.stack([track._uniform(rng, ev.box, 576)[0] for ev in tick])
        py = np.stack([track._uniform(rng, ev.box, 576)[1] for ev in tick])
        together = stack.loglik(px, py)
        for j, ev in enumerate(tick):
            assert np.array_equal(together[j], ev.loglik(px[j], py[j]))
        # tracks of several ages (one past REINIT_S: started afresh), one band without a track yet
        seeds = [int(s) for s in rng.integers(1 << 30, size=len(tick))]
        tracks: list[track.Track | None] = []
        for j, ev in enumerate(tick):
            t0 = track.start(ev, 100.0, np.random.default_rng(seeds[j]))
            for s in range(1 + j % 3):
                t0 = track.step(t0, ev, 101.0 + s, np.random.default_rng(seeds[j] + s))
            t0.t = 105.0 - (40.0 if j == 1 else j % 4)
            if j % 3 == 0:  # weights far from even: this step resamples
                t0.w, t0.even = rng.dirichlet(np.full(len(t0.w), 0.05)), False
            tracks.append(None if j == 2 else t0)
        rngs = [np.random.default_rng(s) for s in seeds]
        batch = track.step_many(tracks, stack, 105.0, rngs)
        for j, (ev, tr) in enumerate(zip(tick, tracks, strict=True)):
            one_rng = np.random.default_rng(seeds[j])
            alone = track.start(ev, 105.0, one_rng) if tr is None else track.step(tr, ev, 105.0, one_rng)
            got = batch[j]
            for name in ("px", "py", "vx", "vy", "w"):
                assert np.array_equal(getattr(got, name), getattr(alone, name)), name
            assert (got.t, got.cx, got.cy, got.even) == (alone.t, alone.cx, alone.cy, alone.even)
            assert rngs[j].random() == one_rng.random()  # the same draws taken from each stream
            stepped += tr is not None and j != 1
            resampled += got.even and tr is not None and j != 1
    assert stepped > 50 and resampled > 0  # systematic resampling ran in some batches


class OneAtATime(Locator):
    """The locator, estimating a tick's bands one by one (a batch of one each)."""

    def estimate_many(self, addresses: Any, now: float) -> list[Position | None]:
        return [super(OneAtATime, self).estimate_many([a], now)[0] for a in addresses]


def test_batched_locate_gives_the_same_outbox_as_one_band_at_a_time(
        layers: MapLayers, walk_outs: tuple[SiteConfig, Zone, list[Advert | None]]) -> None:
    """The pipeline's tick steps its due bands' tracks in one batch; estimating them one by one
    gives the same positions, regions and outbox, item for item."""
    site, zone, items = walk_outs
    m1, d1 = _steps(layers, site, zone)
    m2, d2 = _steps(layers, site, zone)
    batched = _play(site, items, m1, d1)
    alone = _play(site, items, m2, d2, locator=OneAtATime)
    assert isinstance(batched.outbox, Recorder) and isinstance(alone.outbox, Recorder)
    assert batched.outbox.items == alone.outbox.items
    assert d1.states == d2.states and batched.stats == alone.stats
    assert {a: b.last for a, b in batched.locator._bands.items()} == {a: b.last for a, b in alone.locator._bands.items()}
    for a, b in batched.locator._bands.items():
        other = alone.locator._bands[a].track
        assert b.track is not None and other is not None and np.array_equal(b.track.px, other.px)
