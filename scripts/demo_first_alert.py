"""Time from `scripts/demo` start to its first stored alert, and whether that alert is a walk that ends
outside the zone (first position of the walk inside, last outside, no jumps).

    .venv/bin/python scripts/demo_first_alert.py [--port 8099] [--timeout 900] [--speed 1] [--keep]

Starts `scripts/demo --no-open` in a fresh data folder on a free loopback port, reads the admin token
it prints, polls `/api/v1/alerts` every second, then stops the demo (its own process only).
The data folder (`$TMPDIR/demo-first-alert-*`: the demo's database and log) is removed when it ends, also on
an error, Ctrl-C or SIGTERM, unless `--keep` is given (then its path is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def get(url: str, token: str) -> object:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # SIGTERM unwinds like Ctrl-C does: the demo is stopped, the folder removed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true",
                    help="keep the demo's data folder ($TMPDIR/demo-first-alert-*: database and demo.log) and print "
                         "its path; without it the folder is removed on exit, also on an error, Ctrl-C or SIGTERM")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _terminated)
    data = Path(tempfile.mkdtemp(prefix="demo-first-alert-"))
    try:
        return measure(args, data)
    finally:
        if args.keep:
            print(f"kept the demo's data folder: {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


def measure(args: argparse.Namespace, data: Path) -> int:
    env = {**os.environ, "CHUMPHAE_DATA_DIR": str(data), "CHUMPHAE_PORT": str(args.port),
           "CHUMPHAE_LOG_LEVEL": "WARNING"}
    env.pop("CHUMPHAE_DATABASE_URL", None)
    t0 = time.monotonic()
    with (data / "demo.log").open("w") as log:
        proc = subprocess.Popen([str(REPO / "scripts" / "demo"), "--no-open", "--speed", str(args.speed)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            return poll(args, data, t0, proc)
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop the demo (its own process group only) before its data folder goes."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(15)
    except ProcessLookupError:
        return
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # a second Ctrl-C does not leave it running
        with contextlib.suppress(ProcessLookupError):  # the group may have left meanwhile
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def poll(args: argparse.Namespace, data: Path, t0: float, proc: subprocess.Popen[str]) -> int:
    token = ""
    base = f"http://127.0.0.1:{args.port}"
    out: list[str] = []
    while time.monotonic() - t0 < args.timeout:
        out = [(data / "demo.log").read_text(encoding="utf-8", errors="replace")]
        m = re.search(r"^\s+admin\s+(\S+)", "".join(out), re.M)
        token = m.group(1) if m else token
        if proc.poll() is not None:
            print("".join(out)[-3000:])
            return 1
        if token:
            try:
                page = get(f"{base}/api/v1/alerts?limit=500", token)
            except OSError:
                page = {"items": []}
            items = sorted(page["items"], key=lambda a: a["id"])  # type: ignore[index]
            if items:
                first = items[0]
                took = time.monotonic() - t0
                pos = get(f"{base}/api/v1/patients/{first['patient_id']}/positions?limit=500", token)
                track = sorted(pos["items"], key=lambda p: p["t"])  # type: ignore[index]
                print("".join(out)[-2500:])
                print(f"first alert after {took:.0f} s: {first['type']} ({first['type_en']}) of patient "
                      f"{first['patient_id']}: {first['details']}")
                print("positions of that patient (zone status, uncertainty m):",
                      [(p["zone_status"], round(p["uncertainty_m"] or 0)) for p in track])
                return 0
        time.sleep(1.0)
    print("no alert within the timeout\n" + "".join(out)[-3000:])
    return 1


if __name__ == "__main__":
    sys.exit(main())
