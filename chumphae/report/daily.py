"""The district hospital's daily summary: one row per patient per Asia/Bangkok calendar day.

Computed by the database, not in Python: a day of positions for a district is
hundreds of thousands of rows, so the per-position work (intervals between
consecutive positions with LAG, distance steps, sums) is one SQL statement
that runs the same on SQLite (≥ 3.25, window functions) and PostgreSQL. Only
one row per patient comes back. Exact column definitions: docs/daily-summary.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from chumphae.models import adl_group
from chumphae.models.types import UTCDateTime
from chumphae.timeutil import bangkok_day_bounds, utcnow
from chumphae.values import AlertType

GAP_S = 300.0  # consecutive positions further apart than this are a data gap, not time heard
MAX_WALK_M_S = 3.0  # faster steps are a jump of the estimate (or a motorbike), not walking
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(16.54))  # Chumphae; < 0.5 % error across the district
WORK_MEM = "256MB"  # PostgreSQL: the window sort over a day of positions (2,000 patients: ~200 MB)
ALERT_TYPES = tuple(t.value for t in AlertType)

COLUMNS = (
    "date", "hospcode", "pid", "cid", "hn", "patient_id", "adl_score", "adl_group", "nhso_group",
    "positions", "heard_h", "worn_h", "worn_unknown_h", "outside_zone_min", "distance_m",
    *(f"alerts_{t}" for t in ALERT_TYPES), "alerts_total", "ack_median_s", "ack_max_s", "unacknowledged",
    "falls", "notices", "notices_delivered", "notices_failed", "battery_min_pct", "battery_last_pct", "visits", "visit_adl_score", "data_gaps", "gap_h",
)


def _secs(dialect: str, a: str, b: str) -> str:
    """Seconds from b to a, as a float, on either database (PostgreSQL: date_part is double precision;
    EXTRACT returns numeric since PostgreSQL 14, which made the summary twice as slow)."""
    if dialect == "sqlite":
        return f"((julianday({a}) - julianday({b})) * 86400.0)"
    return f"date_part('epoch', {a} - {b})"


def summary_sql(dialect: str) -> str:

    def secs(a: str, b: str) -> str:
        return _secs(dialect, a, b)

    w = "(PARTITION BY patient_id ORDER BY t, id)"  # inline, not WINDOW w: SQLite < 3.28 lacks named windows
    # Each step's dt / dm / noise is computed once, in the windowed subquery (which the planner cannot
    # flatten), not once per SUM that reads it.
    alert_cols = ",\n".join(f"SUM(CASE WHEN type = '{t}' THEN 1 ELSE 0 END) AS alerts_{t}" for t in ALERT_TYPES)
    return f"""
