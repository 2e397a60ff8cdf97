"""Statements of the documents that an outside client relies on, against the code (docs10's end-to-end run
found each of them missing or different from the document)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from chumphae.alert.render import alert_dict
from chumphae.cli import app as cli
from chumphae.deliver.message import render_alert, render_test
from chumphae.models import Alert
from tests.conftest import World
from tests.feed.conftest import raise_alert

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_patient_id_is_403_for_carers_and_404_for_district_roles(client: TestClient,
                                                                              world: World) -> None:
    doc = (ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8")
    assert "an id that no patient has" in doc and "**404** `not_found`" in doc
    for role, status, code in (("volunteer", 403, "patient_forbidden"), ("caregiver", 403, "patient_forbidden"),
                               ("care_manager", 404, "not_found"), ("admin", 404, "not_found")):
        r = client.get("/api/v1/patients/999999", headers=world.auth(role))
        assert (r.status_code, r.json()["code"]) == (status, code), role


def test_a_webhook_body_has_the_documented_keys(world: World) -> None:
    doc = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    body_keys = set(re.findall(r'"(\w+)"', re.search(r'JSON\s+`(\{"notice".*?\})`', doc, re.S).group(1)))  # type: ignore[union-attr]
    test_keys = set(re.findall(r'"(\w+)"', re.search(r'message is\s+`(\{"notice".*?\})`', doc, re.S).group(1)))  # type: ignore[union-attr]
    change = raise_alert(world.engine, world.own_patient, "sos")
    with Session(world.engine) as s:
        alert = s.get(Alert, change.alert_id)
        assert alert is not None
        out = render_alert(alert, who="x", lang="th", event="opened", level=0, public_url="http://h",
                           notice_key="k")
        assert set(out.payload) | {"text"} == body_keys
        assert out.payload["alert"] == alert_dict(alert) and "patient" not in out.payload["alert"]
    test = render_test(name="x", lang="en", channel="webhook", notice_key="k")
    assert set(test.payload) | {"text"} == test_keys - {"test", "webhook"} and test.payload["event"] == "test"


def test_falls_detect_prints_what_the_readme_says(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert '`{"file", "falls": [{"t", "decided_at", "confidence"}]}`' in readme and '`"error"`' in readme
    still = tmp_path / "still.csv"
    still.write_text("az;t;ay;ax\n" + "".join(f"1.0;{i / 50:.2f};0;0\n" for i in range(1500)), encoding="utf-8")
    r = CliRunner().invoke(cli, ["falls", "detect", str(still), "--hz", "50", "--units", "g"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[0]) == {"file": str(still), "falls": []}
    r = CliRunner().invoke(cli, ["falls", "detect", str(tmp_path / "missing.csv"), "--hz", "50", "--units", "g"])
    line = json.loads(r.output.splitlines()[0])
    assert r.exit_code == 1 and line["falls"] == [] and "error" in line
