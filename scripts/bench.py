"""Every benchmark in one run: a table of figures against their floors and the goals, then one summary line.

    scripts/bench [--only NAME ...] [--pg-url postgresql://...] [--skip-pg]

Each benchmark is its own script (run alone for detail); this runs them one
after another with settings that fit the whole run in under ten minutes on a
2-core machine, reads the `SUMMARY key=value …` line each prints last, and
prints one table row per goal: the figure (a median of the script's runs),
the floor or naive baseline that script measured in the same run, and whether
the goal is met. The load runs talk to servers on loopback only and stop by
themselves. Progress goes to stderr; the table and the last line to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("CHUMPHAE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Goal:
    """One row of the table: a figure from a SUMMARY line against a target."""

    label: str
    key: str  # the SUMMARY key holding the figure
    target: float | None  # None: reported, no goal
    higher_is_better: bool = True
    unit: str = ""
    floor_key: str | None = None  # the SUMMARY key holding the floor / baseline of the same run
    floor_label: str = ""

    def met(self, value: float) -> bool | None:
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target


@dataclass(frozen=True)
class Bench:
    name: str
    argv: Callable[[argparse.Namespace], list[str]]
    goals: list[Goal] = field(default_factory=list)
    needs_pg: bool = False
    timeout_s: float = 240.0


def _py(script: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / script), *args]


BENCHES: list[Bench] = [
    Bench("gateway pipeline", lambda a: _py("bench_gateway.py", "--runs", "3", "--seconds", "30",
                                            "--baseline-seconds", "5"), [
        Goal("gateway: adverts per CPU-second, one core (decode+auth, locate, match, detect)", "adverts_per_cpu_s",
             20_000, unit="/s", floor_key="baseline_per_cpu_s", floor_label="per-advert baseline"),
        Goal("gateway: memory per tracked band (tracemalloc)", "kib_per_band", None, unit=" KiB"),
    ]),
    Bench("backend memory", lambda a: _py("bench_backend_memory.py", "--bands", "1000", "--runs", "3"), [
        Goal("backend: memory per tracked band (tracemalloc, ingest path)", "kib_per_band", None, unit=" KiB"),
    ], timeout_s=180.0),
    Bench("match", lambda a: _py("bench_match.py", "--repeats", "3"), [
        Goal("match: positions/s, batch", "batch_per_s", None, unit="/s", floor_key="naive_per_s",
             floor_label="naive contains"),
    ]),
    Bench("ingest", lambda a: _py("bench_ingest.py", "--db", "both", "--runs", "3", "--url", a.pg_url), [
        Goal("ingest PostgreSQL: acked msgs/s (500 bands, 4 gateways)", "postgresql_acked_per_s", 10_000, unit="/s",
             floor_key="postgresql_floor_copy", floor_label="COPY floor"),
        Goal("ingest PostgreSQL: SOS → caregiver feed p99 under that load", "postgresql_sos_p99_ms", 250,
             higher_is_better=False, unit=" ms"),
        Goal("ingest SQLite: acked msgs/s", "sqlite_acked_per_s", None, unit="/s",
             floor_key="sqlite_floor_executemany", floor_label="executemany floor"),
    ], needs_pg=True, timeout_s=300.0),
    Bench("province load", lambda a: _py("load_gateways.py", "--db", "postgresql", "--url", a.pg_url,
                                         "--bands", "5000", "--gateways", "100", "--duration", "15", "--runs", "3",
                                         "--seed", "direct", "--max-messages", "60000", "--workers", "2",
                                         # the alert lane (docs/gateway-protocol.md §3.3): alert sockets and the
                                         # feed on a process of their own, the 2 bulk processes 10 nicer (sos13)
                                         "--alert-workers", "1", "--bulk-nice", "10"), [
        Goal("SOS gateway → caregiver feed p99 (5,000 bands, 100 gateways, full rate, 2 backend processes "
             "+ 1 for alerts and the feed)",
             "sos_feed_p99_ms", 250,
             higher_is_better=False, unit=" ms"),
        Goal("acked msgs/s under that load", "acked_per_s", None, unit="/s"),
    ], needs_pg=True, timeout_s=300.0),
    Bench("daily summary", lambda a: _py("bench_daily_summary.py", "--patients", "2000", "--every", "60",
                                         "--url", a.pg_url, "--keep", "bench_daily_2000"), [
        Goal("daily summary, 2,000 patients × a day of positions, PostgreSQL", "sql_s", 10,
             higher_is_better=False, unit=" s", floor_key="baseline_s", floor_label="rows into Python"),
    ], needs_pg=True, timeout_s=420.0),
    Bench("partitions", lambda a: _py("bench_partitions.py", "--url", a.pg_url, "--runs", "3", "--rows", "20000"), [
        Goal("positions insert into daily partitions (batches of 256)", "insert_partitioned_per_s", None, unit="/s",
             floor_key="insert_plain_per_s", floor_label="plain table"),
        Goal("retention: remove a day of 200,000 positions, DROP partition", "prune_drop_s", None,
             higher_is_better=False, unit=" s", floor_key="prune_delete_s", floor_label="batched DELETE"),
    ], needs_pg=True, timeout_s=240.0),
    Bench("delivery", lambda a: _py("bench_delivery.py", "--runs", "3", "--patients", "60"), [
        Goal("delivery: notices duplicated with providers failing 30 %", "duplicated", 0, higher_is_better=False),
        Goal("delivery: notices lost", "lost", 0, higher_is_better=False),
        Goal("delivery: SOS → first provider request p99", "p99", None, unit=" ms"),
    ], timeout_s=240.0),
]

SUMMARY = re.compile(r"^SUMMARY\b(.*)$", re.MULTILINE)
PAIR = re.compile(r"(\w+)=([-+]?[\d.,]+(?:e[-+]?\d+)?)")


def parse_summary(output: str) -> dict[str, float]:
    """key=value pairs (numbers) of the last SUMMARY line."""
    lines = SUMMARY.findall(output)
    if not lines:
        return {}
    return {k: float(v.replace(",", "")) for k, v in PAIR.findall(lines[-1])}


def run(bench: Bench, args: argparse.Namespace) -> tuple[dict[str, float], str, float]:
    t0 = time.monotonic()
    print(f"==> {bench.name} …", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(bench.argv(args), capture_output=True, text=True, timeout=bench.timeout_s,
                              cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        output, problem = done.stdout + done.stderr, "" if done.returncode == 0 else f"exit {done.returncode}"
    except subprocess.TimeoutExpired as exc:
        output, problem = str(exc.stdout or "") + str(exc.stderr or ""), f"timed out after {bench.timeout_s:.0f} s"
    figures = parse_summary(output)
    if not figures and not problem:
        problem = "no SUMMARY line"
    if problem:
        tail = "\n".join(output.strip().splitlines()[-5:])
        print(f"    {bench.name}: {problem}\n{tail}", file=sys.stderr)
    return figures, problem, time.monotonic() - t0


def fmt(value: float, unit: str = "") -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return text + unit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", action="extend", default=None,
                    help="run only benchmarks whose name contains one of these (repeatable: --only a --only b)")
    ap.add_argument("--pg-url", default=PG_URL)
    ap.add_argument("--skip-pg", action="store_true", help="leave out the PostgreSQL benchmarks")
    args = ap.parse_args(argv)
    unknown = [o for o in args.only or () if not any(o in b.name for b in BENCHES)]
    if unknown:  # a typo ran nothing and said `benchmarks=0`, exit 0
        ap.error(f"--only {', '.join(unknown)}: no benchmark's name contains it; names: "
                 + "; ".join(b.name for b in BENCHES))
    chosen = [b for b in BENCHES if (not args.only or any(o in b.name for o in args.only))
              and not (b.needs_pg and args.skip_pg)]
    rows: list[tuple[str, str, str, str, str]] = []
    met = missed = failed = 0
    started = time.monotonic()
    for bench in chosen:
        figures, problem, took = run(bench, args)
        for goal in bench.goals:
            value = figures.get(goal.key)
            if value is None:
                rows.append((goal.label, problem or f"no {goal.key}", "", "", "FAILED"))
                failed += 1
                continue
            floor = figures.get(goal.floor_key) if goal.floor_key else None
            floor_text = ""
            if floor:
                ratio = value / floor if goal.higher_is_better else floor / value
                floor_text = f"{fmt(floor, goal.unit)} {goal.floor_label} ({ratio:.2f}×)"
            ok = goal.met(value)
            target = "" if goal.target is None else ("≥ " if goal.higher_is_better else "≤ ") + fmt(goal.target, goal.unit)
            verdict = "report" if ok is None else ("met" if ok else "MISSED")
            met += ok is True
            missed += ok is False
            rows.append((goal.label, fmt(value, goal.unit), floor_text, target, verdict))
        print(f"    {bench.name}: {took:.0f} s", file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in [("figure", "value", "floor / baseline (same run)", "goal", ""), *rows])
              for i in range(5)]
    header = ("figure", "value", "floor / baseline (same run)", "goal", "")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"SUMMARY bench benchmarks={len(chosen)} goals_met={met} goals_missed={missed} failed={failed} "
          f"seconds={time.monotonic() - started:.0f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
