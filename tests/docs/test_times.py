"""Every time in every answer is written one way, the way the documents promise.

docs/mobile-api.md and docs/feed-protocol.md: UTC with `+00:00` (never `Z`), and each `*_local` twin in
Asia/Bangkok with `+07:00`, to the second. REST answers built by pydantic models used to write `Z`
(alerts, patients) while the others wrote `+00:00`; a client had to parse both.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from chumphae.models import PositionRecord
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.factories import make_band
from tests.feed.conftest import raise_alert

DOCS = Path(__file__).resolve().parents[2] / "docs"
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _times(obj: Any, key: str = "") -> list[tuple[str, str]]:
    """(key, value) of every ISO 8601 date-time string in a JSON answer."""
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _times(v, k)]
    if isinstance(obj, list):
        return [kv for v in obj for kv in _times(v, key)]
    return [(key, obj)] if isinstance(obj, str) and ISO_TIME.match(obj) else []


def _check(times: list[tuple[str, str]]) -> None:
    for key, value in times:
        t = datetime.fromisoformat(value)
        if key.endswith("_local"):
            assert value.endswith("+07:00") and t.microsecond == 0, (key, value)
        else:
            assert value.endswith("+00:00") and not value.endswith("Z"), (key, value)


def test_every_rest_answer_writes_utc_as_plus_00_00(client: TestClient, world: World) -> None:
    with Session(world.engine) as s:
        make_band(s, patient_id=world.own_patient)
        s.add(PositionRecord(patient_id=world.own_patient, t=utcnow(), lat=16.5461, lon=102.103, uncertainty_m=20.0))
        s.commit()
    alert = raise_alert(world.engine, world.own_patient, "sos")
    h = world.auth("admin")
    pid, aid = world.own_patient, alert.alert_id
    answers = [
        client.get("/api/v1/alerts", headers=h),
        client.get(f"/api/v1/alerts/{aid}", headers=h),  # with its history's event times
        client.post(f"/api/v1/alerts/{aid}/acknowledge", headers=h, json={"note": "กำลังไป"}),
        client.post(f"/api/v1/alerts/{aid}/resolve", headers=h, json={"outcome": "patient_safe"}),
        client.get(f"/api/v1/patients/{pid}", headers=h),
        client.get("/api/v1/patients", headers=h),
        client.patch(f"/api/v1/patients/{pid}", headers=h, json={"notes": "ok"}),
        client.get("/api/v1/mobile/patients", headers=h),
        client.get(f"/api/v1/patients/{pid}/positions", headers=h),
        client.get(f"/api/v1/patients/{pid}/bands", headers=h),
        client.post(f"/api/v1/patients/{pid}/visits", headers=h, json={"t": "2025-01-15T10:30:00+07:00"}),
        client.get(f"/api/v1/alerts/{aid}/deliveries", headers=h),
    ]
    found: list[tuple[str, str]] = []
    for r in answers:
        assert r.status_code in (200, 201), (r.request.url, r.text)
        found += _times(r.json())
    keys = {k for k, _ in found}
    # not vacuous: the alert's own times (the ones that were written with Z), its history, the patient's
    assert {"opened_at", "last_triggered_at", "received_at", "acknowledged_at", "resolved_at", "t",
            "updated_at", "opened_at_local", "t_local", "next_escalation_at"} <= keys, keys
    _check(found)


def test_the_documents_promise_the_same_single_form() -> None:
    mobile = (DOCS / "mobile-api.md").read_text(encoding="utf-8")
    feed = (DOCS / "feed-protocol.md").read_text(encoding="utf-8")
    head = mobile[:mobile.index("## Authentication")]
    assert "`+00:00`" in head and "`Z`" not in head, "docs/mobile-api.md: times are written with +00:00 only"
    times = feed[feed.index("* Times:"):].split("\n* ", 1)[0]
    assert "`+00:00`" in times and "`Z`" not in times, "docs/feed-protocol.md: the REST routes write +00:00 too"
