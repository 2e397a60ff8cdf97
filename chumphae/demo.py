"""`chumphae demo`: the whole system on a laptop, in one event loop.

SQLite, the demo district on the Chumphae map, the backend, a simulated
gateway for the town site (its bands wander, fall and press SOS on a
scenario), and the caregiver page. Prints the page URL and demo tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import webbrowser
from pathlib import Path

import typer
import uvicorn

from chumphae import logs
from chumphae.api.app import create_app
from chumphae.config import Settings
from chumphae.db import init_engine, session_scope
from chumphae.seed import print_tokens, rotate_gateway_tokens, seed_demo

log = logging.getLogger(__name__)

DEMO_SITE = "gw-chumphae-town"


def banner(url: str, tokens: dict[str, str]) -> str:
    caregiver = tokens.get("caregiver1", "")
    return "\n".join([
        "",
        "=" * 72,
        "  Smart Chumphae demo is running / ระบบสาธิตกำลังทำงาน",
        f"  Caregiver page / หน้าผู้ดูแล:  {url}/#token={caregiver}",
        f"  API docs:                     {url}/docs",
        "  A simulated patient will wander off within a minute; watch the alert arrive.",
        "  Press Ctrl+C to stop.",
        "=" * 72,
        "",
    ])


async def run_demo(settings: Settings, *, scenario: str, speed: float, open_browser: bool) -> None:
    from gateway.config import GatewaySettings
    from gateway.service import run_gateway
    from gateway.simulate.scenario import load as load_scenario

    engine = init_engine(settings.effective_database_url)
    with session_scope(engine) as session:
        result = seed_demo(session)
        gateway_tokens = rotate_gateway_tokens(session)
    print_tokens(result)

    server = uvicorn.Server(uvicorn.Config(create_app(settings, manage_engine=False), host=settings.host,
                                           port=settings.port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # re-raise why it could not start (e.g. the port is taken)
            raise typer.Exit(1)
        await asyncio.sleep(0.05)
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(banner(url, result.tokens))
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(f"{url}/#token={result.tokens.get('caregiver1', '')}")

    gw_dir = Path(settings.data_dir) / "demo-gateway"
    gw_settings = GatewaySettings(backend_url=url, token=gateway_tokens[DEMO_SITE], site_id=DEMO_SITE,
                                  queue_path=gw_dir / "outbox.sqlite3", config_cache=gw_dir / "config.json")
    stop = asyncio.Event()
    gateway = asyncio.create_task(run_gateway(gw_settings, scenario=load_scenario(scenario), speed=speed,
                                              stop=stop))
    try:
        done, _ = await asyncio.wait({serving, gateway}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is gateway and task.exception():
                log.error("simulated gateway stopped: %s", task.exception())
                await serving  # the backend keeps serving; Ctrl+C ends both
    finally:
        stop.set()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(serving, gateway, return_exceptions=True), 10)


def demo(settings: Settings, *, scenario: str = "demo", speed: float = 1.0, open_browser: bool = True) -> None:
    logs.setup(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, scenario=scenario, speed=speed, open_browser=open_browser))
