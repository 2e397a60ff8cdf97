"""The daily summary's district totals carry the notices sums (notices, delivered, failed) in the JSON `totals`
and the XLSX `summary` sheet, so a hospital checking whether alerts reached people need not add the rows itself
(found by outside28). Real export bytes, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timedelta

from openpyxl import load_workbook
from sqlmodel import Session

from chumphae.models import Alert, OutboxNotice, User
from chumphae.report.daily import daily_summary
from chumphae.report.writers import render
from tests.factories import make_patient
from tests.report.test_daily import DAY, bkk

SUMS = ("notices", "notices_delivered", "notices_failed")
LABELS = {"notices": ("ข้อความแจ้งเตือนถึงผู้รับ (LINE, SMS, webhook)", "Alert messages to people (LINE, SMS, webhooks)"),
          "notices_delivered": ("ข้อความที่ผู้ให้บริการรับแล้ว", "Messages accepted by the provider"),
          "notices_failed": ("ข้อความที่ส่งไม่สำเร็จหรือเลิกส่ง", "Messages failed or given up")}


def _build(s: Session) -> None:
    """A: 6 notices of the day (2 sent, 1 failed, 1 gave_up, 1 queued, 1 cancelled), plus a feed notice and one of
    the day before (neither counted); B: 1 sent, 1 failed; C: none. District: 8 notices, 3 delivered, 3 failed."""
    a = make_patient(s, pid="000201")
    b = make_patient(s, pid="000202")
    make_patient(s, pid="000203")
    user = User(name="ผู้ดูแล", role="caregiver", token_hash="y" * 64, token_prefix="y")
    s.add(user)
    s.flush()

    def alert(patient_id: int, opened: datetime, kind: str = "sos") -> int:
        row = Alert(patient_id=patient_id, type=kind, severity="high", opened_at=opened, last_triggered_at=opened,
                    status="open")
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id

    def notice(alert_id: int, channel: str, status: str, created: datetime) -> None:
        s.add(OutboxNotice(key=str(uuid.uuid4()), alert_id=alert_id, event="opened", user_id=user.id,
                           channel=channel, status=status, created_at=created, next_try_at=created))

    assert a.id is not None and b.id is not None
    aa, ab = alert(a.id, bkk(9, 0)), alert(b.id, bkk(10, 0))
    for channel, status in [("line", "sent"), ("sms", "sent"), ("webhook", "failed"), ("sms", "gave_up"),
                            ("line", "queued"), ("line", "cancelled")]:
        notice(aa, channel, status, bkk(9, 0, 5))
    notice(aa, "feed", "sent", bkk(9, 0, 5))  # the live feed: not a message to a person's phone, not counted
    notice(alert(a.id, bkk(23, 0, 0, DAY - timedelta(days=1)), "battery_low"), "line", "sent",
           bkk(23, 0, 5, DAY - timedelta(days=1)))  # the day before: not counted
    notice(ab, "line", "sent", bkk(10, 0, 5))
    notice(ab, "sms", "failed", bkk(10, 0, 5))
    s.commit()


def test_json_totals_and_xlsx_summary_sheet_carry_the_notices_sums(session: Session) -> None:
    _build(session)
    summary = daily_summary(session, day=DAY, hospcode="10707", now=bkk(23, 59) + timedelta(days=1))
    row_sums = {k: sum(r[k] for r in summary.rows) for k in SUMS}
    assert row_sums == {"notices": 8, "notices_delivered": 3, "notices_failed": 3}  # the rows, as before

    doc = json.loads(render(summary, "json"))
    assert {k: doc["totals"][k] for k in SUMS} == row_sums
    assert list(doc["totals"])[-1] == "ack_median_of_patients_s"  # still the last (the sheet leaves it out)

    book = load_workbook(io.BytesIO(render(summary, "xlsx")))
    items = list(book["summary"].iter_rows(min_row=6, values_only=True))
    by_english = {en: value for _th, en, value in items}
    by_thai = {th: value for th, _en, value in items}
    for key, (th, en) in LABELS.items():
        assert by_english[en] == row_sums[key] and by_thai[th] == row_sums[key]
    assert len(items) == len(doc["totals"]) - 1  # the same totals but the last (docs/daily-summary.md)


def test_a_day_without_notices_sums_to_zero(session: Session) -> None:
    make_patient(session, pid="000301")
    summary = daily_summary(session, day=DAY, hospcode="10707", now=bkk(23, 59) + timedelta(days=1))
    doc = json.loads(render(summary, "json"))
    assert {k: doc["totals"][k] for k in SUMS} == dict.fromkeys(SUMS, 0)
    sheet = load_workbook(io.BytesIO(render(summary, "xlsx")))["summary"]
    values = {en: value for _th, en, value in sheet.iter_rows(min_row=6, values_only=True)}
    assert [values[LABELS[k][1]] for k in SUMS] == [0, 0, 0]