WITH steps AS (
  SELECT patient_id, t, battery_pct,
         LAG(zone_status) OVER {w} AS pzone, LAG(worn) OVER {w} AS pworn,
         {secs('t', f'LAG(t) OVER {w}')} AS dt,
         sqrt(((lon - LAG(lon) OVER {w}) * {M_PER_DEG_LON}) * ((lon - LAG(lon) OVER {w}) * {M_PER_DEG_LON})
              + ((lat - LAG(lat) OVER {w}) * {M_PER_DEG_LAT}) * ((lat - LAG(lat) OVER {w}) * {M_PER_DEG_LAT})) AS dm,
         CASE WHEN uncertainty_m > LAG(uncertainty_m) OVER {w} THEN uncertainty_m
              ELSE LAG(uncertainty_m) OVER {w} END AS noise_m
  FROM position
  WHERE patient_id IS NOT NULL AND t >= :start AND t < :end
),
pagg AS (
  SELECT patient_id, COUNT(*) AS positions,
         SUM(CASE WHEN dt <= :gap THEN dt ELSE 0 END) AS heard_s,
         SUM(CASE WHEN dt <= :gap AND pworn THEN dt ELSE 0 END) AS worn_s,
         SUM(CASE WHEN dt <= :gap AND pworn IS NULL THEN dt ELSE 0 END) AS worn_unknown_s,
         SUM(CASE WHEN dt <= :gap AND pzone = 'outside' THEN dt ELSE 0 END) AS outside_s,
         SUM(CASE WHEN dt <= :gap AND dm > noise_m AND dm <= :vmax * dt THEN dm ELSE 0 END) AS distance_m,
         SUM(CASE WHEN dt > :gap THEN 1 ELSE 0 END) AS inner_gaps,
         {secs('MIN(t)', ':start')} AS lead_s,
         {secs(':stop', 'MAX(t)')} AS tail_s,
         MIN(battery_pct) AS battery_min
  FROM steps GROUP BY patient_id
),
acked AS (
  SELECT patient_id, type, outcome, acknowledged_at, ack_s,
         ROW_NUMBER() OVER (PARTITION BY patient_id
                            ORDER BY CASE WHEN ack_s IS NULL THEN 1 ELSE 0 END, ack_s) AS rn,
         COUNT(ack_s) OVER (PARTITION BY patient_id) AS n_ack
  FROM (SELECT patient_id, type, outcome, acknowledged_at,
               CASE WHEN acknowledged_at IS NOT NULL THEN {secs('acknowledged_at', 'opened_at')} END AS ack_s
        FROM alert WHERE patient_id IS NOT NULL AND opened_at >= :start AND opened_at < :end) a
),
aagg AS (
  SELECT patient_id,
         {alert_cols},
         COUNT(*) AS alerts_total,
         AVG(CASE WHEN ack_s IS NOT NULL AND rn IN ((n_ack + 1) / 2, (n_ack + 2) / 2) THEN ack_s END) AS ack_median_s,
         MAX(ack_s) AS ack_max_s,
         SUM(CASE WHEN acknowledged_at IS NULL THEN 1 ELSE 0 END) AS unacknowledged,
         SUM(CASE WHEN type = 'fall' AND (outcome IS NULL OR outcome <> 'false_alarm') THEN 1 ELSE 0 END) AS falls
  FROM acked GROUP BY patient_id
),
nagg AS (
  SELECT a.patient_id, COUNT(*) AS notices,
         SUM(CASE WHEN n.status = 'sent' THEN 1 ELSE 0 END) AS notices_delivered,
         SUM(CASE WHEN n.status IN ('failed', 'gave_up') THEN 1 ELSE 0 END) AS notices_failed
  FROM notice n JOIN alert a ON a.id = n.alert_id
  WHERE a.patient_id IS NOT NULL AND n.channel <> 'feed' AND n.created_at >= :start AND n.created_at < :end
  GROUP BY a.patient_id
),
vranked AS (
  SELECT patient_id, adl_score,
         ROW_NUMBER() OVER (PARTITION BY patient_id
                            ORDER BY CASE WHEN adl_score IS NULL THEN 1 ELSE 0 END, t DESC, id DESC) AS rn
  FROM visit WHERE t >= :start AND t < :end
),
vagg AS (
  SELECT patient_id, COUNT(*) AS visits, MAX(CASE WHEN rn = 1 THEN adl_score END) AS visit_adl_score
  FROM vranked GROUP BY patient_id
)
SELECT p.id AS patient_id, p.hospcode, p.pid, p.cid, p.hn, p.adl_score, p.nhso_group,
       pagg.positions, pagg.heard_s, pagg.worn_s, pagg.worn_unknown_s, pagg.outside_s, pagg.distance_m,
       pagg.inner_gaps, pagg.lead_s, pagg.tail_s, pagg.battery_min,
       (SELECT q.battery_pct FROM position q WHERE q.patient_id = p.id AND q.t >= :start AND q.t < :end
        ORDER BY q.t DESC, q.id DESC LIMIT 1) AS battery_last,
       {", ".join(f"aagg.alerts_{t}" for t in ALERT_TYPES)}, aagg.alerts_total, aagg.ack_median_s, aagg.ack_max_s,
       aagg.unacknowledged, aagg.falls, nagg.notices, nagg.notices_delivered, nagg.notices_failed,
       vagg.visits, vagg.visit_adl_score
