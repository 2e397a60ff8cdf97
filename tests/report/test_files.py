"""The daily summary as files: over HTTP by role, from the CLI, and the nightly job with catch-up."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.cli import app as cli
from chumphae.models import AuditLog
from chumphae.report.nightly import due_days, next_run, run_nightly, write_day
from chumphae.timeutil import BANGKOK
from tests.conftest import World
from tests.report.test_daily import DAY, build_day, expected


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_http_csv_for_the_hospital_with_cid_and_without_for_the_care_manager(client: TestClient, world: World) -> None:
    with Session(world.engine) as s:
        a, b = build_day(s)
    r = client.get("/api/v1/reports/daily", params={"date": "2025-01-15"}, headers=world.auth("hospital"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="daily-2025-01-15.csv"' in r.headers["content-disposition"]
    rows = {int(row["patient_id"]): row for row in _csv_rows(r.content)}
    want = expected(a, b)[0]
    got = rows[a]
    assert {k: got[k] for k in ("hospcode", "pid", "cid", "hn", "distance_m", "ack_median_s", "falls")} == {
        "hospcode": "10707", "pid": "000123", "cid": "1409900000011", "hn": "HN-77", "distance_m": "400",
        "ack_median_s": "120", "falls": "1"}
    assert float(got["heard_h"]) == want["heard_h"] and rows[b]["ack_median_s"] == ""
    assert len(rows) == 2 + 2  # the world's own two patients are in the district too

    cm = client.get("/api/v1/reports/daily", params={"date": "2025-01-15"}, headers=world.auth("care_manager"))
    assert "cid" not in _csv_rows(cm.content)[0]
    with Session(world.engine) as s:
        exports = s.exec(select(AuditLog).where(AuditLog.action == "export")).all()
    assert [(e.user_id, e.detail["cid"]) for e in exports] == [(world.users["hospital"], True),
                                                              (world.users["care_manager"], False)]
    bad = client.get("/api/v1/reports/daily", params={"date": "15/01/2025"}, headers=world.auth("hospital"))
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_http_xlsx_has_a_summary_sheet_and_the_rows(client: TestClient, world: World) -> None:
    with Session(world.engine) as s:
        a, b = build_day(s)
    r = client.get("/api/v1/reports/daily", params={"date": "2025-01-15", "format": "xlsx"},
                   headers=world.auth("hospital"))
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["summary", "daily"]
    data = list(wb["daily"].iter_rows(values_only=True))
    header = data[0]
    body = {row[header.index("patient_id")]: dict(zip(header, row, strict=True)) for row in data[1:]}
    assert body[a] == expected(a, b)[0]
    summary = {row[1]: row[2] for row in wb["summary"].iter_rows(min_row=6, values_only=True)}
    assert summary["Patients"] == 4 and summary["Alerts, all types"] == 4 and summary["Falls (false alarms excluded)"] == 1


def test_cli_export_json(app_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    with Session(app_engine) as s:
        a, b = build_day(s)
    out = tmp_path / "out" / "day.json"
    result = CliRunner().invoke(cli, ["export", "daily", "--date", "2025-01-15", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 patients for 2025-01-15" in result.output
    doc = json.loads(out.read_text())
    want = [{k: v for k, v in row.items() if k != "cid"} for row in expected(a, b)]
    assert doc["rows"] == want and doc["totals"]["alerts_total"] == 4


def test_next_run_is_0015_bangkok() -> None:
    assert next_run(datetime(2025, 1, 15, 0, 10, tzinfo=BANGKOK)) == datetime(2025, 1, 15, 0, 15, tzinfo=BANGKOK)
    assert next_run(datetime(2025, 1, 15, 0, 15, tzinfo=BANGKOK)) == datetime(2025, 1, 16, 0, 15, tzinfo=BANGKOK)
    assert next_run(datetime(2025, 1, 15, 17, 30, tzinfo=BANGKOK)) == datetime(2025, 1, 16, 0, 15, tzinfo=BANGKOK)


def test_due_days_catch_up_missed_nights(tmp_path: Path) -> None:
    now = datetime(2025, 1, 20, 9, 0, tzinfo=BANGKOK)
    assert due_days(tmp_path, now) == [date(2025, 1, 19)]  # an empty folder: yesterday only
    for fmt in ("csv", "xlsx"):
        (tmp_path / f"daily-2025-01-16.{fmt}").write_bytes(b"x")
    (tmp_path / "daily-2025-01-18.csv").write_bytes(b"x")  # half written: no xlsx
    assert due_days(tmp_path, now) == [date(2025, 1, 17), date(2025, 1, 18), date(2025, 1, 19)]
    before = datetime(2025, 1, 20, 0, 5, tzinfo=BANGKOK)  # 00:15 not yet: the 19th is not due
    assert due_days(tmp_path, before) == [date(2025, 1, 17), date(2025, 1, 18)]


async def test_nightly_job_catches_up_then_writes_each_night(app_engine: Engine, tmp_path: Path) -> None:
    with Session(app_engine) as s:
        build_day(s)
    folder = tmp_path / "exports"
    times = iter([datetime(2025, 1, 16, 3, 0, tzinfo=BANGKOK), datetime(2025, 1, 16, 3, 0, 1, tzinfo=BANGKOK),
                  datetime(2025, 1, 17, 0, 15, tzinfo=BANGKOK), datetime(2025, 1, 17, 0, 15, 1, tzinfo=BANGKOK)])
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise SystemExit  # stop the loop after two runs

    with pytest.raises(SystemExit):
        await run_nightly(lambda: app_engine, folder=folder, hospcode="10707", clock=lambda: next(times), sleep=sleep)
    assert sorted(p.name for p in folder.iterdir()) == [
        "daily-2025-01-15.csv", "daily-2025-01-15.xlsx", "daily-2025-01-16.csv", "daily-2025-01-16.xlsx"]
    assert sleeps[0] == pytest.approx((21 * 60 + 15) * 60 - 1)  # 03:00:01 → 00:15 next night
    rows = _csv_rows((folder / "daily-2025-01-15.csv").read_bytes())
    assert "cid" not in rows[0] and sum(int(r["alerts_total"]) for r in rows) == 4


def test_write_day_is_idempotent(app_engine: Engine, tmp_path: Path) -> None:
    with Session(app_engine) as s:
        build_day(s)
    now = datetime(2025, 2, 1, tzinfo=BANGKOK)
    folder = tmp_path / "exports"
    first = [p.read_bytes() for p in write_day(app_engine, day=DAY, folder=folder, hospcode="10707",
                                               formats=("csv",), now=now)]
    second = [p.read_bytes() for p in write_day(app_engine, day=DAY, folder=folder, hospcode="10707",
                                                formats=("csv",), now=now)]
    assert first == second and [p.name for p in folder.iterdir()] == ["daily-2025-01-15.csv"]  # no temp file left
