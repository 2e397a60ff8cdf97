"""Benchmark: the backend's memory per tracked band, measured (tracemalloc) on the real ingest path.

    .venv/bin/python scripts/bench_backend_memory.py [--bands 2000] [--runs 3]

A fresh SQLite file holds one gateway and `--bands` bands (one patient each),
all on the gateway's site (a connection caches its site's bands).
Each band's position frames are parsed (`chumphae.ingest.envelope.parse`) and
stored (`chumphae.ingest.service.store`, with a gateway connection's
`IngestState`) in batches of 256, twice over, as a gateway socket's worker
does. What the backend then still holds in Python (the connection's band
cache, the newest position time per patient, the ORM's and the driver's
caches) is tracemalloc's traced memory after a full collection, minus that
before the first batch (after a warm-up batch of 8 other bands). The figure
is the slope between a run with half the bands and one with all of them, so
fixed costs cancel. Positions, alerts and the feed live in the database, not
here. Median of `--runs` runs, each in a fresh database.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from chumphae.db import make_engine
from chumphae.ingest import envelope
from chumphae.ingest.envelope import Message
from chumphae.ingest.service import IngestState, store
from chumphae.models import Gateway, Patient, Wristband

BATCH = 256


def seed(engine: Engine, bands: int) -> tuple[int, list[tuple[str, int]]]:
    with Session(engine) as s:
        gw = Gateway(slug="gw-mem", name="memory bench", token_hash=uuid.uuid4().hex * 2, token_prefix="mem")
        s.add(gw)
        patients = [Patient(name_th=f"mem {k}", pid=f"{k:06d}") for k in range(bands)]
        s.add_all(patients)
        s.flush()
        rows = [(f"C0:CA:{k >> 16 & 255:02X}:{k >> 8 & 255:02X}:{k & 255:02X}:01", p.id) for k, p in enumerate(patients)]
        s.add_all([Wristband(address=a, patient_id=pid, key_hex="00112233445566778899aabbccddeeff", site=gw.site)
                   for a, pid in rows])
        s.commit()
        assert gw.id is not None
        return gw.id, [(a, int(pid)) for a, pid in rows if pid is not None]


def frames(bands: list[tuple[str, int]], t: datetime) -> list[Message]:
    out = []
    for k, (address, pid) in enumerate(bands):
        body = {"address": address, "patient_id": pid, "t": t.isoformat(), "lat": 16.54 + k * 1e-5,
                "lon": 102.09 + k * 1e-5, "uncertainty_m": 18.5, "source": "ble", "receivers": 3, "in_coverage": True,
                "match": {"status": "inside", "zone_version": 1, "distance_to_boundary_m": -20.0,
                          "place": {"parcel_code": None, "building_code": None,
                                    "description_th": None, "description_en": None}}}
        mid = uuid.uuid4().hex
        parsed = envelope.parse(json.dumps({"id": mid, "type": "position", "t": t.isoformat(), "seq": k + 1,
                                            "body": body}), now=t)
        assert isinstance(parsed, Message), parsed
        out.append(parsed)
    return out


def held(engine: Engine, state: IngestState, gateway_id: int, bands: list[tuple[str, int]], t0: datetime) -> int:
    """Bytes traced after storing two positions of each of `bands` (state kept), over the traced bytes before."""
    batches = [frames(bands, t0), frames(bands, t0 + timedelta(seconds=30))]  # parsed before the baseline
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for messages in batches:
        for i in range(0, len(messages), BATCH):
            result = store(engine, gateway_id=gateway_id, messages=messages[i:i + BATCH], state=state,
                           now=t0 + timedelta(seconds=31))
            state.committed(engine, result)
    del result  # the last batch's result is not state the backend keeps
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before  # the parsed frames are in both figures


def run(bands: int) -> int:
    """Bytes held after `bands` bands' positions went through a fresh gateway state, in a fresh database."""
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'mem.db'}")
    SQLModel.metadata.create_all(engine)  # the models' tables (the migrations make the same on SQLite)
    gateway_id, rows = seed(engine, bands + 8)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    tracemalloc.start()
    try:  # warm-up on 8 other bands and another state: statements compiled, pool connected, modules imported
        store(engine, gateway_id=gateway_id, messages=frames(rows[bands:], t0 - timedelta(minutes=1)))
        return held(engine, IngestState(gateway_id), gateway_id, rows[:bands], t0)
    finally:
        tracemalloc.stop()
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    per_band = []
    for k in range(args.runs):
        small, large = run(args.bands // 2), run(args.bands)
        b = (large - small) / (args.bands - args.bands // 2)
        per_band.append(b)
        print(f"run {k + 1}: {small / 1024:,.0f} KiB held for {args.bands // 2} bands, {large / 1024:,.0f} KiB for "
              f"{args.bands}: {b / 1024:.2f} KiB per tracked band", flush=True)
    med = statistics.median(per_band)
    print(f"backend memory per tracked band: {med / 1024:.2f} KiB (tracemalloc, median of {args.runs} runs)")
    print(f"SUMMARY bench=backend_memory bands={args.bands} runs={args.runs} kib_per_band={med / 1024:.2f}")


if __name__ == "__main__":
    main()
