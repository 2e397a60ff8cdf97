"""Rotating a revoked gateway whose receiver ids its replacement now holds is refused (small21).

`gateways create` frees a revoked gateway's receiver ids for its replacement (review20a); `gateways rotate OLD`
(and the admin REST rotate) re-activated the old gateway, so its receivers came back into the site config
beside the replacement's with the same ids: two receivers `local` at two places, bands located wrongly."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from chumphae.auth.service import create_gateway
from chumphae.cli import app
from chumphae.config import get_settings
from chumphae.db import make_engine
from chumphae.ingest import siteconfig
from chumphae.models import AuditLog, Gateway
from tests.conftest import World
from tests.factories import make_rotate_clash

runner = CliRunner()


def _create(slug: str, *receivers: str) -> Result:
    args = ["gateways", "create", "--slug", slug, "--name", slug, "--site", "ban-r"]
    for r in receivers:
        args += ["--receiver", r]
    return runner.invoke(app, args)


def _state() -> tuple[dict[str, tuple[bool, str]], list[object]]:
    """Each gateway's (active, token prefix) and the receiver ids gw-new's site config lists."""
    engine = make_engine(get_settings().effective_database_url)
    try:
        with Session(engine) as session:
            gateways = session.exec(select(Gateway)).all()
            new = next(g for g in gateways if g.slug == "gw-new")
            ids = [r["id"] for r in siteconfig.build(session, new)["receivers"]]  # type: ignore[index]
            return {g.slug: (g.active, g.token_prefix) for g in gateways}, ids
    finally:
        engine.dispose()


def test_cli_rotate_of_a_revoked_gateway_whose_ids_are_taken_is_refused() -> None:
    assert _create("gw-old", "local,16.545,102.1001", "rx-pole,16.5455,102.1006").exit_code == 0
    assert runner.invoke(app, ["gateways", "revoke", "gw-old"]).exit_code == 0
    assert _create("gw-new", "local,16.5451,102.1002").exit_code == 0
    before = _state()
    refused = runner.invoke(app, ["gateways", "rotate", "gw-old"])
    assert refused.exit_code == 2, refused.output
    words = " ".join(refused.output.split())
    assert "gateway gw-old not rotated" in words and "local held by gateway gw-new" in words, words
    assert "rx-pole" not in words and "token:" not in words
    assert _state() == before and before[1] == ["local"]  # nothing changed: gw-old still revoked, same token
    # Once the replacement gives up the id (or the old one is rotated while its ids are free), rotate works.
    assert runner.invoke(app, ["gateways", "receivers", "gw-new", "--remove", "local"]).exit_code == 0
    done = runner.invoke(app, ["gateways", "rotate", "gw-old"])
    assert done.exit_code == 0 and "token: chg_" in done.output, done.output
    assert sorted(_state()[1]) == ["local", "rx-pole"]  # type: ignore[type-var]


def test_rest_rotate_of_a_revoked_gateway_whose_ids_are_taken_is_a_409(client: TestClient, world: World) -> None:
    with Session(world.engine, expire_on_commit=False) as s:
        old = make_rotate_clash(s)
        create_gateway(s, slug="gw-far", name="far", site="ban-other",
                       receivers=[{"id": "local", "lat": 16.6, "lon": 102.2}])
        s.commit()
        old_id, prefix = old.id, old.token_prefix
    answer = client.post(f"/api/v1/gateways/{old_id}/rotate", headers=world.auth("admin"))
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "receiver_clash" and body["receivers"] == {"gw-new": ["local"]}, body
    assert "local held by gateway gw-new" in body["detail"] and "token" not in body
    with Session(world.engine) as s:
        again = s.get(Gateway, old_id)
        assert again is not None and not again.active and again.token_prefix == prefix
        assert not s.exec(select(AuditLog).where(AuditLog.action == "rotate")).all()
