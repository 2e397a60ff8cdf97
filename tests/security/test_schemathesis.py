"""Schemathesis against the live app: a real uvicorn server, a token of each role, bounded examples.

Every operation of /openapi.json, with positive and negative data, as every
role (and without a token): no answer is a 5xx, every status is documented,
every body matches its schema and media type. The figures (examples per
operation and role, statuses, 5xx, failures) go to
test-artifacts/security/schemathesis-{sqlite,postgresql}.json. More examples:
CHUMPHAE_FUZZ_EXAMPLES=N (default 4 per operation, role and mode: about 1,450 requests per database).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from sqlmodel import Session

from chumphae.alert.escalate import ClockOptions
from chumphae.auth.service import create_gateway
from chumphae.db import set_engine, upgrade
from chumphae.feed.socket import FeedOptions
from chumphae.models import PositionRecord, Visit
from tests.conftest import World, build_world
from tests.factories import make_band
from tests.feed.conftest import raise_alert
from tests.feed.liveserver import live_server

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "security"
EXAMPLES = int(os.environ.get("CHUMPHAE_FUZZ_EXAMPLES", "4"))
ROLES = ("anonymous", "caregiver", "volunteer", "care_manager", "hospital", "admin")  # admin last: it may revoke
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DESTRUCTIVE = ("/revoke", "/rotate", "/erase")  # run last within a role


def seed(world: World) -> None:
    """Real rows behind small ids, so generated ids hit patients, alerts, bands, positions and visits."""
    with Session(world.engine) as s:
        make_band(s, patient_id=world.own_patient)
        create_gateway(s, slug="gw-fuzz", name="fuzz", site="chumphae")
        now = datetime.now(UTC)
        s.add(PositionRecord(patient_id=world.own_patient, t=now, lat=16.5443, lon=102.1001, uncertainty_m=20.0))
        s.add(Visit(patient_id=world.own_patient, user_id=world.users["volunteer"], t=now, adl_score=9, notes="ok"))
        s.commit()
    raise_alert(world.engine, world.own_patient, "sos")
    raise_alert(world.engine, world.other_patient, "wander")


def order(op: Any) -> tuple[int, str]:
    return (1 if op.path.endswith(DESTRUCTIVE) else 0, op.label)


def fuzz(op: Any, mode: GenerationMode, headers: dict[str, str], base_url: str, http: requests.Session,
         tally: dict[str, Any]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=http, headers=headers, timeout=30)
        tally["examples"][op.label] += 1
        tally["statuses"][str(response.status_code)] += 1
        if response.status_code >= 500:
            tally["5xx"].append(f"{op.label} {response.status_code} {response.text[:200]}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001  (collect every failure, then assert once)
            tally["failures"].append(f"{op.label} [{mode.value}] {response.status_code}: {str(exc)[:300]}")

    try:
        run()
    except (Unsatisfiable, FailedHealthCheck):
        tally["unsatisfiable"].append(f"{op.label} [{mode.value}]")  # e.g. no negative data for a bare GET


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_world(request: pytest.FixtureRequest) -> World:
    """The district on SQLite, and on PostgreSQL (where a 19-character HN or a NUL used to answer 500)."""
    if request.param == "sqlite":
        return request.getfixturevalue("world")  # type: ignore[no-any-return]
    engine = request.getfixturevalue("pg_schema_engine")
    upgrade(engine)
    set_engine(engine)
    return build_world(engine)


@pytest.mark.slow
def test_no_5xx_and_every_answer_matches_the_schema(any_world: World) -> None:
    world = any_world
    dialect = world.engine.dialect.name
    seed(world)
    tally: dict[str, Any] = {"examples": Counter(), "statuses": Counter(), "5xx": [], "failures": [],
                             "unsatisfiable": []}
    by_role: dict[str, int] = {}
    with live_server(feed_options=FeedOptions(ping_s=30, poll_s=5), clock_options=ClockOptions(tick_s=0)) as server:
        server.app.state.auth_limiter.max_failures = 0  # the fuzzer's anonymous calls must not lock the others out
        schema = schemathesis.openapi.from_url(f"{server.http}/openapi.json")
        operations = sorted((result.ok() for result in schema.get_all_operations()), key=order)
        with requests.Session() as http:
            for role in ROLES:
                before = sum(tally["examples"].values())
                headers = world.auth(role)
                for op in operations:
                    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                        fuzz(op, mode, headers, server.http, http, tally)
                by_role[role] = sum(tally["examples"].values()) - before
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = {"operations": len(operations), "examples_total": sum(tally["examples"].values()),
               "examples_by_role": by_role, "examples_by_operation": dict(sorted(tally["examples"].items())),
               "statuses": dict(sorted(tally["statuses"].items())), "server_errors": len(tally["5xx"]),
               "failures": tally["failures"], "five_xx": tally["5xx"][:50], "unsatisfiable": tally["unsatisfiable"]}
    (ARTIFACTS / f"schemathesis-{dialect}.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    assert summary["examples_total"] > len(operations) * len(ROLES), "the fuzzer barely ran"
    assert tally["5xx"] == [], tally["5xx"][:10]
    assert tally["failures"] == [], tally["failures"][:10]
