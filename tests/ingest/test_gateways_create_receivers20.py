"""`chumphae gateways create --receiver`: a site's BLE receivers registered from the command line (outside20).

Before it, only `seed-demo` could give a site receivers: a gateway registered as the README says got a site
config with `receivers: []`, so its own adapter was no receiver and no band it heard could be located
(SOS and falls only, never a position or a wander)."""

from __future__ import annotations

from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from chumphae.cli import app
from chumphae.config import get_settings
from chumphae.db import make_engine
from chumphae.ingest import siteconfig
from chumphae.models import Gateway

runner = CliRunner()


def _config(slug: str) -> dict[str, object]:
    engine = make_engine(get_settings().effective_database_url)
    try:
        with Session(engine) as session:
            gw = session.exec(select(Gateway).where(Gateway.slug == slug)).one()
            return siteconfig.build(session, gw)
    finally:
        engine.dispose()


def _create(slug: str, site: str, *receivers: str) -> Result:
    """`chumphae gateways create --slug SLUG --name SLUG --site SITE --receiver R...`."""
    args = ["gateways", "create", "--slug", slug, "--name", slug, "--site", site]
    for r in receivers:
        args += ["--receiver", r]
    return runner.invoke(app, args)


def _words(output: str) -> str:
    """The CLI's words without the error box's frame and line breaks (a message wraps inside the box)."""
    return " ".join(output.replace("│", " ").split())


def test_receivers_reach_every_gateway_of_the_site() -> None:
    done = _create("gw-a", "ban-x", "local,16.5450,102.1001", " rx-pole , 16.5455 , 102.1006 , -61 , 2.2 ")
    assert done.exit_code == 0, done.output
    assert "with 2 receivers" in done.output and "token: chg_" in done.output
    done = _create("gw-b", "ban-x", "rx-b,16.546,102.101")
    assert done.exit_code == 0, done.output
    expected = [
        {"id": "local", "lat": 16.545, "lon": 102.1001, "p1m_dbm": -59.0, "path_loss_n": 2.7},
        {"id": "rx-pole", "lat": 16.5455, "lon": 102.1006, "p1m_dbm": -61.0, "path_loss_n": 2.2},
        {"id": "rx-b", "lat": 16.546, "lon": 102.101, "p1m_dbm": -59.0, "path_loss_n": 2.7},
    ]
    assert _config("gw-a")["receivers"] == expected
    assert _config("gw-b")["receivers"] == expected
    extent = _config("gw-a")["extent"]
    assert isinstance(extent, dict) and extent["min_lat"] < 16.545 < extent["max_lat"]


def test_bad_or_taken_receivers_are_refused_and_nothing_is_created() -> None:
    assert _create("gw-a", "ban-x", "local,16.545,102.1001").exit_code == 0
    for bad in (
        ["local,16.6,102.2"],  # the site already has a receiver `local`
        ["rx,16.6,102.2", "rx,16.7,102.2"],  # twice in one command
        ["rx,91,102.2"],
        ["rx,16.5"],
        ["rx,16.5,102.1,-59,2.7,9"],
        ["rx,16.5,north"],
        ["rx,16.5,102.1,-200"],
        ["rx,16.5,102.1,-59,0"],
        ["rx,nan,102.1"],
        [",16.5,102.1"],
    ):
        done = _create("gw-bad", "ban-x", *bad)
        assert done.exit_code == 2, (bad, done.output)
        assert "--receiver" in done.output, done.output
    engine = make_engine(get_settings().effective_database_url)
    try:
        with Session(engine) as session:
            assert session.exec(select(Gateway.slug)).all() == ["gw-a"]
    finally:
        engine.dispose()


def test_a_revoked_gateways_receiver_ids_are_free_for_its_replacement() -> None:
    """A broken gateway is revoked and a new one takes its place with the same receiver ids: the site config
    lists only active gateways' receivers, so the ids are free (review20a: refused as "already one of site
    ban-r's receivers"). An active gateway's ids stay taken, at create and at `gateways receivers --add`."""
    assert _create("gw-old", "ban-r", "local,16.545,102.1001", "rx-pole,16.5455,102.1006").exit_code == 0
    assert _create("gw-other", "ban-r", "rx-other,16.546,102.101").exit_code == 0
    taken = _create("gw-x", "ban-r", "local,16.545,102.1001")
    assert taken.exit_code == 2 and "already one of site ban-r's" in _words(taken.output)
    assert runner.invoke(app, ["gateways", "revoke", "gw-old"]).exit_code == 0
    new = _create("gw-new", "ban-r", "local,16.545,102.1001")
    assert new.exit_code == 0, new.output
    moved = runner.invoke(app, ["gateways", "receivers", "gw-new", "--add", "rx-pole,16.5456,102.1007"])
    assert moved.exit_code == 0, moved.output
    still = runner.invoke(app, ["gateways", "receivers", "gw-new", "--add", "rx-other,16.546,102.101"])
    assert still.exit_code == 2 and "already one of site ban-r's" in _words(still.output)
    ids = [r["id"] for r in _config("gw-new")["receivers"]]  # type: ignore[index]
    assert sorted(ids) == ["local", "rx-other", "rx-pole"]
