"""The daily summary as CSV (UTF-8 with BOM, so Excel shows Thai), XLSX (with a summary sheet) or JSON."""

from __future__ import annotations

import csv
import io
import os
import statistics
from pathlib import Path
from typing import Any

import orjson
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from chumphae.report.daily import ALERT_TYPES, DailySummary
from chumphae.timeutil import iso_bangkok

FORMATS = ("csv", "xlsx", "json")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}

# Thai and English headings for the summary sheet (the data sheet keeps the column codes the hospital joins on).
SUMMARY_LABELS: tuple[tuple[str, str, str], ...] = (
    ("patients", "จำนวนผู้ป่วย", "Patients"),
    ("heard_h", "ชั่วโมงที่ได้ยินสัญญาณรวม", "Hours heard, all patients"),
    ("worn_h", "ชั่วโมงที่สวมสายรัดรวม", "Hours worn, all patients"),
    ("outside_zone_min", "นาทีนอกเขตปลอดภัยรวม", "Minutes outside the safe zone, all patients"),
    ("alerts_total", "การแจ้งเตือนทั้งหมด", "Alerts, all types"),
    *((f"alerts_{t}", f"การแจ้งเตือน {t}", f"Alerts: {t}") for t in ALERT_TYPES),
    ("falls", "การหกล้ม (ไม่นับแจ้งเตือนผิด)", "Falls (false alarms excluded)"),
    ("unacknowledged", "การแจ้งเตือนที่ยังไม่มีผู้รับ", "Alerts not acknowledged"),
    ("ack_max_s", "เวลารับแจ้งนานที่สุด (วินาที)", "Longest time to acknowledge (s)"),
    ("notices", "ข้อความแจ้งเตือนถึงผู้รับ (LINE, SMS, webhook)", "Alert messages to people (LINE, SMS, webhooks)"),
    ("notices_delivered", "ข้อความที่ผู้ให้บริการรับแล้ว", "Messages accepted by the provider"),
    ("notices_failed", "ข้อความที่ส่งไม่สำเร็จหรือเลิกส่ง", "Messages failed or given up"),
    ("visits", "การเยี่ยมบ้าน", "Home visits"),
    ("no_data", "ผู้ป่วยที่ไม่มีข้อมูลทั้งวัน", "Patients with no data all day"),
)


def totals(summary: DailySummary) -> dict[str, Any]:
    rows = summary.rows
    out: dict[str, Any] = {"patients": len(rows)}
    for key in ("heard_h", "worn_h", "outside_zone_min"):
        out[key] = round(sum(r[key] for r in rows), 2)
    for key in ("alerts_total", *(f"alerts_{t}" for t in ALERT_TYPES), "falls", "unacknowledged", "visits",
                "notices", "notices_delivered", "notices_failed"):
        out[key] = sum(r[key] for r in rows)
    maxes = [r["ack_max_s"] for r in rows if r["ack_max_s"] is not None]
    out["ack_max_s"] = max(maxes) if maxes else None
    out["no_data"] = sum(1 for r in rows if r["positions"] == 0)
    medians = [r["ack_median_s"] for r in rows if r["ack_median_s"] is not None]
    out["ack_median_of_patients_s"] = statistics.median(medians) if medians else None
    return out


def to_csv(summary: DailySummary) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    cols = summary.columns
    writer.writerow(cols)
    for row in summary.rows:
        writer.writerow(["" if row[c] is None else row[c] for c in cols])
    return buf.getvalue().encode("utf-8-sig")


def cell_value(value: Any) -> Any:
    """A value XLSX can hold: control characters (which openpyxl refuses, failing the whole file) removed."""
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def to_xlsx(summary: DailySummary) -> bytes:
    wb = Workbook()
    sheet = wb.active
    assert sheet is not None
    sheet.title = "summary"
    sheet.append(["วันที่ / Date", summary.day.isoformat()])
    sheet.append(["HOSPCODE", summary.hospcode])
    sheet.append(["สร้างเมื่อ / Generated (Asia/Bangkok)", iso_bangkok(summary.generated_at)])
    sheet.append([])
    sheet.append(["รายการ", "Item", "ค่า / Value"])
    t = totals(summary)
    for key, th, en in SUMMARY_LABELS:
        sheet.append([th, en, t[key]])
    for cell in sheet[5]:
        cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 38
    sheet.column_dimensions["B"].width = 44
    data = wb.create_sheet("daily")
    cols = summary.columns
    data.append(list(cols))
    for cell in data[1]:
        cell.font = Font(bold=True)
    for row in summary.rows:
        data.append([cell_value(row[c]) for c in cols])
    data.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def to_json(summary: DailySummary) -> bytes:
    doc = {"date": summary.day.isoformat(), "hospcode": summary.hospcode,
           "generated_at": iso_bangkok(summary.generated_at), "columns": list(summary.columns),
           "totals": totals(summary), "rows": summary.rows}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def render(summary: DailySummary, fmt: str) -> bytes:
    if fmt == "csv":
        return to_csv(summary)
    if fmt == "xlsx":
        return to_xlsx(summary)
    if fmt == "json":
        return to_json(summary)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def write_atomically(path: Path, data: bytes) -> Path:
    """Write via a temporary file and rename, so a reader never sees half a file (and two writers agree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
