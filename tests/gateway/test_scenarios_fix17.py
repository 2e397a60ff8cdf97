"""fix17 (issue 13): every shipped scenario raises exactly the alert types its header promises (promised ⊆ raised
and raised ⊆ promised), by day and at night, on the seeded town site (as `chumphae demo --scenario` and a gateway
with the demo backend run it) and on its own site (stand-alone). `everything` had also raised a left_coverage its header
did not promise (on both sites, day and night): its band with the low battery goes flat and silent near the zone's
edge; the header now promises it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.seed import rotate_gateway_tokens, seed_demo
from gateway import siteconfig
from gateway.simulate import scenario as scenarios
from tests.gateway.test_simulate import run_on


def seeded_town_site(client: TestClient, engine: Engine) -> siteconfig.SiteConfig:
    """The demo district seeded, and the town gateway's configuration as it fetches it (with its token)."""
    with Session(engine) as s:
        seed_demo(s)
        token = rotate_gateway_tokens(s)["gw-chumphae-town"]
        s.commit()
    r = client.get("/api/v1/gateway/config", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return siteconfig.parse(r.json())


@pytest.mark.parametrize("start", ["10:00+07:00", "23:00+07:00"])
@pytest.mark.parametrize("name", scenarios.shipped())
def test_shipped_scenario_raises_exactly_what_it_promises_on_the_town_site(
        name: str, start: str, client: TestClient, app_engine: Engine, tmp_path: Path) -> None:
    scen = replace(scenarios.load(name), start=scenarios.parse_start(start))
    _, alerts = run_on(scen, seeded_town_site(client, app_engine), tmp_path / f"{name}.db")
    raised = {str(a["type"]) for a in alerts}
    promised = set(scen.promises)
    assert promised <= raised, f"{name} at {start}: promised {sorted(promised)}, raised {sorted(raised)}"
    assert raised <= promised, f"{name} at {start}: raised {sorted(raised - promised)} it does not promise"


@pytest.mark.parametrize("start", ["10:00+07:00", "23:00+07:00"])
@pytest.mark.parametrize("name", scenarios.shipped())
def test_shipped_scenario_raises_exactly_what_it_promises_on_its_own_site(name: str, start: str,
                                                                          tmp_path: Path) -> None:
    scen = replace(scenarios.load(name), start=scenarios.parse_start(start))
    assert scen.site is not None
    _, alerts = run_on(scen, scen.site, tmp_path / f"{name}.db")
    raised = {str(a["type"]) for a in alerts}
    assert raised == set(scen.promises), f"{name} at {start}: promised {sorted(scen.promises)}, raised {sorted(raised)}"


def test_a_scenario_start_without_an_offset_is_bangkok_time() -> None:
    """A full ISO time in a scenario's `start` had stayed naive (then read in the machine's own zone)."""
    from datetime import UTC, datetime

    assert scenarios.parse_start("2025-01-15T22:00:00") == datetime(2025, 1, 15, 15, 0, tzinfo=UTC)
    assert scenarios.parse_start("2025-01-15T22:00:00").utcoffset() is not None
    assert scenarios.parse_start("2025-01-15T22:00:00Z") == datetime(2025, 1, 15, 22, 0, tzinfo=UTC)
    now = datetime(2025, 1, 15, 16, 0, tzinfo=UTC)  # 23:00 in Chumphae
    assert scenarios.parse_start("22:00", now) == datetime(2025, 1, 15, 15, 0, tzinfo=UTC)


def test_a_recordings_times_without_an_offset_are_refused_not_read_as_bangkok(tmp_path: Path) -> None:
    """Machine times keep docs/gateway-protocol.md §6: a recording's `started` without an offset is refused."""
    import json

    from gateway.replay import BadRecording, ReplaySource

    path = tmp_path / "naive.jsonl"
    path.write_text(json.dumps({"format": "chumphae-adverts", "version": 1, "started": "2026-12-01T05:54:31"}) + "\n",
                    encoding="utf-8")
    with pytest.raises(BadRecording, match="line 1: started has no UTC offset"):
        ReplaySource(path)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "gateway-protocol.md").read_text(encoding="utf-8")
    assert "without one the file is refused, `line 1: started has no UTC offset`" in doc
