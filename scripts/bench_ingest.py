#!/usr/bin/env python3
"""The backend's hot path: gateway WebSockets in → stored → acked → on a care manager's live feed, vs the floor.

For each database (SQLite file and/or a private PostgreSQL schema, created
and dropped here) a real backend (uvicorn, `chumphae.api.app.create_app`)
runs in a child process on 127.0.0.1. Seeded: G gateways, each on its own
site, B bands (one patient each) spread over them, one care manager (whose
feed carries every patient). Then, in the same run:

* floors, from this process with the plain driver on the same database:
  position rows plus their `ingested_message` dedupe rows in batches of 256,
  one commit per batch — `COPY` (PostgreSQL only, psycopg) and
  `executemany` (psycopg / sqlite3). Nothing else (no feed, no ack, no parse);
* pipeline: G plain `websockets` clients as gateways, each sending its share
  of M pre-encoded `position` frames with at most `--window` (protocol max
  256) unacknowledged, while an SOS `alert` is sent every `--sos-ms` from one
  gateway; a plain `websockets` feed client (care manager, bearer header)
  times every frame. Measured: messages acknowledged per second (first send →
  last ack), feed latency of position frames (send → frame; the feed sends the
  newest position per patient per batch, and per read (docs/feed-protocol.md §3),
  so not every position has a frame)
  and of SOS frames (send → alert frame), p50/p95/p99. `--place zone`: the
  positions carry only the zone's words and the default tax map is loaded, so
  the backend names every position's place (the cost of that, against the default).

Prints each run, medians over runs, the ratio to the COPY floor, and one
`SUMMARY ...` line per database; the last line is an overall `SUMMARY`.
The backend runs with `chumphae serve`'s uvicorn options (`chumphae.cli.server_options`);
`--workers N` runs N processes as `chumphae serve --workers N` does.
Usage: .venv/bin/python scripts/bench_ingest.py [--db sqlite|postgresql|both] [--bands 500]
       [--gateways 4] [--messages 20000] [--runs 3] [--url postgresql://postgres@127.0.0.1:5432/test]
       [--workers 1] [--ws-compression | --no-ws-compression] [--place named|zone]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAT, LON = 16.5442, 102.0997
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 256


# --------------------------------------------------------------------------- the backend (child process)

def _app(url: str, schema: str | None, linger_ms: float | None) -> Any:
    from chumphae.api.app import create_app
    from chumphae.config import Settings
    from chumphae.db import make_engine, set_engine

    set_engine(make_engine(url, schema=schema))
    app = create_app(Settings(redis_url=None), manage_engine=False)
    if linger_ms is not None:  # an experiment: the bulk batch's linger (chumphae/ingest/connection.py)
        from chumphae.ingest.connection import IngestOptions

        app.state.ingest_options = IngestOptions(bulk_linger_s=linger_ms / 1000)
    return app


def worker_app() -> Any:
    """The app factory each worker process imports when the bench serves with `--workers` > 1."""
    linger = os.environ.get("BENCH_INGEST_LINGER_MS")
    return _app(os.environ["BENCH_INGEST_URL"], os.environ.get("BENCH_INGEST_SCHEMA") or None,
                float(linger) if linger else None)


def serve(url: str, schema: str | None, port: int, linger_ms: float | None = None, workers: int = 1,
          ws_compression: bool | None = None) -> None:
    """The backend as `chumphae serve` runs it (its uvicorn options: `chumphae.cli.server_options`)."""
    import uvicorn

    from chumphae.cli import server_options

    opts = server_options(ws_compression)
    if workers == 1:
        uvicorn.run(_app(url, schema, linger_ms), host="127.0.0.1", port=port, log_level="warning",
                    lifespan="on", **opts)
        return
    os.environ.update(BENCH_INGEST_URL=url, BENCH_INGEST_SCHEMA=schema or "",
                      BENCH_INGEST_LINGER_MS="" if linger_ms is None else str(linger_ms))
    # Worker processes are spawned: they import this file by name (its directory is on their sys.path).
    uvicorn.run(f"{Path(__file__).stem}:worker_app", factory=True, workers=workers, host="127.0.0.1", port=port,
                log_level="warning", lifespan="on", **opts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_backend(url: str, schema: str | None, linger_ms: float | None = None, workers: int = 1,
                  ws_compression: bool | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", "--url", url, "--port", str(port)]
    if schema:
        cmd += ["--schema", schema]
    if linger_ms is not None:
        cmd += ["--linger-ms", str(linger_ms)]
    cmd += ["--workers", str(workers)]
    if ws_compression is not None:
        cmd += ["--ws-compression" if ws_compression else "--no-ws-compression"]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"backend exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("backend did not start within 30 s") from None
            time.sleep(0.05)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of a process and its live descendants (uvicorn's workers; Linux /proc;
    NaN elsewhere)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return float("nan")
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return total


# --------------------------------------------------------------------------- database

def seed(engine: Any, bands: int, gateways: int) -> tuple[list[tuple[int, str]], str, list[tuple[int, str, int]]]:
    """G gateways (own sites), `bands` patients with a band each, a care manager.

    Returns ([(gateway id, token)], care manager token, [(gateway index, address, patient id)]).
    """
    from sqlmodel import Session

    from chumphae.auth.service import create_gateway, create_user
    from chumphae.models import Patient, Wristband

    with Session(engine, expire_on_commit=False) as s:
        gws = []
        for g in range(gateways):
            gw, token = create_gateway(s, slug=f"gw-bench-{g}", name=f"bench {g}", site=f"bench-{g}", lat=LAT,
                                       lon=LON, receivers=[{"id": f"rx-{g}", "lat": LAT, "lon": LON, "p1m_dbm": -59}])
            gws.append((gw.id, token))
        _, cm_token = create_user(s, name="bench care manager", role="care_manager")
        patients = [Patient(name_th=f"ผู้ป่วย {i}", name_en=f"Patient {i}", nhso_group=2,
                            home_lat=LAT + (i % 7) * 1e-4, home_lon=LON + (i % 5) * 1e-4) for i in range(bands)]
        s.add_all(patients)
        s.flush()
        out = []
        rows = []
        for i, p in enumerate(patients):
            g = i % gateways
            address = f"C0:BE:{g // 256:02X}:{g % 256:02X}:{i // 256 % 256:02X}:{i % 256:02X}"
            rows.append(Wristband(address=address, key_hex=os.urandom(16).hex(), patient_id=p.id, site=f"bench-{g}"))
            out.append((g, address, p.id))
        s.add_all(rows)
        s.commit()
        return gws, cm_token, out  # type: ignore[return-value]


def position_body(address: str, patient_id: int, t: datetime, k: int, place: str = "named") -> dict[str, Any]:
    """A gateway's position. `place`: "named" (a gateway with the tax map: parcel and words) or "zone" (one
    matching on bare zone polygons: only the zone's words, so the backend names the place from its map; each
    patient then about its own home, spread over ~1 km of the town)."""
    if place == "zone":
        home = patient_id * 7919
        return {"address": address, "patient_id": patient_id, "t": t.isoformat(),
                "lat": LAT + (home % 40 - 20) * 2.5e-4 + (k % 11) * 1e-5,
                "lon": LON + (home // 40 % 40 - 20) * 2.5e-4 + (k % 13) * 1e-5, "uncertainty_m": 18.5,
                "source": "ble", "receivers": 3, "in_coverage": True,
                "match": {"status": "inside", "zone_version": 1, "distance_to_boundary_m": -22.1,
                          "place": {"description_th": "อยู่ในเขตปลอดภัย", "description_en": "inside the safe zone"}}}
    return {"address": address, "patient_id": patient_id, "t": t.isoformat(),
            "lat": LAT + (k % 11) * 1e-5, "lon": LON + (k % 13) * 1e-5, "uncertainty_m": 18.5,
            "source": "ble", "receivers": 3, "in_coverage": True,
            "match": {"status": "inside", "zone_version": 1, "distance_to_boundary_m": -22.1,
                      "distance_to_route_m": 4.0,
                      "place": {"parcel_code": "03I002", "building_code": None, "landmark": None,
                                "description_th": "บ้าน", "description_en": "home"}}}


def _floor_rows(n: int, gateway_id: int, bands: list[tuple[int, int]], day: int) -> list[tuple[Any, ...]]:
    t0 = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return [(str(uuid.uuid4()), bands[k % len(bands)][0], bands[k % len(bands)][1], gateway_id,
             t0 + timedelta(milliseconds=k), LAT + (k % 11) * 1e-5, LON + (k % 13) * 1e-5) for k in range(n)]


POS_COLS = ("patient_id", "band_id", "gateway_id", "t", "lat", "lon", "uncertainty_m", "source", "in_coverage",
            "zone_status", "zone_version", "distance_to_boundary_m", "parcel_code", "received_at")


def floors(url: str, schema: str | None, sqlite_path: Path | None, gateway_id: int, bands: list[tuple[int, int]],
           n: int, day: int) -> dict[str, float]:
    """Rows/s with the plain driver: position + dedupe rows, batches of 256, one commit per batch."""
    now = datetime.now(UTC)
    out: dict[str, float] = {}
    if sqlite_path is not None:
        import sqlite3

        rows = _floor_rows(n, gateway_id, bands, day)
        conn = sqlite3.connect(sqlite_path)
        conn.execute("PRAGMA journal_mode=WAL")
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            chunk = rows[i:i + BATCH]
            conn.executemany("INSERT INTO ingested_message (msg_id, gateway_id, kind, received_at) VALUES (?,?,?,?)",
                             [(r[0], gateway_id, "position", now.strftime(fmt)) for r in chunk])
            conn.executemany(f"INSERT INTO position ({','.join(POS_COLS)}) VALUES ({','.join('?' * len(POS_COLS))})",
                             [(r[1], r[2], r[3], r[4].strftime(fmt), r[5], r[6], 18.5, "ble", 1, "inside", 1,
                               -22.1, "03I002", now.strftime(fmt)) for r in chunk])
            conn.commit()
        out["executemany"] = n / (time.perf_counter() - start)
        conn.close()
        return out
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, options=f"-csearch_path={schema}") as conn:
        for kind in ("copy", "executemany"):
            rows = _floor_rows(n, gateway_id, bands, day * 2 + (kind == "copy"))
            start = time.perf_counter()
            for i in range(0, n, BATCH):
                chunk = rows[i:i + BATCH]
                with conn.cursor() as cur:
                    if kind == "copy":
                        with cur.copy("COPY ingested_message (msg_id, gateway_id, kind, received_at) FROM STDIN") as cp:
                            for r in chunk:
                                cp.write_row((r[0], gateway_id, "position", now))
                        with cur.copy(f"COPY position ({','.join(POS_COLS)}) FROM STDIN") as cp:
                            for r in chunk:
                                cp.write_row((r[1], r[2], r[3], r[4], r[5], r[6], 18.5, "ble", True, "inside", 1,
                                              -22.1, "03I002", now))
                    else:
                        cur.executemany("INSERT INTO ingested_message (msg_id, gateway_id, kind, received_at) "
                                        "VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                                        [(r[0], gateway_id, "position", now) for r in chunk])
                        cur.executemany(f"INSERT INTO position ({','.join(POS_COLS)}) VALUES "
                                        f"({','.join(['%s'] * len(POS_COLS))})",
                                        [(r[1], r[2], r[3], r[4], r[5], r[6], 18.5, "ble", True, "inside", 1,
                                          -22.1, "03I002", now) for r in chunk])
                conn.commit()
            out[kind] = n / (time.perf_counter() - start)
    return out


def batches(engine: Any, since: datetime) -> dict[str, float]:
    """The run's position batches: mean size (a batch's ids share one `received_at`) and position feed rows per
    position stored (the feed carries each patient's newest position per batch)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        n, distinct = conn.execute(text("SELECT count(*), count(DISTINCT received_at) FROM ingested_message "
                                        "WHERE kind = 'position' AND received_at >= :t"), {"t": since}).one()
        feed = conn.execute(text("SELECT count(*) FROM feed_event WHERE kind = 'position' AND t >= :t"),
                            {"t": since}).scalar_one()
    return {"batch_mean": n / max(1, distinct), "feed_per_msg": feed / max(1, n)}


