"""`chumphae gateways receivers GATEWAY [--add …] [--remove ID]`: a field engineer adds, moves or removes a
site's BLE receivers after the gateway was registered (outside21).

Before it, receivers could be given only at `chumphae gateways create --receiver`: a receiver added, moved or
taken down later had no way into the site config. Driven as an engineer does it: the real `chumphae` command in
its own process on the database of a real backend (uvicorn on a loopback port) to which the gateway is
connected; the gateway is told `config_changed` (docs/gateway-protocol.md §3.2, §5) and the REST site config
(§2) has the new receivers under a new ETag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from chumphae.cli import app
from chumphae.config import get_settings
from chumphae.db import make_engine
from chumphae.errors import ConfigError
from chumphae.ingest import siteconfig
from chumphae.models import Gateway
from tests.feed.liveserver import LiveServer, recv_json, recv_until
from tests.ingest.conftest import Site

CHUMPHAE = str(Path(sys.executable).parent / "chumphae")
runner = CliRunner()
RPH = {"id": "rx-rph", "lat": 16.5442, "lon": 102.0997, "p1m_dbm": -59}  # the site fixture's receiver


def _chumphae(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env["CHUMPHAE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'test.db'}"  # the live server's database
    return subprocess.run(
        [CHUMPHAE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


def _config(server: LiveServer, site: Site, etag: str | None = None) -> httpx.Response:
    headers = site.auth() | ({"If-None-Match": etag} if etag else {})
    return httpx.get(f"{server.http}/api/v1/gateway/config", headers=headers, timeout=10)


@pytest.mark.slow
async def test_receivers_added_moved_removed_reach_the_connected_gateway(
    server: LiveServer, site: Site, tmp_path: Path
) -> None:
    async with connect(f"{server.ws}/api/v1/gateway/ws", additional_headers=site.auth()) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome"
        first = _config(server, site)
        assert first.status_code == 200 and first.headers["etag"] == welcome["config_etag"]
        assert first.json()["receivers"] == [RPH]
        etag = first.headers["etag"]

        async def change(*args: str) -> tuple[str, list[dict[str, Any]]]:
            done = _chumphae(tmp_path, "gateways", "receivers", "gw-nong-phai-1", *args)
            assert done.returncode == 0, done.stderr
            changed, _ = await recv_until(ws, lambda f: f["type"] == "config_changed", timeout=10)
            r = _config(server, site, etag)
            assert r.status_code == 200, r.status_code  # the old ETag is stale
            assert changed["etag"] == r.headers["etag"] != etag
            assert _config(server, site, r.headers["etag"]).status_code == 304
            assert r.json()["version"] == 1  # informative, nothing raises it (§2): the ETag tells
            return done.stdout, r.json()["receivers"]

        out, receivers = await change(
            "--add", "local,16.5450,102.1001", "--add", " rx-pole , 16.5455 , 102.1006 , -61 , 2.2 "
        )
        local = {"id": "local", "lat": 16.545, "lon": 102.1001, "p1m_dbm": -59.0, "path_loss_n": 2.7}
        pole = {"id": "rx-pole", "lat": 16.5455, "lon": 102.1006, "p1m_dbm": -61.0, "path_loss_n": 2.2}
        assert receivers == [RPH, local, pole]
        assert "2 receivers added, 0 removed" in out
        assert "site ban-nong-phai receivers:" in out
        assert "  rx-pole 16.5455 102.1006 p1m_dbm -61.0 path_loss_n 2.2 gateway gw-nong-phai-1" in out
        etag = _config(server, site).headers["etag"]

        # moved: the same id, a new place, in one command
        out, receivers = await change("--remove", "rx-pole", "--add", "rx-pole,16.5460,102.1010,-61,2.2")
        assert receivers == [RPH, local, {**pole, "lat": 16.546, "lon": 102.101}]
        assert "1 receivers added, 1 removed" in out
        etag = _config(server, site).headers["etag"]

        out, receivers = await change("--remove", "local", "--remove", "rx-rph")
        assert receivers == [{**pole, "lat": 16.546, "lon": 102.101}]
        assert "0 receivers added, 2 removed" in out and " local " not in out and "rx-rph" not in out


def _site_config(slug: str) -> dict[str, Any]:
    engine = make_engine(get_settings().effective_database_url)
    try:
        with Session(engine) as session:
            return siteconfig.build(session, session.exec(select(Gateway).where(Gateway.slug == slug)).one())
    finally:
        engine.dispose()


def test_refused_changes_change_nothing() -> None:
    """In this process (the CLI on the test's data directory): every refusal exits 2 naming its option."""
    for args in (
        ["--slug", "gw-a", "--name", "a", "--site", "ban-x", "--receiver", "rx-a,16.545,102.1001"],
        ["--slug", "gw-b", "--name", "b", "--site", "ban-x", "--receiver", "rx-b,16.546,102.101"],
    ):
        done = runner.invoke(app, ["gateways", "create", *args])
        assert done.exit_code == 0, done.output
    before = _site_config("gw-a")
    for args, hint in (
        (["--add", "rx-b,16.6,102.2"], "--add"),  # gw-b's: one receiver per id on a site
        (["--add", "rx-a,16.6,102.2"], "--add"),  # already this gateway's (not removed first)
        (["--add", "rx,16.6,102.2", "--add", "rx,16.7,102.2"], "--add"),
        (["--add", "rx,16.5,102.1,-59,0"], "--add"),  # the parser of `create --receiver` (its test: the rest)
        (["--remove", "rx-b"], "--remove"),  # gw-b's, not this gateway's
        (["--remove", "rx-none"], "--remove"),
        (["--remove", "rx-a", "--add", "rx-b,16.6,102.2"], "--add"),  # nothing of it done
    ):
        done = runner.invoke(app, ["gateways", "receivers", "gw-a", *args])
        assert done.exit_code == 2, (args, done.output)
        assert hint in done.output, done.output
    said = runner.invoke(app, ["gateways", "receivers", "gw-a", "--remove", "rx-b"]).output.replace("│", " ")
    assert "receiver rx-b is not one of gateway gw-a's: it is gateway gw-b's" in " ".join(said.split())
    assert _site_config("gw-a") == before
    done = runner.invoke(app, ["gateways", "receivers", "gw-none"])
    assert isinstance(done.exception, ConfigError)  # `chumphae` (main) ends it with one line, exit 2
    assert str(done.exception) == "no gateway with id or slug gw-none"
    listed = runner.invoke(app, ["gateways", "receivers", "gw-b"])  # no change asked: the site's list
    assert listed.exit_code == 0 and "added" not in listed.output
    assert listed.output.splitlines() == [
        "site ban-x receivers:",
        "  rx-a 16.545 102.1001 p1m_dbm -59.0 path_loss_n 2.7 gateway gw-a",
        "  rx-b 16.546 102.101 p1m_dbm -59.0 path_loss_n 2.7 gateway gw-b",
    ]
