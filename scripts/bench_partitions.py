"""Daily partitions on PostgreSQL: insert throughput and the time to prune a day, against plain tables.

    .venv/bin/python scripts/bench_partitions.py [--url postgresql://...] [--runs 5] [--rows 50000] [--day 200000]

Two fresh schemas on one server, in the same run: one migrated to 0004 (plain
`position`), one to head (`position` partitioned by Bangkok day). Then:

* insert: `--rows` positions for today in batches of 256 rows, one
  multi-row INSERT and one commit per batch (the ingest hot path's shape),
  alternating plain / partitioned, `--runs` times; rows/s medians and their
  ratio.
* prune a day: `--day` positions on one day 40 days back (filled server-side),
  then removed: on the plain schema by the retention job's batched DELETE
  (5,000 rows a transaction), on the partitioned one by the job dropping the
  day's partition; seconds, medians of `--runs`, and their ratio.

The last line is `SUMMARY key=value …` for scripts/bench. The schemas are
dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import timedelta

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae import partitions
from chumphae.config import Settings
from chumphae.db import make_engine, upgrade
from chumphae.models import Patient, PositionRecord
from chumphae.retention import prune
from chumphae.timeutil import bangkok_day_bounds, utcnow

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 256


def patient(engine: Engine) -> int:
    with Session(engine) as s:
        p = Patient(prename="นาง", name_th="ทดสอบ", name_en="Bench", sex="2", hospcode="10707", pid="b1")
        s.add(p)
        s.commit()
        assert p.id is not None
        return p.id


def insert_rate(engine: Engine, pid: int, rows: int) -> float:
    table = PositionRecord.__table__  # type: ignore[attr-defined]
    now = utcnow()
    batches = [[{"patient_id": pid, "t": now - timedelta(seconds=k % 3600), "lat": 16.5, "lon": 102.1,
                 "uncertainty_m": 10.0, "source": "ble", "in_coverage": True, "zone_status": "inside",
                 "received_at": now} for k in range(i, min(i + BATCH, rows))] for i in range(0, rows, BATCH)]
    t0 = time.perf_counter()
    for batch in batches:
        with engine.begin() as conn:
            conn.execute(insert(table), batch)
    return rows / (time.perf_counter() - t0)


def fill_day(engine: Engine, pid: int, rows: int, day_start: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO position (patient_id, t, lat, lon, uncertainty_m, source, in_coverage, received_at) "
            "SELECT :p, CAST(:d AS timestamptz) + (g * interval '1 second') * (86399.0 / :n), 16.5, 102.1, 10, 'ble', "
            "true, now() FROM generate_series(0, :n - 1) g"), {"p": pid, "d": day_start, "n": rows})
        conn.execute(text("ANALYZE position"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=PG_URL)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rows", type=int, default=50_000, help="rows inserted per insert run")
    ap.add_argument("--day", type=int, default=200_000, help="rows in the day pruned")
    args = ap.parse_args()
    admin = make_engine(args.url)
    names = {kind: f"bench_part_{kind}_{uuid.uuid4().hex[:6]}" for kind in ("plain", "partitioned")}
    engines: dict[str, Engine] = {}
    try:
        for kind, schema in names.items():
            with admin.begin() as c:
                c.execute(text(f'CREATE SCHEMA "{schema}"'))
            engines[kind] = make_engine(args.url, schema=schema)
            upgrade(engines[kind], "0004" if kind == "plain" else "head")
        pids = {kind: patient(e) for kind, e in engines.items()}

        rates: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(args.runs):
            for kind, engine in engines.items():
                rates[kind].append(insert_rate(engine, pids[kind], args.rows))
        ins = {k: statistics.median(v) for k, v in rates.items()}
        print(f"insert, {args.rows} rows in batches of {BATCH}, one commit each, medians of {args.runs}: "
              f"plain {ins['plain']:,.0f} rows/s, partitioned {ins['partitioned']:,.0f} rows/s "
              f"(ratio {ins['partitioned'] / ins['plain']:.2f})", flush=True)

        now = utcnow()
        settings = Settings(retention_positions_days=30, retention_feed_days=0, retention_audit_days=0,
                            retention_messages_days=0)
        took: dict[str, list[float]] = {k: [] for k in engines}
        for run in range(args.runs):
            day = partitions.bangkok_day(now - timedelta(days=40 + run))
            start = bangkok_day_bounds(day)[0].isoformat()
            for kind, engine in engines.items():
                if kind == "partitioned":
                    with engine.begin() as conn:
                        partitions.create_day(conn, "position", day)
                fill_day(engine, pids[kind], args.day, start)
                t0 = time.perf_counter()
                removed = prune(engine, settings, now=now)["positions"]
                took[kind].append(time.perf_counter() - t0)
                assert removed == args.day, (kind, removed)
        pr = {k: statistics.median(v) for k, v in took.items()}
        print(f"prune a day of {args.day} positions, medians of {args.runs}: batched DELETE {pr['plain']:.2f} s, "
              f"DROP partition {pr['partitioned']:.3f} s (ratio {pr['plain'] / pr['partitioned']:.0f}×)")
        print(f"SUMMARY insert_plain_per_s={ins['plain']:.0f} insert_partitioned_per_s={ins['partitioned']:.0f} "
              f"insert_ratio={ins['partitioned'] / ins['plain']:.2f} prune_delete_s={pr['plain']:.3f} "
              f"prune_drop_s={pr['partitioned']:.3f} prune_ratio={pr['plain'] / pr['partitioned']:.1f} "
              f"day_rows={args.day}")
    finally:
        for engine in engines.values():
            engine.dispose()
        with admin.begin() as c:
            for schema in names.values():
                c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
