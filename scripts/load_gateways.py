#!/usr/bin/env python3
"""An outside load generator: G gateways streaming B bands into a live backend, SOS → caregiver feed latency.

Written from the documents, not the code: the gateway side from
docs/gateway-protocol.md (bearer token, `welcome`, envelope, `position` and
`alert` bodies, `ack`/`error`, at most 256 unacknowledged per gateway), the
caregiver side from docs/feed-protocol.md (`/ws/alerts`, bearer header,
`welcome` + `snapshot`, `alert` deltas), the seeding from docs/mobile-api.md
(`POST /api/v1/patients`, `PUT /api/v1/patients/{id}/bands`,
`POST /api/v1/users`). Gateways have no REST route, so they (and the first
admin) are made with the `chumphae` command line, in one `python -m` call of
the same commands' functions (`chumphae gateways create` would start one
process per gateway).

It starts its own backend (`chumphae serve`, loopback only, a fresh SQLite
file or a private PostgreSQL schema dropped afterwards), seeds it, opens G
gateway sockets and one care manager feed socket, and streams pre-encoded
`position` frames (each gateway at most `--window` unacknowledged; `--rate`
caps the total messages/s, 0 = as fast as acks allow: a closed loop that
saturates the backend) while an SOS `alert` is sent every `--sos-every-s`
from a random gateway, at once, beyond the window (§3.3; `--sos-window
shared`: only when the window has room, as gateways did before sos12).
`--band-hz HZ` is the open loop the protocol describes instead: every band
of a gateway sends a position each 1/HZ s (at most 1: §3.4), the gateway's
bands at once at its own phase, so 5,000 bands at 1 Hz offer 5,000
positions/s whatever the backend acknowledges (still within the window; the
ticks that went out late, because the window was full, are counted). It measures acked
messages/s and SOS send → `alert` frame on the care manager's feed
(p50/p99). It stops by itself after `--duration` seconds or `--max-messages`,
whichever first, and prints a final `SUMMARY ...` line, with the CPU the
generator's gateways and its feed client used (cores).

`--alert-workers N` (PostgreSQL) starts the backend with `--alert-port`: N
processes of their own for the gateways' alert sockets and the caregiver's
feed (docs/gateway-protocol.md §3.3); each gateway opens the alert socket its
`welcome` names and sends each SOS there and then on its main socket
(`--sos-lane`), and the care manager's feed is read from that port.
`--bulk-nice K` runs the main port's processes K nicer; `--backend-cpus 0`
pins the whole backend to one core (a slower machine, emulated).

`--breakdown FILE` (PostgreSQL; diagnosis, so it looks inside the backend,
unlike the rest): where each SOS's time went, from the generator's clock
(sent, acked, seen) and the backend's database (`ingested_message.received_at`:
the ingest began; the SOS's `feed_event.t`: its feed row, just before the
commit); with a backend patched by `scripts/feed_trace.patch` (diagnosis
only: `git apply` it, set `CHUMPHAE_FEED_TRACE_DIR`), also the alert's
commit, the feed read (pool wait, query, render) and the frame's send. See
"SOS fan-out (branch feed7)" in docs/performance.md.

Usage: .venv/bin/python scripts/load_gateways.py [--bands 5000] [--gateways 100] [--duration 20]
       [--rate 0] [--sos-every-s 0.2] [--db sqlite|postgresql] [--url postgresql://postgres@127.0.0.1:5432/test]
       [--seed rest|direct] [--workers 1] [--breakdown timelines.json] [--band-hz 1]
       [--sos-window beyond|shared] [--sos-socket same|separate]
       [--alert-workers 1 [--bulk-nice 10] [--sos-lane both|alert|main]] [--backend-cpus 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
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

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
CHUMPHAE = [str(Path(sys.executable).with_name("chumphae"))]  # the console script next to this Python
LAT, LON = 16.5442, 102.0997

# The seed the REST API cannot do: gateways (and the first admin). Prints JSON.
SEED_GATEWAYS = """
import json, sys
from sqlmodel import Session
from chumphae.auth.service import create_gateway, create_user
from chumphae.config import get_settings
from chumphae.db import init_engine
engine = init_engine(get_settings().effective_database_url)
n, lanes = int(sys.argv[1]), int(sys.argv[2])
with Session(engine) as s:
    _, admin = create_user(s, name="load admin", role="admin")
    out = {"admin": admin, "gateways": []}
    for g in range(n):
        gw, token = create_gateway(s, slug=f"gw-load-{g}", name=f"load {g}", site=f"load-{g}",
                                   lat=16.5442, lon=102.0997)
        out["gateways"].append(token)
    out["alert_gateways"] = []
    for g in range(n if lanes else 0):  # --sos-socket separate: a second gateway on each site
        gw, token = create_gateway(s, slug=f"gw-load-{g}-sos", name=f"load {g} sos", site=f"load-{g}",
                                   lat=16.5442, lon=102.0997)
        out["alert_gateways"].append(token)
    s.commit()