FROM patient p
LEFT JOIN pagg ON pagg.patient_id = p.id
LEFT JOIN aagg ON aagg.patient_id = p.id
LEFT JOIN vagg ON vagg.patient_id = p.id
LEFT JOIN nagg ON nagg.patient_id = p.id
WHERE p.active OR pagg.patient_id IS NOT NULL OR aagg.patient_id IS NOT NULL OR vagg.patient_id IS NOT NULL
   OR nagg.patient_id IS NOT NULL
ORDER BY p.id
"""


def _ensure_sqrt(conn: Connection) -> None:
    """SQLite builds without the math functions get sqrt from Python (this connection only)."""
    if conn.dialect.name != "sqlite":
        return
    try:
        conn.exec_driver_sql("SELECT sqrt(4.0)")
    except Exception:  # noqa: BLE001  (sqlite3.OperationalError: no such function)
        conn.connection.driver_connection.create_function("sqrt", 1, math.sqrt, deterministic=True)  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class DailySummary:
    day: date
    generated_at: datetime
    hospcode: str
    with_cid: bool
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS if self.with_cid else tuple(c for c in COLUMNS if c != "cid")


def _h(s: float | None) -> float:
    return round((s or 0.0) / 3600.0, 2)


def daily_summary(session: Session, *, day: date, hospcode: str, with_cid: bool = False,
                  now: datetime | None = None) -> DailySummary:
    """Every patient's row for the Bangkok calendar day `day` (today: up to `now`)."""
    now = now or utcnow()
    start, end = bangkok_day_bounds(day)
    stop = min(end, max(start, now))  # a day in progress ends now, so the future is not a gap
    conn = session.connection()
    _ensure_sqrt(conn)
    if conn.dialect.name == "postgresql":  # sort a province's day of positions in memory, this transaction only
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
    stmt = text(summary_sql(conn.dialect.name)).bindparams(
        bindparam("start", start, type_=UTCDateTime()), bindparam("end", end, type_=UTCDateTime()),
        bindparam("stop", stop, type_=UTCDateTime()), gap=GAP_S, vmax=MAX_WALK_M_S)
    span_s = (stop - start).total_seconds()
    rows = []
    for r in conn.execute(stmt).mappings():
        heard = float(r["heard_s"] or 0.0)
        if r["positions"]:
            gaps = int(r["inner_gaps"] or 0) + (r["lead_s"] > GAP_S) + (r["tail_s"] > GAP_S)
        else:
            gaps = 1 if span_s > GAP_S else 0
        row: dict[str, Any] = {
            "date": day.isoformat(), "hospcode": r["hospcode"] or hospcode, "pid": r["pid"], "cid": r["cid"],
            "hn": r["hn"], "patient_id": r["patient_id"], "adl_score": r["adl_score"],
            "adl_group": adl_group(r["adl_score"]), "nhso_group": r["nhso_group"],
            "positions": int(r["positions"] or 0), "heard_h": _h(heard), "worn_h": _h(r["worn_s"]),
            "worn_unknown_h": _h(r["worn_unknown_s"]), "outside_zone_min": round(float(r["outside_s"] or 0) / 60.0, 1),
            "distance_m": int(round(float(r["distance_m"] or 0.0))),
            **{f"alerts_{t}": int(r[f"alerts_{t}"] or 0) for t in ALERT_TYPES},
            "alerts_total": int(r["alerts_total"] or 0),
            "ack_median_s": None if r["ack_median_s"] is None else int(round(float(r["ack_median_s"]))),
            "ack_max_s": None if r["ack_max_s"] is None else int(round(float(r["ack_max_s"]))),
            "unacknowledged": int(r["unacknowledged"] or 0), "falls": int(r["falls"] or 0),
            "notices": int(r["notices"] or 0), "notices_delivered": int(r["notices_delivered"] or 0),
            "notices_failed": int(r["notices_failed"] or 0),
            "battery_min_pct": r["battery_min"], "battery_last_pct": r["battery_last"],
            "visits": int(r["visits"] or 0), "visit_adl_score": r["visit_adl_score"],
            "data_gaps": gaps, "gap_h": _h(max(0.0, span_s - heard)),
        }
        if not with_cid:
            del row["cid"]
        rows.append(row)
    return DailySummary(day=day, generated_at=now, hospcode=hospcode, with_cid=with_cid, rows=rows)
