"""Benchmark: the daily summary's SQL on a district-sized day vs loading the day's positions into Python.

    .venv/bin/python scripts/bench_daily_summary.py [--patients 60] [--every 15] [--url sqlite:///...]

Builds a fresh database (a temporary SQLite file by default, or a fresh
schema on the PostgreSQL URL given), fills one Bangkok day with a position
every `--every` seconds per patient (walks, zone exits, worn flags) plus
alerts, then times `daily_summary` and, as the baseline, fetching every
position of the day and summing intervals in Python (heard / outside /
distance only: the baseline does less work than the SQL).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlmodel import Session

from chumphae import partitions
from chumphae.db import make_engine, upgrade
from chumphae.models import Alert, Patient, PositionRecord
from chumphae.report.daily import GAP_S, M_PER_DEG_LAT, M_PER_DEG_LON, MAX_WALK_M_S, daily_summary
from chumphae.timeutil import bangkok_day_bounds

DAY = date(2025, 1, 15)


def fill(engine, patients: int, every_s: int) -> int:  # type: ignore[no-untyped-def]
    rng = random.Random(4005)
    start, _ = bangkok_day_bounds(DAY)
    n = 0
    with Session(engine) as s:
        ids = []
        for k in range(patients):
            p = Patient(name_th=f"bench {k}", hospcode="10707", pid=f"{k:06d}", adl_score=rng.randint(0, 20))
            s.add(p)
            s.flush()
            ids.append(p.id)
        table = PositionRecord.__table__  # type: ignore[attr-defined]
        for pid in ids:
            lat, lon, batt = 16.54 + rng.random() * 0.02, 102.09 + rng.random() * 0.02, 100.0
            rows = []
            t = start
            while t < start + timedelta(days=1):
                if rng.random() < 0.002:  # an outage
                    t += timedelta(seconds=rng.randint(300, 3600))
                lat += rng.gauss(0, 0.00005)
                lon += rng.gauss(0, 0.00005)
                batt = max(0.0, batt - 0.0005 * every_s / 15)
                rows.append({"patient_id": pid, "t": t, "lat": lat, "lon": lon, "uncertainty_m": rng.uniform(5, 40),
                             "source": "ble", "in_coverage": True,
                             "zone_status": rng.choice(["inside"] * 8 + ["outside", "uncertain"]),
                             "worn": rng.choice([True] * 9 + [None]), "battery_pct": round(batt, 1),
                             "received_at": t})
                t += timedelta(seconds=every_s)
            _insert_positions(s, table, rows)
            n += len(rows)
            for h in range(rng.randint(0, 4)):
                opened = start + timedelta(hours=rng.randint(0, 23), minutes=h)
                s.add(Alert(patient_id=pid, type=["wander", "fall", "sos", "battery_low"][h], severity="high",
                            opened_at=opened, last_triggered_at=opened, status="resolved", outcome="patient_safe",
                            acknowledged_at=opened + timedelta(seconds=rng.randint(10, 900))))
        s.commit()
    return n


def _insert_positions(s: Session, table, rows: list[dict]) -> None:  # type: ignore[no-untyped-def,type-arg]
    """COPY on PostgreSQL (a district-sized day fills in seconds, not minutes); executemany on SQLite."""
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    cols = list(rows[0])
    with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(f"COPY position ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] for c in cols])


def baseline(engine) -> int:  # type: ignore[no-untyped-def]
    """Load the day's positions into Python and sum intervals there (what the SQL replaces)."""
    start, end = bangkok_day_bounds(DAY)
    t = PositionRecord.__table__  # type: ignore[attr-defined]
    out: dict[int, list[float]] = {}
    last: dict[int, tuple] = {}
    with Session(engine) as s:
        for r in s.connection().execute(select(t.c.patient_id, t.c.t, t.c.lat, t.c.lon, t.c.uncertainty_m,
                                               t.c.zone_status).where(t.c.t >= start, t.c.t < end)
                                        .order_by(t.c.patient_id, t.c.t, t.c.id)):
            pid, when, lat, lon, unc, zone = r  # (Row.t is the row's tuple, not the column)
            acc = out.setdefault(pid, [0.0, 0.0, 0.0])
            prev = last.get(pid)
            if prev is not None:
                dt = (when - prev[0]).total_seconds()
                if dt <= GAP_S:
                    acc[0] += dt
                    acc[1] += dt if prev[4] == "outside" else 0.0
                    dm = math.hypot((lon - prev[2]) * M_PER_DEG_LON, (lat - prev[1]) * M_PER_DEG_LAT)
                    if max(unc, prev[3]) < dm <= MAX_WALK_M_S * dt:
                        acc[2] += dm
            last[pid] = (when, lat, lon, unc, zone)
    return len(out)


def timed(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--every", type=int, default=15, help="seconds between positions")
    ap.add_argument("--url", default=None, help="postgresql://… (a fresh schema is made and dropped)")
    ap.add_argument("--revision", default="head",
                    help="schema revision (0004: PostgreSQL's position table not yet partitioned by day)")
    ap.add_argument("--keep", default=None, help="PostgreSQL: fill this schema once and keep it (re-runs reuse it)")
    args = ap.parse_args()
    schema = None
    fresh = True
    if args.url:
        schema = args.keep or f"bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.url)
        with admin.begin() as c:
            fresh = c.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first() is None
            if fresh:
                c.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(args.url, schema=schema)
    else:
        engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    try:
        upgrade(engine, args.revision)
        with engine.begin() as conn:  # the day's own partition, as the retention job makes it for today's
            if partitions.is_partitioned(conn, "position") and DAY not in {d.day for d in partitions.days(conn, "position")}:
                partitions.create_day(conn, "position", DAY)
        t0 = time.perf_counter()
        if fresh:
            n = fill(engine, args.patients, args.every)
        else:
            with Session(engine) as s:
                n = int(s.connection().execute(text("SELECT count(*) FROM position")).scalar_one())
        print(f"{engine.dialect.name}: {args.patients} patients, {n} positions in the day "
              f"(filled in {time.perf_counter() - t0:.1f} s)", flush=True)

        def sql() -> None:
            with Session(engine) as s:
                daily_summary(s, day=DAY, hospcode="10707")

        t_sql = timed(sql)
        t_py = timed(lambda: baseline(engine))
        print(f"daily_summary (SQL, all columns): {t_sql:.2f} s   ({n / t_sql:,.0f} positions/s)")
        print(f"baseline (rows into Python, 3 columns): {t_py:.2f} s   ({n / t_py:,.0f} positions/s)")
        print(f"SUMMARY db={engine.dialect.name} patients={args.patients} positions={n} sql_s={t_sql:.2f} "
              f"baseline_s={t_py:.2f} ratio={t_py / t_sql:.2f} goal_s=10 met={'yes' if t_sql <= 10 else 'no'}")
    finally:
        engine.dispose()
        if schema:
            if not args.keep:
                with admin.begin() as c:
                    c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