print(json.dumps(out))
"""

# --seed direct: patients and bands in one transaction (fast set-up, same rows as the REST calls make).
SEED_BANDS = """
import json, os, sys
from sqlmodel import Session
from chumphae.config import get_settings
from chumphae.db import init_engine
from chumphae.models import Patient, Wristband
engine = init_engine(get_settings().effective_database_url, migrate=False)
bands, gateways = int(sys.argv[1]), int(sys.argv[2])
with Session(engine) as s:
    ps = [Patient(name_th=f"ผู้ป่วย {i}", nhso_group=2) for i in range(bands)]
    s.add_all(ps)
    s.flush()
    out = []
    for i, p in enumerate(ps):
        g = i % gateways
        address = f"C0:1D:{g // 256:02X}:{g % 256:02X}:{i // 256 % 256:02X}:{i % 256:02X}"
        s.add(Wristband(address=address, key_hex=os.urandom(16).hex(), patient_id=p.id, site=f"load-{g}"))
        out.append([g, address, p.id])
    s.commit()
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_python(code: str, env: dict[str, str], *argv: str) -> Any:
    out = subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"seeding failed: {out.stderr.strip().splitlines()[-1:]}")
    return orjson.loads(out.stdout.strip().splitlines()[-1])


async def seed_rest(http: httpx.AsyncClient, admin: str, bands: int, gateways: int) -> list[list[Any]]:
    """Patients and their bands over the REST API, 8 requests at a time."""
    headers = {"Authorization": f"Bearer {admin}"}
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> list[Any]:
        async with sem:
            r = await http.post("/api/v1/patients", json={"name_th": f"ผู้ป่วย {i}", "nhso_group": 2},
                                headers=headers)
            r.raise_for_status()
            pid = r.json()["id"]
            g = i % gateways
            address = f"C0:1D:{g // 256:02X}:{g % 256:02X}:{i // 256 % 256:02X}:{i % 256:02X}"
            for attempt in range(20):  # a 201 may come before its commit (issue 12): a 404 just after is retried
                r = await http.put(f"/api/v1/patients/{pid}/bands", headers=headers,
                                   json={"address": address, "key_hex": os.urandom(16).hex(), "site": f"load-{g}"})
                if r.status_code != 404:
                    break
                await asyncio.sleep(0.05 * (attempt + 1))
            r.raise_for_status()
            return [g, address, pid]

    return list(await asyncio.gather(*(one(i) for i in range(bands))))


def position_frame(address: str, patient_id: int, t: datetime, k: int) -> tuple[str, bytes]:
    mid = str(uuid.uuid4())
    body = {"address": address, "patient_id": patient_id, "t": t.isoformat(), "lat": LAT + (k % 11) * 1e-5,
            "lon": LON + (k % 13) * 1e-5, "uncertainty_m": 18.5, "source": "ble", "receivers": 3,
            "in_coverage": True,
            "match": {"status": "inside", "zone_version": 1, "distance_to_boundary_m": -20.0,
                      "place": {"parcel_code": "03I002", "description_th": "บ้าน", "description_en": "home"}}}
    return mid, orjson.dumps({"id": mid, "type": "position", "t": t.isoformat(), "seq": k, "body": body})