# --------------------------------------------------------------------------- clients

def _norm(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).isoformat()


class Feed:
    """The care manager's feed socket: arrival time of position frames by (patient, t), SOS frames by (patient, t)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.positions: dict[tuple[int, str], float] = {}
        self.sos: dict[tuple[int, str], float] = {}
        self.resyncs = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "position":
                p = frame["position"]
                self.positions[(p["patient_id"], _norm(p["t"]))] = now
            elif kind == "alert" and frame["alert"]["type"] == "sos":
                a = frame["alert"]
                self.sos.setdefault((a["patient_id"], _norm(a["last_triggered_at"])), now)
            elif kind == "resync":
                self.resyncs += 1


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run_once(port: int, gws: list[tuple[int, str]], cm_token: str, bands: list[tuple[int, str, int]],
                   m: int, window: int, sos_ms: float, place: str = "named") -> dict[str, Any]:
    from websockets.asyncio.client import connect

    base = f"ws://127.0.0.1:{port}"
    g_count = len(gws)
    t_base = datetime.now(UTC) - timedelta(minutes=5)
    # Pre-encoded frames, per gateway: (id, text, feed key)
    plan: list[list[tuple[str, bytes, tuple[int, str]]]] = [[] for _ in range(g_count)]
    for k in range(m):
        g, address, patient_id = bands[k % len(bands)]
        t = t_base + timedelta(milliseconds=k)
        mid = str(uuid.uuid4())
        text = orjson.dumps({"id": mid, "type": "position", "t": t.isoformat(), "seq": k,
                             "body": position_body(address, patient_id, t, k, place)})
        plan[g].append((mid, text, (patient_id, t.isoformat())))
    sent_at: dict[str, float] = {}
    sos_sent: dict[tuple[int, str], float] = {}
    sos_ids: dict[str, float] = {}  # SOS message id → when sent
    sos_acked: list[float] = []  # send → ack, ms
    async with connect(f"{base}/ws/alerts", additional_headers={"Authorization": f"Bearer {cm_token}"},
                       max_size=None) as fws:
        for _ in range(2):  # welcome, snapshot
            await asyncio.wait_for(fws.recv(), 30)
        feed = Feed(fws)
        sockets = []
        for _, token in gws:
            ws = await connect(f"{base}/api/v1/gateway/ws", additional_headers={"Authorization": f"Bearer {token}"},
                               max_size=None)
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "welcome"
            sockets.append(ws)
        acked = 0
        errors = 0
        finished = asyncio.Event()
        remaining = [len(p) for p in plan]

        async def gateway(g: int) -> None:
            nonlocal acked, errors
            ws = sockets[g]
            room = asyncio.Semaphore(window)
            mine = {mid for mid, _, _ in plan[g]}
            done = asyncio.Event()

            async def reader() -> None:
                nonlocal acked, errors
                async for raw in ws:
                    frame = orjson.loads(raw)
                    if frame["type"] == "ack":
                        now = time.perf_counter()
                        sos_acked.extend((now - sos_ids.pop(i)) * 1000 for i in frame["ids"] if i in sos_ids)
                        n = sum(1 for i in frame["ids"] if i in mine)
                        acked += n
                        remaining[g] -= n
                        for _ in range(n):
                            room.release()
                    elif frame["type"] == "error":
                        errors += 1
                        remaining[g] -= 1
                        room.release()
                    if remaining[g] <= 0:
                        done.set()

            task = asyncio.create_task(reader())
            for mid, text, _ in plan[g]:
                await room.acquire()
                sent_at[mid] = time.perf_counter()
                await ws.send(text.decode())
            await done.wait()
            task.cancel()

        async def sos() -> None:
            ws = sockets[0]
            n = 0
            while not finished.is_set():
                await asyncio.sleep(sos_ms / 1000)
                g0 = [b for b in bands if b[0] == 0]
                _, address, patient_id = g0[n % len(g0)]
                t = datetime.now(UTC) + timedelta(microseconds=n)
                body = {"type": "sos", "severity": "critical", "address": address, "t": t.isoformat(),
                        "lat": LAT, "lon": LON, "uncertainty_m": 15.0,
                        "match": {"status": "inside", "zone_version": 1,
                                  "place": {"parcel_code": "03I002", "description_th": "บ้าน",
                                            "description_en": "home"}}, "details": {}}
                sid = str(uuid.uuid4())
                text = orjson.dumps({"id": sid, "type": "alert", "t": t.isoformat(), "seq": 0,
                                     "body": body}).decode()
                sos_sent[(patient_id, _norm(t.isoformat()))] = sos_ids[sid] = time.perf_counter()
                await ws.send(text)
                n += 1

        start = time.perf_counter()
        sos_task = asyncio.create_task(sos())
        await asyncio.wait_for(asyncio.gather(*(gateway(g) for g in range(g_count))), 300)
        elapsed = time.perf_counter() - start
        finished.set()
        await sos_task
        deadline = time.monotonic() + 10  # let the feed catch up with the last SOS frames
        while time.monotonic() < deadline and any(k not in feed.sos for k in sos_sent):
            await asyncio.sleep(0.05)
        for ws in sockets:
            await ws.close()
        feed.task.cancel()
        await asyncio.gather(feed.task, return_exceptions=True)
    pos_lat = [(feed.positions[key] - sent_at[mid]) * 1000 for p in plan for mid, _, key in p
               if (key[0], _norm(key[1])) in feed.positions]
    # keys in feed.positions are normalised; build the lookup the same way
    sos_lat = [(feed.sos[k] - t0) * 1000 for k, t0 in sos_sent.items() if k in feed.sos]
    return {"acked_per_s": acked / elapsed, "acked": acked, "errors": errors, "resyncs": feed.resyncs,
            "pos_frames": len(pos_lat), "pos_p50": quantile(pos_lat, 0.5), "pos_p95": quantile(pos_lat, 0.95),
            "pos_p99": quantile(pos_lat, 0.99), "sos_sent": len(sos_sent), "sos_seen": len(sos_lat),
            "sos_p50": quantile(sos_lat, 0.5), "sos_p95": quantile(sos_lat, 0.95), "sos_p99": quantile(sos_lat, 0.99),
            "sos_ack_p50": quantile(sos_acked, 0.5), "sos_ack_p99": quantile(sos_acked, 0.99)}


# --------------------------------------------------------------------------- main

def bench_db(db: str, args: argparse.Namespace) -> dict[str, float]:
    from sqlalchemy import text
    from sqlmodel import Session, select

    from chumphae.db import make_engine, upgrade
    from chumphae.models import Wristband

    tmp = tempfile.TemporaryDirectory(prefix="bench_ingest_")
    schema = None
    admin = None
    sqlite_path = None
    if db == "postgresql":
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = make_engine(args.url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = args.url
    else:
        sqlite_path = Path(tmp.name) / "bench.db"
        url = f"sqlite:///{sqlite_path}"
    engine = make_engine(url, schema=schema)
    proc = None
    try:
        upgrade(engine)
        gws, cm_token, bands = seed(engine, args.bands, args.gateways)
        if args.place == "zone":  # the backend names the places from the stored tax map
            from chumphae.map.store import load_default_map

            with Session(engine) as s:
                load_default_map(s)
                s.commit()
        with Session(engine) as s:
            band_ids = [(b.patient_id, b.id) for b in s.exec(select(Wristband)).all()]
        proc, port = start_backend(url, schema, args.linger_ms, args.workers, args.ws_compression)
        print(f"bench_ingest: {db}, {args.bands} bands on {args.gateways} gateways, {args.messages} positions per run, "
              f"window {args.window}, SOS every {args.sos_ms:.0f} ms, {args.runs} runs, backend pid {proc.pid}, "
              f"{args.workers} worker process(es), places {args.place}, WebSocket compression "
              f"{'default' if args.ws_compression is None else ('on' if args.ws_compression else 'off')}")
        results = []
        for r in range(args.runs):
            cpu0 = process_cpu_s(proc.pid)
            began = datetime.now(UTC)
            res = asyncio.run(run_once(port, gws, cm_token, bands, args.messages, args.window, args.sos_ms,
                                       args.place))
            # The backend's own CPU per acked message (all its threads): steadier than msgs/s on a shared machine.
            res["backend_cpu_us"] = (process_cpu_s(proc.pid) - cpu0) / max(1, res["acked"]) * 1e6
            res.update(batches(engine, began))
            res.update(floors(url, schema, sqlite_path, gws[0][0], band_ids, args.floor_rows, r + 1))  # type: ignore[arg-type]
            results.append(res)
            fl = " ".join(f"{k} {res[k]:7.0f}" for k in ("copy", "executemany") if k in res)
            print(f"  run {r + 1}: {res['acked_per_s']:7.0f} acked/s | position frames p50 {res['pos_p50']:6.1f} "
                  f"p95 {res['pos_p95']:6.1f} p99 {res['pos_p99']:6.1f} ms ({res['pos_frames']}) | SOS p50 "
                  f"{res['sos_p50']:6.1f} p95 {res['sos_p95']:6.1f} p99 {res['sos_p99']:6.1f} ms "
                  f"({res['sos_seen']}/{res['sos_sent']}; acked p50 {res['sos_ack_p50']:.1f} p99 "
                  f"{res['sos_ack_p99']:.1f} ms) | backend CPU {res['backend_cpu_us']:.0f} µs/msg | batch mean "
                  f"{res['batch_mean']:.0f}, feed rows/msg {res['feed_per_msg']:.2f} | floor rows/s: {fl} | errors {res['errors']} "
                  f"resyncs {res['resyncs']}")
        keys = [k for k in ("acked_per_s", "pos_p50", "pos_p95", "pos_p99", "sos_p50", "sos_p95", "sos_p99",
                            "sos_ack_p50", "sos_ack_p99", "backend_cpu_us", "batch_mean", "feed_per_msg", "copy",
                            "executemany") if k in results[0]]
        med = {k: statistics.median(r[k] for r in results) for k in keys}
        floor = med.get("copy", med["executemany"])
        print(f"medians ({db}): {med['acked_per_s']:.0f} msg/s acked (parsed, deduped, stored with feed rows, acked "
              f"after commit) vs floor {floor:.0f} rows/s ({'COPY' if 'copy' in med else 'executemany'}): "
              f"{floor / med['acked_per_s']:.1f}x the floor's cost")
        print(f"SUMMARY db={db} bands={args.bands} gateways={args.gateways} messages={args.messages} "
              f"runs={args.runs} acked_per_s={med['acked_per_s']:.0f} "
              + " ".join(f"floor_{k}_rows_per_s={med[k]:.0f}" for k in ("copy", "executemany") if k in med)
              + f" position_feed_p50_ms={med['pos_p50']:.1f} position_feed_p99_ms={med['pos_p99']:.1f}"
              f" sos_feed_p50_ms={med['sos_p50']:.1f} sos_feed_p95_ms={med['sos_p95']:.1f}"
              f" sos_feed_p99_ms={med['sos_p99']:.1f} sos_ack_p50_ms={med['sos_ack_p50']:.1f}"
              f" sos_ack_p99_ms={med['sos_ack_p99']:.1f} backend_cpu_us_per_msg={med['backend_cpu_us']:.1f}"
              f" batch_mean={med['batch_mean']:.0f} feed_rows_per_msg={med['feed_per_msg']:.2f}")
        return med
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
        if admin is not None and schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        tmp.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--url", default=PG_DEFAULT, help=f"PostgreSQL server (default {PG_DEFAULT})")
    ap.add_argument("--bands", type=int, default=500)
    ap.add_argument("--gateways", type=int, default=4)
    ap.add_argument("--messages", type=int, default=20000, help="positions per run, over all gateways")
    ap.add_argument("--window", type=int, default=256, help="unacked messages in flight per gateway (max 256)")
    ap.add_argument("--sos-ms", type=float, default=250.0, help="an SOS alert every this many ms during the run")
    ap.add_argument("--floor-rows", type=int, default=20480, help="rows per floor measurement")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--linger-ms", type=float, default=None,
                    help="an experiment: the backend's bulk linger (IngestOptions.bulk_linger_s; default the code's)")
    ap.add_argument("--workers", type=int, default=1,
                    help="backend processes sharing the port, as `chumphae serve --workers N` (PostgreSQL only)")
    ap.add_argument("--ws-compression", action=argparse.BooleanOptionalAction, default=None,
                    help="permessage-deflate on the backend's sockets (default: as `chumphae serve`)")
    ap.add_argument("--place", choices=("named", "zone"), default="named",
                    help="positions name their place (a gateway with the tax map), or only the zone's words (the "
                         "backend names it from the default map, loaded for the run)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.url, args.schema, args.port, args.linger_ms, args.workers, args.ws_compression)
        return
    if args.workers > 1 and args.db != "postgresql":
        ap.error("--workers > 1 needs --db postgresql")
    if not 1 <= args.window <= 256:
        ap.error("--window must be 1..256")
    import logging

    logging.disable(logging.WARNING)  # alembic's INFO lines
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    meds = {db: bench_db(db, args) for db in dbs}
    print("SUMMARY " + " ".join(f"{db}_acked_per_s={m['acked_per_s']:.0f} {db}_sos_p99_ms={m['sos_p99']:.1f}"
                                + "".join(f" {db}_floor_{k}={m[k]:.0f}" for k in ("copy", "executemany") if k in m)
                                for db, m in meds.items()))


if __name__ == "__main__":
    main()
