"""The gateway as an asyncio task: `await run_gateway(settings, ...)`.

Used by `chumphae-gateway` and by anything that wants a gateway inside its
own process (the integrated demo runs the backend and a simulated gateway in
one event loop). Wires: site config (backend → disk cache → scenario) →
source (radio, simulator or a recording) → pipeline → outbox → uplink.

The raw-stream path (`gateway.gatt`: GATT sessions for the fall model) gets
bleak's client on the radio, the simulator's simulated GATT under `--simulate`,
none on a replay (a recording holds adverts only).

Every background task (pipeline, uplink, config poll, outbox housekeeping:
disk-full recovery and the replay guard's counters; the GATT sessions'
request loop; the scanner watchdog in `gateway.scan`) runs under one `chumphae.supervise.Supervisor`: a failure is
logged with its traceback, the task restarts with capped, jittered backoff,
and the heartbeat carries `task_restarts` and `last_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from chumphae.supervise import Supervisor, wait_up_to
from chumphae.values import Advert
from gateway import __version__, siteconfig
from gateway.basic import BasicDetector, ZoneMatcher
from gateway.config import GatewaySettings
from gateway.decode.chumphae_band import ReplayGuard
from gateway.pipeline import Detector, Matcher, Pipeline
from gateway.queue import Outbox
from gateway.record import RecordingSource
from gateway.replay import ReplaySource
from gateway.simulate.scenario import Scenario
from gateway.simulate.source import SimSource
from gateway.siteconfig import SiteConfig
from gateway.uplink import BackendClock, Uplink

if TYPE_CHECKING:
    from gateway.gatt import ClientFactory, RawPath, RawStreams, Verdict

log = logging.getLogger(__name__)


class Source(Protocol):
    """Adverts in time order; None whenever time passed without one. Has its own clock."""

    def clock(self) -> float: ...

    def wall(self) -> datetime: ...

    def __aiter__(self) -> AsyncIterator[Advert | None]: ...


class Steps(Protocol):
    def __call__(self, config: SiteConfig) -> tuple[Matcher, Detector]: ...


def default_steps(config: SiteConfig) -> tuple[Matcher, Detector]:
    """The match and detect steps: `chumphae.detect` detectors with per-patient thresholds (the
    zone's `dwell_s` as the wander dwell) when installed, else the fallback in `gateway.basic`.
    Matching is `gateway.basic.ZoneMatcher` (safe-zone polygons from the site config); it judges
    night by each patient's own night hours, the same rule the detectors use, and says so in
    `Match.schedule`, so matcher (night geometry) and detectors (night dwell) agree."""
    try:
        from chumphae.detect.runner import Detectors
        from chumphae.detect.thresholds import is_night, thresholds_for
    except ImportError:  # a gateway built without the detection package
        matcher = ZoneMatcher(config)
        return matcher, BasicDetector(matcher)
    detectors = Detectors()
    dwell = {int(z["patient_id"]): float(z["dwell_s"]) for z in config.zones if z.get("dwell_s") is not None}
    for p in config.patients:
        if p.get("id") is None:
            continue
        pid = int(p["id"])
        overrides: dict[str, object] = dict(p.get("thresholds") or {})
        if pid in dwell:
            overrides.setdefault("wander_dwell_s", dwell[pid])
            overrides.setdefault("wander_dwell_night_s", dwell[pid])
        try:
            th = thresholds_for(p.get("adl_score"), p.get("ltc_group"), overrides)
        except ValueError as e:
            log.error("patient %s: bad thresholds (%s); group defaults used", pid, e)
            th = thresholds_for(p.get("adl_score"), p.get("ltc_group"))
        detectors.set_thresholds(pid, th)

    def night(pid: int, t: datetime) -> bool:
        return is_night(t, detectors.thresholds.get(pid, detectors.default))  # the detectors' own rule

    return ZoneMatcher(config, night=night), detectors


def raw_path(settings: GatewaySettings, connect: ClientFactory | None, wall: Callable[[], datetime]) -> RawPath | None:
    """The GATT raw-stream path (`gateway.gatt.RawPath`) over `connect` (a client factory: bleak's
    for the radio, the simulator's for a simulation), or None: no factory (a replay), switched off
    (`GATEWAY_GATT_ENABLED=false`), or a gateway built without the detection package."""
    if connect is None or not settings.gatt_enabled:
        return None
    try:
        from gateway.gatt import RawPath, RawStreams
    except ImportError as exc:
        log.warning("raw-stream fall path off: %s (falls from per-second summaries only)", exc)
        return None

    def streams(on_verdict: Callable[[Verdict], None]) -> RawStreams:
        return RawStreams(connect, on_verdict, wall=wall, max_connections=settings.gatt_max_connections,
                          session_s=settings.gatt_session_s, connect_timeout_s=settings.gatt_connect_timeout_s)

    return RawPath(streams, trigger_g=settings.gatt_trigger_g, dedupe_s=settings.fall_dedupe_s)


def simulated_site(scenario: Scenario, backend: SiteConfig | None) -> SiteConfig:
    """Which site a simulation runs on (see `prefer_backend_site` in gateway.simulate.scenario)."""
    # a backend site with fewer bands than the scenario's patients need cannot carry it (stand-alone then)
    too_small = backend is not None and scenario.site is not None and len(backend.bands) <= max(
        (p.band for p in scenario.patients if isinstance(p.band, int)), default=-1)
    if backend is None or (scenario.site is not None and (not scenario.prefer_backend_site or too_small)):
        if scenario.site is None:
            raise RuntimeError("scenario has no site and no site config could be fetched or loaded")
        return scenario.site
    if not backend.receivers and scenario.site is not None:
        return replace(backend, receivers=scenario.site.receivers, by_address={})
    return backend


async def load_config(
    settings: GatewaySettings, current: SiteConfig | None = None, why: list[str] | None = None
) -> SiteConfig | None:
    """The backend's config if reachable (and cache it), else the last good copy: `current` (the
    one in use, whose ETag is sent as If-None-Match) or, without one, the disk cache. `why`: as `siteconfig.fetch`."""
    cached = current or siteconfig.load_cache(settings.config_cache)
    if not settings.token:
        if cached is None and why is not None:
            why.append("no GATEWAY_TOKEN to fetch one with")
        return cached
    async with httpx.AsyncClient() as client:
        fresh = await siteconfig.fetch(client, settings.config_url, settings.token, cached, why)
    if fresh is not None and fresh is not cached:
        siteconfig.save_cache(settings.config_cache, fresh)
    return fresh or cached


class Gateway:
    """One running gateway: holds the pipeline, outbox and uplink; `run` until stopped."""

    def __init__(
        self,
        settings: GatewaySettings,
        config: SiteConfig,
        source: Source,
        *,
        steps: Steps = default_steps,
        uplink: bool = True,
        simulated: bool = False,
        scanner_health: Any = None,
        supervisor: Supervisor | None = None,
        persist_counters: bool | None = None,
        gatt: ClientFactory | None = None,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor(backoff_min_s=settings.backoff_min_s,
                                                   backoff_max_s=settings.backoff_max_s)
        self.config = config
        self.source = source
        self.steps = steps
        self.simulated = simulated
        # what hello and the heartbeat say: any simulated source (a scenario, the district demo's twins)
        self.simulation = simulated or isinstance(getattr(source, "inner", source), SimSource)
        self.scanner_health = scanner_health
        self.outbox = Outbox(settings.queue_path, memory_max=settings.memory_queue_max)
        # One replay guard for the life of the gateway (kept across config changes), seeded from the
        # outbox database so a restart does not reopen old frames. A simulation does not persist:
        # its bands' counters start over with every run of the scenario.
        self.replay_guard = ReplayGuard()
        self.persist_counters = not simulated if persist_counters is None else persist_counters
        if self.persist_counters:
            self.replay_guard.restore(self.outbox.load_counters(), now=source.clock(), margin=settings.replay_margin)
        self.raw = raw_path(settings, gatt, source.wall)  # None: no GATT client, or switched off
        matcher, detector = steps(config)
        self.pipeline = self._pipeline(config, matcher, detector)
        self.uplink = (
            Uplink(
                settings.ws_url,
                settings.token,
                self.outbox,
                hello=self.hello,
                health=self.health,
                on_config_changed=self.refresh_config,
                heartbeat_s=settings.heartbeat_s,
                ack_timeout_s=settings.ack_timeout_s,
                max_in_flight=settings.max_in_flight,
                backoff_min_s=settings.backoff_min_s,
                backoff_max_s=settings.backoff_max_s,
                poison_after=settings.poison_after,
                alert_url=settings.alert_url,
            )
            if uplink
            else None
        )
        self.started = time.monotonic()
        self._rate: tuple[float, int] = (self.started, 0)
        self.source_done = asyncio.Event()
        self._refreshing = asyncio.Lock()
        self.replaying: ReplaySource | None = None
        self.recorder: RecordingSource | None = None

    def _pipeline(self, config: SiteConfig, matcher: Matcher, detector: Detector) -> Pipeline:
        s = self.settings
        pipe = Pipeline(
            config, self.outbox, matcher, detector,
            window_s=s.locate_window_s, coverage_timeout_s=s.coverage_timeout_s,
            position_every_s=s.position_every_s,
            on_queued=lambda: self.uplink.notify() if self.uplink else None,
            replay_guard=self.replay_guard,
        )
        if self.raw is not None:
            pipe.raw = self.raw
            self.raw.patient_for = config.patient_for
            self.raw.sink = pipe.emit  # a session's verdict goes to the pipeline in use
        return pipe

    def hello(self) -> dict[str, Any]:
        return {
            "gateway_version": __version__,
            "site_id": self.config.site_id,
            "config_etag": self.config.etag,
            "queue_depth": self.outbox.depth()[0],
            "simulated": self.simulation,
        }

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        ds = self.pipeline.decoders.stats
        t0, n0 = self._rate
        n = self.pipeline.stats.adverts
        self._rate = (now, n)
        depth, alerts = self.outbox.depth()
        scan = self.scanner_health() if self.scanner_health else {}
        tasks = self.supervisor.health()
        if tasks["last_error"] is None and self.outbox.disk_full:
            tasks["last_error"] = f"outbox: {self.outbox.last_disk_error}"[:130]
        elif tasks["last_error"] is None and self.outbox.last_damage:
            tasks["last_error"] = f"outbox: {self.outbox.last_damage}"[:130]
        return {
            "uptime_s": round(now - self.started, 1),
            "adverts_total": n,
            "adverts_per_s": round((n - n0) / max(1e-6, now - t0), 1),
            "drops": scan.get("drops", 0) + self.outbox.dropped + self.outbox.memory_dropped,
            "decode_failures": ds.malformed,
            "auth_failures": ds.auth_failures,
            "replays": ds.replays,
            "queue_depth": depth,
            "queue_alerts": alerts,
            "rejected": self.uplink.stats.rejected if self.uplink else 0,
            "deferred": self.uplink.stats.deferred if self.uplink else 0,
            "alert_socket": self.uplink.lane_health() if self.uplink else None,
            "disk_full": self.outbox.disk_full,
            "clock_offset_s": self.uplink.stats.clock_offset_s if self.uplink else None,
            "memory_queue": self.outbox.memory_queue(),
            "memory_dropped": self.outbox.memory_dropped,
            "outbox_replaced": self.outbox.replaced,
            **tasks,
            **(self.raw.health() if self.raw is not None else {}),
            "scanner_restarts": scan.get("restarts", 0),
            "scanner_state": scan.get("state", "simulated" if self.simulation else "unknown"),
            "bands_heard": len(self.pipeline._last_seq),
            "config_etag": self.config.etag,
            "simulated": self.simulation,
        }

    def save_counters(self, *, everything: bool = False) -> None:
        """Store the band counters accepted since the last save (each tick; all of them at shutdown).
        A crash loses at most one tick of them: `settings.replay_margin` covers that on restore."""
        if self.persist_counters:
            g = self.replay_guard
            self.outbox.save_counters(g.snapshot() if everything else g.dirty())

    async def refresh_config(self) -> None:
        """On `config_changed` and every `config_poll_s`: fetch (If-None-Match: the ETag in use),
        and rebuild the steps that depend on the config. Backend away: the config in use stays."""
        async with self._refreshing:  # a poll and a config_changed at once: one fetch at a time
            new = await load_config(self.settings, self.config)
            if new is None or new is self.config or new.etag == self.config.etag:
                return
            self._apply(new)

    def _apply(self, new: SiteConfig) -> None:
        if self.simulated:
            return  # a simulation keeps the site it started with (its bands' keys)
        log.info("site config changed: version %s", new.version)
        self.config = new
        matcher, detector = self.steps(new)
        old = self.pipeline
        self.pipeline = self._pipeline(new, matcher, detector)
        self.pipeline.decoders.stats = old.decoders.stats

    async def run(self, stop: asyncio.Event) -> None:
        sup = self.supervisor
        tasks: list[asyncio.Task[Any]] = [
            # the radio never ends: its pipeline returning is a fault; a simulation or a recording ends
            sup.spawn("pipeline", lambda: self._consume(stop), stop, restart_on_return=self.scanner_health is not None),
            sup.spawn("outbox", lambda: self._housekeeping(stop), stop, restart_on_return=True),
        ]
        if self.uplink is not None:
            uplink = self.uplink
            tasks.append(sup.spawn("uplink", lambda: uplink.run(stop), stop, restart_on_return=True))
        if self.raw is not None:
            streams = self.raw.streams
            tasks.append(sup.spawn("gatt", lambda: streams.run(stop), stop, restart_on_return=True))
        if self.settings.token and self.settings.config_poll_s > 0:
            tasks.append(sup.spawn("config-poll", lambda: self._poll_config(stop), stop, restart_on_return=True))
        try:
            await stop.wait()
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                self.pipeline.flush()
            with contextlib.suppress(Exception):
                self.save_counters(everything=True)
            self.outbox.close()

    async def _housekeeping(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        """Each second: check that the outbox file is still there (deleted or replaced: rebuilt, faults19), try
        the disk again during a disk-full episode (then wake the uplink: what was held in memory is on disk
        now) and store the band counters accepted since the last time."""
        while True:
            if await wait_up_to(stop.wait(), every_s):
                return
            self.outbox.check_file()
            if self.outbox.disk_full and self.outbox.recover() and self.uplink is not None:
                self.uplink.notify()
            self.save_counters()

    async def _poll_config(self, stop: asyncio.Event) -> None:
        """The safety net under `config_changed` (a push lost while the socket was down)."""
        while True:
            if await wait_up_to(stop.wait(), self.settings.config_poll_s):
                return
            try:
                await self.refresh_config()
            except Exception:  # noqa: BLE001 - a bad poll must not end the gateway; the next one retries
                log.exception("site config poll failed; keeping the config in use")

    async def _consume(self, stop: asyncio.Event) -> None:
        next_tick = self.source.clock() + 1.0
        async with contextlib.aclosing(aiter(self.source)) as adverts:  # type: ignore[type-var]
            async for advert in adverts:
                if advert is not None:
                    self.pipeline.feed(advert)
                now = self.source.clock()
                if now >= next_tick:
                    self.pipeline.tick(now, self.source.wall())
                    self.save_counters()  # each tick of the source's clock (also each second in `_housekeeping`)
                    next_tick = now + 1.0
                if stop.is_set():
                    return
        self.pipeline.flush()
        self.source_done.set()


async def run_gateway(
    settings: GatewaySettings,
    *,
    source: Source | None = None,
    scenario: Scenario | None = None,
    speed: float = 1.0,
    config: SiteConfig | None = None,
    steps: Steps = default_steps,
    stop: asyncio.Event | None = None,
    exit_when_done: bool = False,
    record: Path | None = None,
    replay: Path | None = None,
    shift_to_now: bool = False,
    gatt: ClientFactory | None = None,
    max_ahead_s: float | None = None,
) -> Gateway:
    """Run a gateway until `stop` is set (or, with `exit_when_done`, the source ends and the outbox
    is empty). Give a `scenario` to simulate, a `replay` recording to play back (ends when the file
    does), a `source` for anything else; with none of them, the real radio is used. `record` writes
    every advert the source hands over to that file (gateway/record.py). A recording that cannot be
    read or written raises ValueError before anything starts. `max_ahead_s`: the scenario's (or replay's) clock
    runs at `speed` until it is that far ahead of the wall clock, then at real time (`SimSource.max_ahead_s`)."""
    stop = stop or asyncio.Event()
    supervisor = Supervisor(backoff_min_s=settings.backoff_min_s, backoff_max_s=settings.backoff_max_s)
    replaying: ReplaySource | None = None
    if replay is not None:
        replaying = ReplaySource(replay, speed=speed, shift_to_now=shift_to_now)
        replaying.max_ahead_s = max_ahead_s
        source, exit_when_done = replaying, True
    why: list[str] = []  # why the backend gave no config: said in the line the gateway stops with
    if config is None:
        config = await load_config(settings, why=why)
    no_config = f"no site config: {why[-1] if why else 'backend unreachable'} and no cached copy"
    scanner_health = None
    backend_clock = None
    if scenario is not None:
        if config is None and settings.token:  # its own site's bands under a real gateway's token: all refused
            raise RuntimeError(no_config)
        config = simulated_site(scenario, config)
        sim = SimSource(scenario, config, speed=speed)
        sim.max_ahead_s = max_ahead_s
        source = sim  # its bands stream over simulated GATT (below)
    if gatt is None and settings.gatt_enabled and isinstance(source, SimSource):
        gatt = source.gatt_clients()  # a simulation handed over whole (the district demo): its GATT too
    if config is None:
        raise RuntimeError(no_config)
    kind = "simulated" if scenario is not None else "replay" if replaying is not None else "source"
    if source is None:
        from gateway.scan import RadioSource, Scanner

        backend_clock = BackendClock()  # the uplink sets it from the welcome's server_time (a broken clock)
        scanner = Scanner(settings.adapter, settings.receiver_id, scan_mode=settings.scan_mode,
                          watchdog_s=settings.watchdog_s, queue_size=settings.scan_queue_size, wall=backend_clock)
        source = RadioSource(scanner, supervisor=supervisor)
        scanner_health = scanner.health
        if gatt is None and settings.gatt_enabled:
            from gateway.gatt import bleak_factory

            gatt = bleak_factory(settings.adapter, settings.gatt_connect_timeout_s)
        kind = "radio"
    recorder = RecordingSource(source, record, kind=kind) if record is not None else None
    gw = Gateway(settings, config, recorder or source, steps=steps, simulated=scenario is not None,
                 uplink=bool(settings.token), scanner_health=scanner_health, supervisor=supervisor,
                 persist_counters=False if replaying is not None else None, gatt=gatt)
    gw.replaying = replaying
    gw.recorder = recorder
    if backend_clock is not None and gw.uplink is not None:
        gw.uplink.clock = backend_clock
    runner = asyncio.create_task(gw.run(stop))
    try:
        if exit_when_done:
            done = asyncio.create_task(gw.source_done.wait())
            await asyncio.wait([runner, done], return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            # the outbox is on disk: no event says it emptied, so poll it
            while not runner.done() and gw.outbox.depth()[0] and gw.uplink is not None and not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            stop.set()
        await runner
    finally:
        if recorder is not None:
            recorder.close()
    return gw
