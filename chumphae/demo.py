"""`chumphae demo`: the whole system on a laptop, in one event loop.

SQLite, the demo district on the Chumphae map, the backend, the caregiver
page and a simulated twin of every seeded gateway (the town and the eight
villages): all patients live their day (`gateway.simulate.district`) until
stopped, and every few minutes one excursion (a walk out of the zone along a
route, a fall, an SOS, a band taken off, a band going quiet) is announced in
Thai and English, then played. With `--scenario`, one scenario on its site
instead. Patients are named by demo code and invented first name; never CID.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import uvicorn
from sqlmodel import select

from chumphae import logs
from chumphae.api.app import create_app
from chumphae.config import Settings
from chumphae.db import init_engine, session_scope
from chumphae.detect.thresholds import Thresholds, is_night, thresholds_for
from chumphae.models import Patient
from chumphae.seed import print_tokens, rotate_gateway_tokens, seed_demo
from chumphae.timeutil import BANGKOK

# --speed above 1: the simulated clock runs ahead of the wall clock no further than MAX_AHEAD_S, then at real
# time (the backend refuses positions stamped more than 10 minutes ahead: chumphae/ingest/envelope.py FUTURE);
# one definition, the gateway's: `chumphae-gateway --simulate` / `--replay` with a backend keep the same cap.
from gateway.cli import MAX_AHEAD_S

if TYPE_CHECKING:
    from gateway.config import GatewaySettings
    from gateway.service import Gateway
    from gateway.simulate.district import DistrictSource
    from gateway.simulate.scenario import Scenario

log = logging.getLogger(__name__)

DEMO_SITE = "gw-chumphae-town"
FIRST_EXCURSION_S = 20.0  # simulated seconds after start: the first walk out begins within a minute
LEAD_S = 15.0  # announced this long before it starts


OUTSIDE_GATEWAY = (
    "  gateways: the seeded ones are simulated here with tokens issued at each start (not printed);\n"
    "  for a gateway of your own beside them (a client, --replay), keep its token across restarts:\n"
    f"    chumphae gateways create --slug gw-mine --name \"my gateway\" --site {DEMO_SITE}"
)


def banner(url: str, tokens: dict[str, str], *, district: bool = True) -> str:
    caregiver = tokens.get("caregiver1", "")
    what = ("  Every seeded gateway is simulated; all patients live their day.\n"
            "  ทุกเกตเวย์จำลองทำงาน ผู้ป่วยทุกคนใช้ชีวิตประจำวัน ทุกไม่กี่นาทีจะมีเหตุการณ์หนึ่ง (ประกาศล่วงหน้าด้านล่าง)\n"
            "  Every few minutes one event happens, announced below; the first, a walk out of the\n"
            "  safe zone, starts within a minute.") if district else "  One scenario on its site."
    return "\n".join([
        "",
        "=" * 72,
        "  Smart Chumphae demo is running / ระบบสาธิตกำลังทำงาน",
        f"  Caregiver page / หน้าผู้ดูแล:  {url}/#token={caregiver}",
        f"  API docs:                     {url}/docs",
        what,
        "  Press Ctrl+C to stop. / กด Ctrl+C เพื่อหยุด",
        "=" * 72,
        "",
    ])


@dataclass(frozen=True, slots=True)
class Who:
    code: str  # P-001: the code the gateway and the page use
    first_name: str  # invented demo name (English), fine on a demo console


def _who(engine: object) -> dict[int, Who]:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        return {p.id: Who(f"P-{p.id:03d}", (p.name_en or "").split(" ")[0])  # type: ignore[misc]
                for p in session.exec(select(Patient)).all()}


async def _serve(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    from chumphae.cli import server_options  # the cli imports this module

    # the same WebSocket options as `chumphae serve` (frames up to 1 MiB, no permessage-deflate)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, manage_engine=False, jobs=True), host=settings.host,
                                           port=settings.port, log_config=None, lifespan="on", **server_options()))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # re-raise why it could not start (e.g. the port is taken)
            raise typer.Exit(1)
        await asyncio.sleep(0.05)
    return server, serving, f"http://{settings.host}:{settings.port}"


def _gateway_settings(settings: Settings, url: str, slug: str, token: str) -> GatewaySettings:
    from gateway.config import GatewaySettings

    gw_dir = Path(settings.data_dir) / "demo-gateways" / slug
    return GatewaySettings(backend_url=url, token=token, site_id=slug, queue_path=gw_dir / "outbox.sqlite3",
                           config_cache=gw_dir / "config.json")


async def run_demo(settings: Settings, *, scenario: str | None = None, speed: float = 1.0, every: float = 180.0,
                   open_browser: bool = False) -> None:
    plot = None
    if scenario is not None:  # a wrong name or a broken file is said before anything starts
        from gateway.simulate.scenario import load as load_scenario

        try:
            plot = load_scenario(scenario)
        except (OSError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    engine = init_engine(settings.effective_database_url)
    with session_scope(engine) as session:
        result = seed_demo(session)
        gateway_tokens = rotate_gateway_tokens(session, seeded_only=True)
    result.gateway_tokens = {}  # just replaced for the simulated twins: printing the seed's would hand out dead ones
    print_tokens(result)
    typer.echo(OUTSIDE_GATEWAY)
    server, serving, url = await _serve(settings)
    typer.echo(banner(url, result.tokens, district=scenario is None))
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(f"{url}/#token={result.tokens.get('caregiver1', '')}")
    stop = asyncio.Event()
    tasks: set[asyncio.Task[object]] = {serving}
    try:
        if plot is not None:
            tasks.add(asyncio.create_task(_scenario(settings, url, gateway_tokens[DEMO_SITE], plot, speed, stop)))
        else:
            tasks |= await _district(settings, url, gateway_tokens, _who(engine), speed, every, stop)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not serving and not task.cancelled() and task.exception():
                log.error("simulated gateway stopped: %s", task.exception())
                await serving  # the backend keeps serving; Ctrl+C ends both
    finally:
        stop.set()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def _scenario(settings: Settings, url: str, token: str, scenario: Scenario, speed: float,
                    stop: asyncio.Event) -> Gateway:
    """One scenario on the demo site's gateway, at `speed` but, as the living district, never more than
    `MAX_AHEAD_S` ahead of the wall clock (the backend refuses positions 10 minutes ahead of its clock)."""
    from gateway.service import run_gateway

    gw = _gateway_settings(settings, url, DEMO_SITE, token)
    return await run_gateway(gw, scenario=scenario, speed=speed, stop=stop, max_ahead_s=MAX_AHEAD_S)


async def _district(settings: Settings, url: str, tokens: dict[str, str], who: dict[int, Who], speed: float,
                    every: float, stop: asyncio.Event) -> set[asyncio.Task[object]]:
    """One simulated gateway per seeded site, all patients on their routine, and the excursion clock."""
    from gateway.service import load_config, run_gateway

    sources: dict[str, DistrictSource] = {}
    tasks: set[asyncio.Task[object]] = set()
    coverage_s = 60.0
    for slug, token in sorted(tokens.items()):
        gw = _gateway_settings(settings, url, slug, token)
        coverage_s = gw.coverage_timeout_s
        config = await load_config(gw)
        if config is None or not config.bands:
            continue
        source = district_source(config, slug, speed)
        sources[slug] = source
        tasks.add(asyncio.create_task(run_gateway(gw, source=source, config=config, stop=stop),
                                      name=f"gateway {slug}"))
    typer.echo(f"simulating {len(sources)} gateways, {sum(len(s.sims) for s in sources.values())} bands "
               f"/ จำลอง {len(sources)} เกตเวย์ {sum(len(s.sims) for s in sources.values())} สายรัดข้อมือ")
    tasks.add(asyncio.create_task(_excursions(sources, who, speed, every, stop, coverage_s), name="demo excursions"))
    return tasks


def district_source(config: object, slug: str, speed: float) -> DistrictSource:
    """One seeded site's living district as the demo runs it: at `speed`, but never more than `MAX_AHEAD_S`
    ahead of the wall clock (after that, real time: the speed-up lasts MAX_AHEAD_S / (speed - 1) seconds)."""
    from gateway.simulate.district import DistrictSource
    from gateway.siteconfig import SiteConfig

    assert isinstance(config, SiteConfig)
    source = DistrictSource(config, speed=speed, seed=sum(map(ord, slug)))
    source.max_ahead_s = MAX_AHEAD_S
    return source


def plan(sites: dict[str, int], walk_bands: Mapping[str, int] | None = None) -> Iterator[tuple[str, str, int]]:
    """(kind, site, band) forever: a walk out first (on the town), then a fall, an SOS, a band taken off,
    a band going quiet, on sites and bands in turn. A walk out is played by the site's band in
    `walk_bands` (the one whose wander alert comes soonest, `quickest_walk_out`), else its first band."""
    order = [DEMO_SITE, *sorted(s for s in sites if s != DEMO_SITE)] if DEMO_SITE in sites else sorted(sites)
    site_turn = itertools.cycle(order)
    for round_no in itertools.count():
        for kind in ("walk_out", "fall", "sos", "remove_band", "quiet"):
            site = next(site_turn)
            band = (walk_bands or {}).get(site, 0) if kind == "walk_out" else (round_no + 1) % sites[site]
            yield kind, site, band


async def _excursions(sources: Mapping[str, object], who: dict[int, Who], speed: float, every: float,
                      stop: asyncio.Event, coverage_s: float = 60.0) -> None:
    from gateway.simulate.district import DistrictSource

    srcs: dict[str, DistrictSource] = {k: v for k, v in sources.items() if isinstance(v, DistrictSource)}
    if not srcs:
        return
    clock = srcs.get(DEMO_SITE) or next(iter(srcs.values()))
    turns = plan({k: len(v.sims) for k, v in srcs.items()}, {k: quickest_walk_out(v) for k, v in srcs.items()})
    next_at = FIRST_EXCURSION_S
    while not stop.is_set():
        if clock.clock() >= next_at - LEAD_S:
            for _ in range(len(srcs) * 5):
                kind, site, band = next(turns)
                src = srcs[site]
                if src.busy_until[band] <= src.clock() + LEAD_S:
                    break
            else:
                next_at += every
                continue
            ex = src.excursion(kind, band, at=src.clock() + LEAD_S)
            typer.echo(announce(ex, src, site, who, speed, coverage_s))
            next_at += every
            if ex.leaves_zone_at is not None:  # let the wander alert come first
                next_at = max(next_at, clock.clock() + (ex.leaves_zone_at - src.clock()) + 180.0)
        await asyncio.sleep(0.25 / speed if speed > 0 else 0.01)


def quickest_walk_out(src: object, at: float | None = None) -> int:
    """The band whose walk out of its zone, started at simulated second `at` (default: the first
    excursion's time), raises the wander alert soonest: seconds to the edge of the zone in force
    plus the dwell in force then (so the demo's first alert comes a minute or two after it starts)."""
    from gateway.simulate.district import DistrictSource

    assert isinstance(src, DistrictSource)
    start = FIRST_EXCURSION_S if at is None else at
    best, best_s = 0, float("inf")
    for i, s in enumerate(src.sims):
        _walk, leaves, _out = src.walk_out_plan(i, start)
        if leaves is None:
            continue
        due = leaves + dwell_in_force(src, s.band.patient_id, start + leaves)
        if due < best_s:
            best, best_s = i, due
    return best


def _thresholds(src: object, patient_id: int | None) -> Thresholds:
    from gateway.simulate.district import DistrictSource

    assert isinstance(src, DistrictSource)
    p = next((q for q in src.site.patients if q.get("id") == patient_id), {})
    return thresholds_for(p.get("adl_score"), p.get("ltc_group"), p.get("thresholds") or None)


def dwell_in_force(src: object, patient_id: int | None, sim_s: float) -> float:
    """The wander dwell that applies at simulated second `sim_s`: the night one in the patient's night hours."""
    from gateway.simulate.district import DistrictSource

    assert isinstance(src, DistrictSource)
    th = _thresholds(src, patient_id)
    return th.wander_dwell_night_s if is_night(src.start + timedelta(seconds=sim_s), th) else th.wander_dwell_s


def _labels() -> tuple[Callable[[str], str], Callable[[str], str]]:
    """The alert's name as the page and the messages give it (Thai, English): the announcement names the
    alert the viewer will see, not a paraphrase of it."""
    from chumphae.alert.render import TYPE_LABELS

    return (lambda t: TYPE_LABELS[t][0]), (lambda t: TYPE_LABELS[t][1])


def announce(ex: object, src: object, site: str, who: dict[int, Who], speed: float,
             coverage_s: float = 60.0) -> str:
    """What is about to happen and when, in Thai and English (code and invented first name, never a CID).
    `coverage_s`: the gateway's `coverage_timeout_s` (a band unheard that long is out of coverage)."""
    from gateway.simulate.district import DistrictSource, Excursion

    assert isinstance(ex, Excursion) and isinstance(src, DistrictSource)
    person = who.get(ex.patient_id or -1, Who(f"P-{ex.patient_id or 0:03d}", ""))
    th = _thresholds(src, ex.patient_id)

    def at(sim_s: float) -> str:
        real = src.real_s_until(sim_s, speed)
        local = (src.start + timedelta(seconds=sim_s)).astimezone(BANGKOK).strftime("%H:%M:%S")
        return f"{local} (+{real:.0f} s)"

    name = f"{person.code} {person.first_name}".strip()
    label_th, label_en = _labels()
    if ex.kind == "walk_out":
        # the zone and the dwell in force when the walk gets out (at night: home only, the night dwell)
        leaves = ex.leaves_zone_at if ex.leaves_zone_at is not None else ex.at
        dwell = dwell_in_force(src, ex.patient_id, leaves)
        th_text = (f"เดินออกนอกเขตปลอดภัยตามเส้นทางเดิน ออกนอกเขตราว {at(leaves)} "
                   f"แจ้งเตือน '{label_th('wander')}' ราว {at(leaves + dwell)} (อยู่นอกเขต {dwell:.0f} วินาที) "
                   f"หยุดห่างเขต {ex.end_outside_m or 0:.0f} ม. แล้วพากลับบ้านภายหลัง")
        en_text = (f"walks out of the safe zone along a walking route: leaves it about {at(leaves)}, wander alert "
                   f"'{label_en('wander')}' expected about {at(leaves + dwell)} (after {dwell:.0f} s outside), "
                   f"stops {ex.end_outside_m or 0:.0f} m outside; brought home later")
    elif ex.kind == "fall":
        th_text = f"หกล้ม {at(ex.at)} แจ้งเตือน '{label_th('fall')}' ภายในราวหนึ่งนาที"
        en_text = f"falls at {at(ex.at)}; '{label_en('fall')}' alert expected within a minute"
    elif ex.kind == "sos":
        th_text = f"กดปุ่มขอความช่วยเหลือ {at(ex.at)} แจ้งเตือน '{label_th('sos')}' ทันที"
        en_text = f"presses SOS at {at(ex.at)}; '{label_en('sos')}' alert at once"
    elif ex.kind == "remove_band":
        # the band's worn flag goes off at once: the alert comes after `removed_worn_off_s`
        th_text = (f"ถอดสายรัดข้อมือวางไว้ {at(ex.at)} แจ้งเตือน '{label_th('band_removed')}' ราว "
                   f"{at(ex.at + th.removed_worn_off_s)} (เซ็นเซอร์การสวมใส่ดับ {th.removed_worn_off_s:.0f} วินาที) "
                   f"แล้วใส่กลับภายหลัง")
        en_text = (f"takes the band off at {at(ex.at)}; '{label_en('band_removed')}' alert expected about "
                   f"{at(ex.at + th.removed_worn_off_s)} (worn sensor off {th.removed_worn_off_s:.0f} s); "
                   f"puts it back on later")
    else:
        # silence near the zone's edge (the usual case: a fix's uncertainty reaches within `edge_m` of
        # it) is left coverage, as soon as the gateway calls the band out of coverage or after
        # `left_coverage_s`, whichever is first; well inside the zone it is a band silent at home
        left = min(th.left_coverage_s, coverage_s)
        th_text = (f"สายรัดข้อมือเงียบ (ไม่ส่งสัญญาณ) ตั้งแต่ {at(ex.at)} แจ้งเตือน '{label_th('left_coverage')}' ราว "
                   f"{at(ex.at + left)} ถ้าตำแหน่งล่าสุดอยู่ห่างขอบเขตปลอดภัยไม่เกิน {th.edge_m:.0f} ม. "
                   f"มิฉะนั้น '{label_th('band_silent')}' ราว {at(ex.at + th.silent_s)}")
        en_text = (f"band goes quiet at {at(ex.at)}; '{label_en('left_coverage')}' alert expected about "
                   f"{at(ex.at + left)} if its last fix was within {th.edge_m:.0f} m of the "
                   f"zone's edge, else '{label_en('band_silent')}' about {at(ex.at + th.silent_s)}")
    return f"\n>>> {site} {name}: {th_text}\n    {site} {name}: {en_text}"


def demo(settings: Settings, *, scenario: str | None = None, speed: float = 1.0, every: float = 180.0,
         open_browser: bool = True) -> None:
    logs.setup(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, scenario=scenario, speed=speed, every=every, open_browser=open_browser))