async def drive(port: int, tokens: list[str], cm_token: str, bands: list[list[Any]], args: argparse.Namespace,
                sos_tokens: list[str], alert_port: int | None = None) -> dict[str, Any]:
    base = f"ws://127.0.0.1:{port}"
    # With an alert lane the care manager's feed is read from the alert processes (docs/feed-protocol.md: any
    # process serves the feed; `chumphae serve --alert-port` puts caregivers there).
    feed_base = f"ws://127.0.0.1:{alert_port}" if alert_port else base
    g_count = len(tokens)
    per_gateway = max(1, args.max_messages // g_count)
    by_gateway: list[list[list[Any]]] = [[] for _ in range(g_count)]
    for b in bands:
        by_gateway[b[0]].append(b)
    t0 = datetime.now(UTC) - timedelta(minutes=2)
    frames: list[list[tuple[str, bytes]]] = []
    for g in range(g_count):
        mine = by_gateway[g]
        if args.band_hz > 0:  # open loop: every band once a tick for the whole run, up to --max-messages
            per_gateway = min(max(1, args.max_messages // g_count),
                              len(mine) * (int(args.duration * args.band_hz) + 1))
        frames.append([position_frame(mine[k % len(mine)][1], mine[k % len(mine)][2],
                                      t0 + timedelta(milliseconds=k), k) for k in range(per_gateway)])
    acked = 0
    sos_sent: dict[tuple[int, str], float] = {}
    sos_seen: dict[tuple[int, str], float] = {}
    sos_ids: dict[str, float] = {}  # SOS message id → when sent
    sos_acked: list[float] = []  # SOS send → its ack, ms: the backend's ingest share of the latency
    sos_msg: dict[str, tuple[int, str]] = {}  # SOS message id → its key (patient, t)
    sos_ack_at: dict[str, float] = {}  # SOS message id → when its ack arrived
    stop = asyncio.Event()
    rate_gap = g_count / args.rate if args.rate > 0 else 0.0  # seconds between sends on one gateway
    late: list[float] = []  # open loop: how late each gateway's tick was sent (s): the backend fell behind
    rng_phase = random.Random(12)

    async with contextlib.AsyncExitStack() as stack:
        if args.feed_client == "process":
            # The care manager's phone is another device: its socket is read in a process of its own, so the
            # SOS frames are timed when they arrive, not when this busy event loop gets to them.
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--feed-child", feed_base, cm_token, str(args.feed_priority),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20)
            stack.push_async_callback(_end_child, child)
            assert child.stdout is not None
            if (await asyncio.wait_for(child.stdout.readline(), 60)).strip() != b"ready":
                raise SystemExit("feed client did not start")

            async def read_feed() -> None:
                assert child.stdout is not None
                async for line in child.stdout:
                    pid, iso, at = orjson.loads(line)
                    sos_seen.setdefault((pid, iso), at)
        else:
            feed = await stack.enter_async_context(connect(
                f"{feed_base}/ws/alerts", additional_headers={"Authorization": f"Bearer {cm_token}"}, max_size=None))
            for _ in range(2):  # welcome, snapshot
                await asyncio.wait_for(feed.recv(), 60)

            async def read_feed() -> None:
                async for raw in feed:
                    key = _sos_key(raw)
                    if key is not None:
                        sos_seen.setdefault(key, time.monotonic())

        sockets: list[ClientConnection] = []
        lanes: list[ClientConnection] = []  # each gateway's alert socket, where its welcome names one (§3.3)
        for token in [*tokens, *sos_tokens]:
            headers = {"Authorization": f"Bearer {token}"}
            ws = await connect(f"{base}/api/v1/gateway/ws", additional_headers=headers, max_size=None)
            welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            assert welcome["type"] == "welcome"
            sockets.append(ws)
            where = welcome.get("alert_socket")
            if where and args.sos_lane != "main" and len(lanes) < g_count:
                lane = await connect(f"ws://127.0.0.1:{where['port']}{where['path']}", additional_headers=headers,
                                     max_size=None)
                assert orjson.loads(await asyncio.wait_for(lane.recv(), 60))["type"] == "welcome"
                lanes.append(lane)
        sos_sockets = sockets[g_count:] or sockets[:g_count]

        def sos_acked_now(i: str) -> None:  # an SOS's ack (or error) arrived: its send → ack time
            if i in sos_ids:
                sos_ack_at[i] = time.monotonic()
                sos_acked.append((sos_ack_at[i] - sos_ids.pop(i)) * 1000)

        async def sos_acks(ws: ClientConnection) -> None:  # the separate SOS sockets' acks
            async for raw in ws:
                f = orjson.loads(raw)
                for i in (f.get("ids") or []) if f.get("type") == "ack" else []:
                    sos_acked_now(i)

        ack_tasks = [asyncio.create_task(sos_acks(ws)) for ws in [*sockets[g_count:], *lanes]]
        t_start = time.monotonic()

        rooms = [asyncio.Semaphore(args.window) for _ in range(g_count)]  # each gateway's unacked window
        pendings: list[set[str]] = [set() for _ in range(g_count)]

        async def gateway(g: int) -> None:
            nonlocal acked
            ws = sockets[g]
            room, pending = rooms[g], pendings[g]

            async def reader() -> None:
                nonlocal acked
                async for raw in ws:
                    f = orjson.loads(raw)
                    ids = f.get("ids") if f.get("type") == "ack" else [f.get("id")] if f.get("type") == "error" else []
                    for i in ids or []:
                        sos_acked_now(i)
                        if i in pending:
                            pending.discard(i)
                            acked += f["type"] == "ack" and i not in sos_msg
                            room.release()

            task = asyncio.create_task(reader())
            if args.band_hz > 0:
                # Open loop, as a gateway's pipeline sends (docs/gateway-protocol.md §3.4): once a tick (1 /
                # --band-hz s, each gateway at its own phase) a position for every band it hears, written
                # at once, still at most --window unacknowledged.
                period, n_bands = 1.0 / args.band_hz, len(by_gateway[g])
                first = t_start + rng_phase.uniform(0, period)
                for tick in range(0, (len(frames[g]) + n_bands - 1) // n_bands):
                    delay = first + tick * period - time.monotonic()
                    if delay > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
                    late.append(max(0.0, -delay))
                    for mid, text in frames[g][tick * n_bands:(tick + 1) * n_bands]:
                        await room.acquire()
                        pending.add(mid)
                        await ws.send(text.decode())
            for mid, text in frames[g] if args.band_hz <= 0 else ():
                if stop.is_set():
                    break
                await room.acquire()
                pending.add(mid)
                await ws.send(text.decode())
                if rate_gap:
                    await asyncio.sleep(rate_gap)
            while pending and not stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()

        async def sos() -> None:
            n = 0
            rng = random.Random(11)
            while not stop.is_set():
                await asyncio.sleep(args.sos_every_s)
                g = rng.randrange(g_count)
                _, address, pid = rng.choice(by_gateway[g])
                t = datetime.now(UTC) + timedelta(microseconds=n)
                body = {"type": "sos", "severity": "critical", "address": address, "patient_id": pid,
                        "t": t.isoformat(), "lat": LAT, "lon": LON, "uncertainty_m": 15.0, "match": None,
                        "details": {}}
                sid = str(uuid.uuid4())
                sos_sent[(pid, t.isoformat())] = sos_ids[sid] = time.monotonic()  # the feed child's clock too
                sos_msg[sid] = (pid, t.isoformat())
                if args.sos_window == "shared":  # as a gateway did before sos12: the SOS waits for room
                    await rooms[g].acquire()
                    pendings[g].add(sid)
                text = orjson.dumps({"id": sid, "type": "alert", "t": t.isoformat(), "seq": 0, "body": body}).decode()
                if lanes:  # on the alert socket first, then (§3.3) on the main socket too unless --sos-lane alert
                    await lanes[g].send(text)
                if not lanes or args.sos_lane == "both":
                    await sos_sockets[g].send(text)
                n += 1

        feed_task = asyncio.create_task(read_feed())
        start = time.perf_counter()
        sos_task = asyncio.create_task(sos())
        gws = asyncio.gather(*(gateway(g) for g in range(g_count)))
        try:
            await asyncio.wait_for(asyncio.shield(gws), args.duration)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - start
        stop.set()
        await asyncio.gather(gws, sos_task, return_exceptions=True)
        deadline = time.monotonic() + 5  # the last SOS frames
        while time.monotonic() < deadline and any(k not in sos_seen for k in sos_sent):
            await asyncio.sleep(0.05)
        for ws in [*sockets, *lanes]:
            await ws.close()
        for t in ack_tasks:
            t.cancel()
        feed_cpu = tree_cpu_s(child.pid) if args.feed_client == "process" else 0.0
        feed_task.cancel()
        await asyncio.gather(feed_task, return_exceptions=True)
    lat = [(sos_seen[k] - t) * 1000 for k, t in sos_sent.items() if k in sos_seen]
    wall = time.time() - time.monotonic()  # monotonic → wall clock (the backend's timestamps are wall clock)
    each = [{"id": sid, "patient_id": k[0], "t": k[1], "sent": sos_sent[k] + wall,
             "acked": sos_ack_at[sid] + wall if sid in sos_ack_at else None,
             "seen": sos_seen[k] + wall if k in sos_seen else None} for sid, k in sos_msg.items()]
    return {"each": each, "feed_client_cores": feed_cpu / elapsed,
            "acked_per_s": acked / elapsed, "acked": acked, "seconds": elapsed, "sos_sent": len(sos_sent),
            "sos_seen": len(lat), "sos_p50": quantile(lat, 0.5), "sos_p99": quantile(lat, 0.99),
            "sos_max": max(lat) if lat else float("nan"), "sos_ack_p50": quantile(sos_acked, 0.5),
            "sos_ack_p99": quantile(sos_acked, 0.99), "late_p99": quantile(late, 0.99) * 1000,
            "ticks": len(late)}


STAGES = (  # (name, from, to): the SOS's path, each a difference of two timestamps (wall clock, seconds)
    ("gateway send → ingest start", "sent", "received"),  # socket read, alert queue, urgent worker taken
    ("ingest start → feed row", "received", "appended"),  # the alert transaction up to its feed row
    ("feed row → ack at the gateway", "appended", "acked"),  # commit, ack frame, the generator reading it
    ("feed row → frame at the care manager", "appended", "seen"),
    # with the backend's trace (CHUMPHAE_FEED_TRACE_DIR), the fan-out in detail:
    ("feed row → commit", "appended", "committed"),
    ("commit → feed read starts", "committed", "read_start"),
    ("read: thread pool wait", "read_start", "t_in"),
    ("read: query", "t_in", "t_db"),
    ("read: render", "t_db", "t_rendered"),
    ("read: back on the event loop", "t_rendered", "read_back"),
    ("queued → send starts", "read_back", "send"),
    ("send (encode, compress, write)", "send", "sent_out"),
    ("written → read by the care manager", "sent_out", "seen"),
)


def sos_timeline(url: str, schema: str, each: list[dict[str, Any]], trace_dir: str | None) -> list[dict[str, Any]]:
    """Each SOS's timestamps: the generator's (sent, acked, seen), the database's (the ingest's start,
    `ingested_message.received_at`; its feed row's `t`, taken just before the append), and the backend's
    trace files if any (one JSON line per event and process: commit, read, send)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, options=f"-csearch_path={schema}") as conn:
        received = dict(conn.execute("SELECT msg_id, received_at FROM ingested_message WHERE msg_id = ANY(%s)",
                                     ([e["id"] for e in each],)).fetchall())
        rows = conn.execute("SELECT id, t, patient_id, payload->'alert'->>'last_triggered_at' FROM feed_event "
                            "WHERE kind = 'alert'").fetchall()
    feed = {(pid, datetime.fromisoformat(at)): (i, t) for i, t, pid, at in rows if at}
    events: list[dict[str, Any]] = []
    for f in Path(trace_dir).glob("*.jsonl") if trace_dir else ():
        events += [orjson.loads(line) for line in f.read_text().splitlines() if line.strip()]
    commits = sorted(e["at"] for e in events if e["kind"] == "commit")
    reads: dict[int, dict[str, Any]] = {}
    sends: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["kind"] == "read" and (e["cursor"] not in reads or e["back"] < reads[e["cursor"]]["back"]):
            reads[e["cursor"]] = e
        elif e["kind"] == "send":
            sends.setdefault(e["cursor"], e)
    out = []
    for e in each:
        r = dict(e)
        if e["id"] in received:
            r["received"] = received[e["id"]].timestamp()
        cursor, appended = feed.get((e["patient_id"], datetime.fromisoformat(e["t"])), (None, None))
        if appended is not None:
            r["cursor"], r["appended"] = cursor, appended.timestamp()
            later = [c for c in commits if c >= r["appended"]]
            if later:
                r["committed"] = later[0]
        if cursor in reads:
            rd = reads[cursor]
            r.update(read_start=rd["start"], t_in=rd["t_in"], t_db=rd["t_db"], t_rendered=rd["t_rendered"],
                     read_back=rd["back"], lane=rd["lane"], rows=rd["rows"], qpos=rd["qpos"])
        if cursor in sends:
            r.update(send=sends[cursor]["send"], sent_out=sends[cursor]["sent"])
        out.append(r)
    return out


def print_stages(timeline: list[dict[str, Any]], label: str) -> None:
    for name, a, b in STAGES:
        xs = [(r[b] - r[a]) * 1000 for r in timeline if r.get(a) is not None and r.get(b) is not None]
        if xs:
            print(f"  {label} {name:<40} p50 {quantile(xs, 0.5):7.1f} ms  p99 {quantile(xs, 0.99):7.1f} ms"
                  f"  max {max(xs):7.1f} ms  (n={len(xs)})")


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its living descendants (Linux /proc; NaN elsewhere)."""
    stats: dict[int, tuple[int, float]] = {}  # pid → (parent, cpu s)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    if pid not in stats:
        return float("nan")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats[p][1]
        todo += [c for c, (parent, _) in stats.items() if parent == p]
    return total


def _sos_key(raw: str | bytes) -> tuple[int, str] | None:
    f = orjson.loads(raw)
    if f.get("type") == "alert" and f["alert"]["type"] == "sos":
        a = f["alert"]
        return a["patient_id"], datetime.fromisoformat(a["last_triggered_at"]).isoformat()
    return None


async def _end_child(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        child.terminate()
    await child.wait()


def feed_child(base: str, token: str, priority: int) -> None:
    """`--feed-child`: the care manager's feed socket alone; one line per SOS frame: [patient, t, monotonic]."""
    if priority:
        with contextlib.suppress(OSError):  # raising it needs the right to; then it runs as it is
            os.setpriority(os.PRIO_PROCESS, 0, priority)

    async def run() -> None:
        async with connect(f"{base}/ws/alerts", additional_headers={"Authorization": f"Bearer {token}"},
                           max_size=None) as feed:
            for _ in range(2):  # welcome, snapshot
                await asyncio.wait_for(feed.recv(), 60)
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            async for raw in feed:
                at = time.monotonic()
                key = _sos_key(raw)
                if key is not None:
                    sys.stdout.write(orjson.dumps([key[0], key[1], at]).decode() + "\n")
                    sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(run())


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--feed-child":
        feed_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--bands", type=int, default=5000)
    ap.add_argument("--gateways", type=int, default=100)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of streaming (the run stops by itself)")
    ap.add_argument("--max-messages", type=int, default=100_000, help="positions pre-encoded, over all gateways")
    ap.add_argument("--rate", type=float, default=0.0, help="total positions/s (0: as fast as acks allow)")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--band-hz", type=float, default=0.0,
                    help="open loop: a position per band this often (1 = every tick, the most a gateway sends; "
                         "1/60 = still bands), each gateway's bands at once at its own phase; 0: closed loop")
    ap.add_argument("--sos-window", choices=("beyond", "shared"), default="beyond",
                    help="the SOS sent at once beyond the window of unacknowledged positions (a gateway since "
                         "sos12, docs/gateway-protocol.md §3.3) or only when the window has room (before)")
    ap.add_argument("--sos-socket", choices=("same", "separate"), default="same",
                    help="diagnosis: the SOS on its gateway's socket (as the protocol has it) or on a second "
                         "gateway's socket of the same site (what an alert lane of its own would give)")
    ap.add_argument("--alert-workers", type=int, default=0,
                    help="backend processes for alert sockets and the feed (`chumphae serve --alert-port P "
                         "--alert-workers N`, PostgreSQL); 0: none, every socket on the main port as before")
    ap.add_argument("--bulk-nice", type=int, default=0,
                    help="with --alert-workers: `chumphae serve --bulk-nice N` (the main port's processes nicer)")
    ap.add_argument("--sos-lane", choices=("both", "alert", "main"), default="both",
                    help="with --alert-workers: each SOS on its gateway's alert socket and then its main socket "
                         "(docs/gateway-protocol.md §3.3), on the alert socket only, or on the main socket only")
    ap.add_argument("--backend-cpus", default="",
                    help="run the backend's processes on these CPUs only (`taskset -c`, e.g. 0: one core, as a "
                         "slower machine); default: wherever the system puts them")
    ap.add_argument("--sos-every-s", type=float, default=0.2)
    ap.add_argument("--runs", type=int, default=1, help="streaming runs against the same seeded backend")
    ap.add_argument("--workers", type=int, default=1, help="backend processes (`chumphae serve --workers N`, PostgreSQL)")
    ap.add_argument("--feed-client", choices=("process", "inline"), default="process",
                    help="read the care manager's feed in a process of its own (default) or on this event loop")
    ap.add_argument("--feed-priority", type=int, default=0,
                    help="nice value of the feed process (negative: ahead of the generator and the backend)")
    ap.add_argument("--breakdown", metavar="FILE", default=None,
                    help="PostgreSQL: print where each SOS's time went (see STAGES) and write the timelines (JSON)")
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--seed", choices=("rest", "direct"), default="rest",
                    help="patients and bands over REST (as written in docs/mobile-api.md) or in one transaction")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="load_gateways_")
    port = free_port()
    env = {**os.environ, "CHUMPHAE_DATA_DIR": tmp.name, "CHUMPHAE_HOST": "127.0.0.1", "CHUMPHAE_PORT": str(port),
           "CHUMPHAE_LOG_LEVEL": "WARNING"}
    env.pop("CHUMPHAE_REDIS_URL", None)
    schema = None
    if args.db == "postgresql":
        import psycopg

        schema = f"load_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        env["CHUMPHAE_DATABASE_URL"] = f"{args.url}?options=-csearch_path%3D{schema}"
    else:
        env["CHUMPHAE_DATABASE_URL"] = f"sqlite:///{Path(tmp.name) / 'load.db'}"
    proc = None
    try:
        subprocess.run([*CHUMPHAE, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
        seeded = run_python(SEED_GATEWAYS, env, str(args.gateways), str(int(args.sos_socket == "separate")))
        alert_port = free_port() if args.alert_workers > 0 else None
        lane_args = ["--alert-port", str(alert_port), "--alert-workers", str(args.alert_workers),
                     "--bulk-nice", str(args.bulk_nice)] if alert_port else []
        pin = ["taskset", "-c", args.backend_cpus] if args.backend_cpus else []  # a slower machine, emulated
        proc = subprocess.Popen([*pin, *CHUMPHAE, "serve", "--workers", str(args.workers), *lane_args], env=env,
                                cwd=ROOT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if all(httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=1).status_code == 200
                       for p in (port, alert_port) if p):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("backend did not start")
            time.sleep(0.2)
        t_seed = time.perf_counter()

        async def setup() -> tuple[list[list[Any]], str]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                if args.seed == "rest":
                    bands = await seed_rest(http, seeded["admin"], args.bands, args.gateways)
                else:
                    bands = run_python(SEED_BANDS, env, str(args.bands), str(args.gateways))
                r = await http.post("/api/v1/users", json={"name": "load care manager", "role": "care_manager"},
                                    headers={"Authorization": f"Bearer {seeded['admin']}"})
                r.raise_for_status()
                return bands, r.json()["token"]

        bands, cm_token = asyncio.run(setup())
        print(f"load_gateways: {args.db}, {args.bands} bands on {args.gateways} gateways seeded ({args.seed}) in "
              f"{time.perf_counter() - t_seed:.0f} s; backend pid {proc.pid} on 127.0.0.1:{port}")
        results = []
        timelines: list[dict[str, Any]] = []
        for r in range(args.runs):
            cpu0, own0 = tree_cpu_s(proc.pid), time.process_time()
            res = asyncio.run(drive(port, seeded["gateways"], cm_token, bands, args, seeded["alert_gateways"],
                                    alert_port))
            # The backend processes' own CPU per acked message: steadier than msgs/s on a shared machine.
            res["backend_cpu_us"] = (tree_cpu_s(proc.pid) - cpu0) / max(1, res["acked"]) * 1e6
            res["generator_cores"] = (time.process_time() - own0) / res["seconds"]  # the gateways' side alone
            results.append(res)
            if args.breakdown and schema:
                timeline = sos_timeline(args.url, schema, res.pop("each"), env.get("CHUMPHAE_FEED_TRACE_DIR"))
                print_stages(timeline, f"run {r + 1}")
                timelines += [{**x, "run": r + 1} for x in timeline]
            print(f"  run {r + 1}: {res['acked']} acked in {res['seconds']:.1f} s = {res['acked_per_s']:.0f} msg/s; "
                  f"SOS → feed p50 {res['sos_p50']:.0f} ms p99 {res['sos_p99']:.0f} ms max {res['sos_max']:.0f} ms "
                  f"({res['sos_seen']}/{res['sos_sent']} seen; acked p50 {res['sos_ack_p50']:.0f} p99 {res['sos_ack_p99']:.0f} ms); backend CPU {res['backend_cpu_us']:.0f} µs/msg; "
                  f"generator {res['generator_cores']:.2f} core, "
                  + (f"ticks late p99 {res['late_p99']:.0f} ms ({res['ticks']} ticks), " if args.band_hz else "") +
                  f"feed client {res['feed_client_cores']:.2f} core")
        med = {k: statistics.median(x[k] for x in results)
               for k in ("acked_per_s", "sos_p50", "sos_p99", "sos_ack_p50", "sos_ack_p99", "backend_cpu_us",
                         "generator_cores")}
        if args.breakdown and timelines:
            print_stages(timelines, "all")
            Path(args.breakdown).write_bytes(orjson.dumps(timelines))
        loop = (f"band_hz={args.band_hz:g} ticks_late_p99_ms={statistics.median(x['late_p99'] for x in results):.0f} "
                if args.band_hz > 0 else "")
        print(f"SUMMARY db={args.db} bands={args.bands} gateways={args.gateways} workers={args.workers} runs={args.runs} "
              f"alert_workers={args.alert_workers} bulk_nice={args.bulk_nice} sos_lane_{args.sos_lane}=1 "
              f"{loop}sos_socket_separate={int(args.sos_socket == 'separate')} "
              f"sos_window_shared={int(args.sos_window == 'shared')} "
              f"acked_per_s={med['acked_per_s']:.0f} sos_feed_p50_ms={med['sos_p50']:.0f} "
              f"sos_feed_p99_ms={med['sos_p99']:.0f} sos_ack_p50_ms={med['sos_ack_p50']:.0f} sos_ack_p99_ms={med['sos_ack_p99']:.0f} "
              f"backend_cpu_us_per_msg={med['backend_cpu_us']:.0f} generator_cores={med['generator_cores']:.2f} sos_seen={sum(x['sos_seen'] for x in results)}/"
              f"{sum(x['sos_sent'] for x in results)}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if schema:
            import psycopg

            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        tmp.cleanup()


if __name__ == "__main__":
    main()
