"""`chumphae demo`'s gateway tokens, as an outsider meets them.

The demo printed the seed's gateway tokens and then replaced every one of them for its simulated
twins, so each printed gateway token was dead on arrival; and each start replaced the token of a gateway
someone had added beside the demo's (an outside client, a `--replay`) and simulated that gateway too.
"""

from __future__ import annotations

import shlex

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.auth.service import create_gateway, gateway_by_token
from chumphae.cli import app as cli
from chumphae.db import get_engine
from chumphae.demo import DEMO_SITE, OUTSIDE_GATEWAY
from chumphae.models import Gateway
from chumphae.seed import rotate_gateway_tokens, seed_demo


def test_a_start_replaces_only_the_seeded_gateways_tokens(app_engine: Engine) -> None:
    with Session(app_engine) as s:
        seeded = seed_demo(s).gateway_tokens
        _, mine = create_gateway(s, slug="gw-outsider", name="outside client", site=DEMO_SITE)
        s.commit()
        fresh = rotate_gateway_tokens(s, seeded_only=True)
        s.commit()
        assert set(fresh) == set(seeded) and DEMO_SITE in fresh and "gw-outsider" not in fresh
        for slug, token in fresh.items():
            gw = gateway_by_token(s, token)
            assert gw is not None and gw.slug == slug and gw.site == slug
            assert gateway_by_token(s, seeded[slug]) is None  # why the demo must not print the seed's tokens
        kept = gateway_by_token(s, mine)
        assert kept is not None and kept.slug == "gw-outsider"


def test_the_printed_hint_creates_a_gateway_beside_the_demo_as_printed() -> None:
    with Session(get_engine()) as s:  # the CLI's own database, under the test's CHUMPHAE_DATA_DIR
        seed_demo(s)
        s.commit()
    line = next(ln for ln in OUTSIDE_GATEWAY.splitlines() if "chumphae gateways create" in ln)
    argv = shlex.split(line.strip())
    assert argv[0] == "chumphae"
    r = CliRunner().invoke(cli, argv[1:])
    assert r.exit_code == 0, r.output
    token = next(w for w in r.output.split() if w.startswith("chg_"))
    with Session(get_engine()) as s:
        gw = gateway_by_token(s, token)
        assert gw is not None and gw.site == DEMO_SITE and gw.slug != gw.site
        assert s.exec(select(Gateway).where(Gateway.slug == DEMO_SITE)).one().site == DEMO_SITE


def test_a_demo_whose_notes_were_all_edited_is_not_seeded_twice(app_engine: Engine) -> None:
    """docs/mobile-api.md shows a volunteer changing a patient's `notes`; the demo used to recognise its
    district by the "[demo]" note only, so with every note edited the next start seeded a second one."""
    from chumphae.models import Patient

    with Session(app_engine) as s:
        first = seed_demo(s)
        s.commit()
        for p in s.exec(select(Patient)).all():
            p.notes = "เยี่ยมแล้ว"
            s.add(p)
        s.commit()
        again = seed_demo(s)
        s.commit()
        assert first.created and not again.created
        assert again.patients == first.patients == 30 and len(s.exec(select(Patient)).all()) == 30
        assert set(again.tokens) == set(first.tokens)
