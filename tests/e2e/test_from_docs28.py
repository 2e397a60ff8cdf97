"""End to end, as the engineer of ANOTHER system would write it: the district hospital's IT person who receives our
alerts by signed webhook and reads the daily summary, from README.md, docs/delivery.md, docs/daily-summary.md and
docs/feed-protocol.md alone (and the deliveries section of docs/mobile-api.md that docs/delivery.md points to).

Real processes (`chumphae seed-demo`, `chumphae serve`, `chumphae-gateway --simulate everything`), SQLite in a temp
dir, a webhook receiver of our own on 127.0.0.1 (stdlib http.server) that answers 500 once, then 429 with
Retry-After once, then 200 to the SOS notice. Loopback only.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
BANGKOK = ZoneInfo("Asia/Bangkok")
SECRET = "hospital-shared-secret-ลับ"  # non-ASCII on purpose: docs/delivery.md does not say the key's encoding
PUBLIC_URL = "https://chumphae.example"
RETRY_AFTER_S = 2
BACKOFF_S = 1
HOOK_USER_NAME = "ระบบโรงพยาบาลชุมแพ"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hit:
    at: float
    headers: dict[str, str]
    raw: bytes
    answered: int

    @property
    def body(self) -> dict[str, Any]:
        data = json.loads(self.raw)
        assert isinstance(data, dict)
        return data


@dataclass
class Receiver:
    """The hospital's webhook endpoint: records every POST; the SOS notice gets 500, then 429, then 200."""

    url: str
    hits: list[Hit] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    test_retry_after: str | None = None  # answer a `channels test` message 429 with this Retry-After
    test_redirect: bool = False  # answer a `channels test` message 308 to another URL

    def answer_for(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
        alert = body.get("alert") or {}
        with self.lock:
            n = self.tries.get(key, 0) + 1
            self.tries[key] = n
        if body.get("event") == "test" and self.test_redirect:
            return 308, {"Location": self.url + "-moved"}
        if body.get("event") == "test" and self.test_retry_after is not None:
            return 429, {"Retry-After": self.test_retry_after}
        if alert.get("type") == "sos" and body.get("event") == "opened":
            if n == 1:
                return 500, {}
            if n == 2:
                return 429, {"Retry-After": str(RETRY_AFTER_S)}
        return 200, {"X-Request-Id": f"hosp-{key[:8]}"}  # our own receipt number, kept as the provider id

    def of_key(self, key: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.headers.get("idempotency-key") == key]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = _free_port()
    rec = Receiver(url=f"http://127.0.0.1:{port}/chumphae-hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            status, extra = rec.answer_for(headers.get("idempotency-key", ""), body)
            with rec.lock:
                rec.hits.append(Hit(time.monotonic(), headers, raw, status))
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def _env(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env.update(
        CHUMPHAE_DATA_DIR=str(data),
        CHUMPHAE_PORT=str(port),
        CHUMPHAE_PUBLIC_URL=PUBLIC_URL,
        CHUMPHAE_WEBHOOK_SECRET=SECRET,
        CHUMPHAE_DELIVERY_BACKOFF_S=str(BACKOFF_S),
        CHUMPHAE_DELIVERY_BACKOFF_MAX_S="4",
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, (args[1:3], done.stderr[-2000:])  # stdout may hold tokens: not shown
    return done


def _signature_ok(hit: Hit) -> None:
    """docs/delivery.md: `X-Chumphae-Signature: sha256=<hex HMAC-SHA256 of the raw body with CHUMPHAE_WEBHOOK_SECRET>`."""
    header = hit.headers.get("x-chumphae-signature", "")
    expected = "sha256=" + hmac.new(SECRET.encode("utf-8"), hit.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, expected), header
    forged = "sha256=" + hmac.new(b"another secret", hit.raw, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(header, forged)


def _wait(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _doc_columns() -> list[str]:
    """The columns docs/daily-summary.md lists, in its table's order, `alerts_<type>` expanded as the row says."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "daily-summary.md").read_text(encoding="utf-8")
    table = text.split("## Columns", 1)[1]
    cols: list[str] = []
    for line in table.splitlines():
        m = re.match(r"\| `([a-z_<>]+)` \|", line)
        if not m:
            continue
        if m.group(1) == "alerts_<type>":
            types = re.findall(r"`(\w+)`", line.split("by type:", 1)[1].split(";", 1)[0])
            cols += [f"alerts_{t}" for t in types]
        else:
            cols.append(m.group(1))
    return cols


def test_signed_webhook_retries_deliveries_and_daily_summary(tmp_path: Path, receiver: Receiver) -> None:
    data = tmp_path / "data"
    port = _free_port()
    env = _env(data, port)
    chumphae = str(BIN / "chumphae")

    # README: seed-demo prints the users' and gateways' tokens and the user ids.
    seeded = _run([chumphae, "seed-demo"], env).stdout
    hospital_token = re.search(r"^\s*hospital\s+(\S+)", seeded, re.M)
    town_token = re.search(r"gateway gw-chumphae-town\s+(\S+)", seeded)
    assert hospital_token and town_token, "seed-demo printed no hospital or gw-chumphae-town token"
    patients = re.search(r"seeded: (\d+) patients", seeded)
    assert patients, "seed-demo did not say how many patients"

    # Our system is a user caring for every demo patient (README: `users create --patient ID`... repeated).
    args = [chumphae, "users", "create", "--role", "caregiver", "--name", HOOK_USER_NAME, "--lang", "th"]
    for pid in range(1, int(patients.group(1)) + 1):
        args += ["--patient", str(pid)]
    created = _run(args, env).stdout
    user = re.search(r"^user (\d+) ", created, re.I | re.M)
    assert user, "users create did not name the new user's id"
    user_id = user.group(1)

    # docs/delivery.md, "Command line": a webhook contact point and the channels per severity.
    shown = _run(
        [chumphae, "channels", "set", user_id, "--webhook", receiver.url, "--severity", "critical=webhook"], env
    ).stdout
    assert re.search(r"^critical: webhook \(\+ feed: always\)", shown, re.M), shown
    assert receiver.url not in shown  # addresses masked
    shown_by_name = _run([chumphae, "channels", "show", HOOK_USER_NAME], env).stdout
    assert shown_by_name == shown

    backend = subprocess.Popen(
        [chumphae, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    gateway: subprocess.Popen[str] | None = None
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _healthy(base), 60, "GET /healthz")

        # README: `chumphae-gateway --simulate everything` (one of each: SOS first) with the town gateway's token.
        gw_env = _env(
            data,
            port,
            GATEWAY_TOKEN=town_token.group(1),
            GATEWAY_BACKEND_URL=base,
            GATEWAY_QUEUE_PATH=str(tmp_path / "outbox.sqlite3"),
            GATEWAY_CONFIG_CACHE=str(tmp_path / "gateway-config.json"),
        )
        gateway = subprocess.Popen(
            [str(BIN / "chumphae-gateway"), "--simulate", "everything", "--speed", "0"],
            env=gw_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def sos_delivered() -> list[Hit] | None:
            with receiver.lock:
                keys = [
                    h.headers.get("idempotency-key", "")
                    for h in receiver.hits
                    if h.body.get("event") == "opened" and (h.body.get("alert") or {}).get("type") == "sos"
                ]
            for key in keys:
                hits = receiver.of_key(key)
                if hits and hits[-1].answered == 200:
                    return hits
            return None

        hits = _wait(sos_delivered, 40, "the SOS webhook, accepted on its third try")

        # Three tries of one notice, the same key; 500, 429, 200.
        assert [h.answered for h in hits] == [500, 429, 200]
        key = hits[0].headers["idempotency-key"]
        assert key and all(h.headers.get("idempotency-key") == key for h in hits)
        for h in hits:
            _signature_ok(h)
            assert h.headers.get("content-type", "").startswith("application/json")
        # backoff: "half fixed and half random": the first retry not before BACKOFF_S / 2;
        # "never before the provider's Retry-After".
        assert hits[1].at - hits[0].at >= BACKOFF_S / 2 - 0.05
        assert hits[2].at - hits[1].at >= RETRY_AFTER_S - 0.05
        body = hits[2].body
        assert set(body) == {"notice", "event", "level", "link", "alert", "text"}
        assert str(body["notice"]) == key
        assert body["event"] == "opened" and body["level"] == 0
        alert = body["alert"]
        alert_id = alert["id"]
        assert body["link"] == f"{PUBLIC_URL}/#alert={alert_id}"
        assert "patient" not in alert  # "without its patient object"
        assert alert["type"] == "sos" and alert["severity"] == "critical"
        assert alert["type_th"] and alert["type_en"] and alert["severity_th"] and alert["severity_en"]
        assert isinstance(alert["patient_id"], int)
        for name in ("opened_at", "last_triggered_at"):
            assert alert[name].endswith("+00:00")
            local = datetime.fromisoformat(alert[f"{name}_local"])
            assert alert[f"{name}_local"].endswith("+07:00")
            assert local == datetime.fromisoformat(alert[name]).replace(microsecond=0)
        text = body["text"]
        assert "กดขอความช่วยเหลือ" in text and f"{PUBLIC_URL}/#alert={alert_id}" in text
        opened_local = datetime.fromisoformat(alert["opened_at_local"])
        assert "เวลา" in text and "น." in text
        assert not re.search(r"(?<![\d.])\d{13}(?!\d)", hits[2].raw.decode("utf-8")), "a 13-digit number (a CID?) in the webhook"
        assert b"cid" not in hits[2].raw.lower()

        # docs/mobile-api.md, "Alert deliveries": the webhook notice, 3 attempts, sent.
        auth = {"Authorization": f"Bearer {hospital_token.group(1)}"}

        def webhook_sent() -> dict[str, Any] | None:
            got = httpx.get(f"{base}/api/v1/alerts/{alert_id}/deliveries", headers=auth, timeout=10)
            assert got.status_code == 200, got.text
            doc = got.json()
            rows = [d for d in doc["deliveries"] if d["channel"] == "webhook" and d["status"] == "sent"]
            return doc if rows else None

        deliveries = _wait(webhook_sent, 10, "the deliveries route showing the webhook sent")
        assert deliveries["alert_id"] == alert_id
        row = next(d for d in deliveries["deliveries"] if d["channel"] == "webhook")
        assert row["user_id"] == int(user_id) and row["user_name"] == HOOK_USER_NAME
        assert row["level"] == 0 and row["event"] == "opened" and row["delivered"] is True
        assert row["attempts"] == 3 and row["next_try_at"] is None
        assert row["created_at_local"].endswith("+07:00") and row["done_at_local"].endswith("+07:00")
        assert receiver.url not in json.dumps(deliveries)  # "webhook URLs are never shown"
        by_channel = deliveries["summary"]["by_channel"]
        assert by_channel["webhook"]["delivered"] >= 1 and by_channel["feed"]["delivered"] >= 1

        # docs/delivery.md: `channels test USER` with the backend's settings.
        before = len(receiver.hits)
        tested = _run([chumphae, "channels", "test", user_id, "--wait", "30"], env)
        assert re.search(r"^webhook: sent after 1 attempt\(s\) id=hosp-\S{8}$", tested.stdout, re.M), tested.stdout
        test_hits = [h for h in receiver.hits[before:] if h.body.get("event") == "test"]
        assert len(test_hits) == 1
        t = test_hits[0]
        _signature_ok(t)
        assert set(t.body) == {"notice", "event", "channel", "text"} and t.body["channel"] == "webhook"
        assert str(t.body["notice"]) == t.headers["idempotency-key"] and t.body["text"]

        # "When CHUMPHAE_DELIVERY_GIVE_UP_S after the notice was written has passed (or a Retry-After reaches past
        # it) → gave_up": a rate limiter asking for a very long wait (valid delta-seconds, larger than a date holds).
        receiver.test_retry_after = "99999999999999"
        begun = time.monotonic()
        tested = _run([chumphae, "channels", "test", user_id, "--wait", "8"], env, check=False)
        receiver.test_retry_after = None
        assert tested.returncode == 1, tested.stdout
        assert re.search(r"^webhook: gave_up after 1 attempt\(s\) \(429 Too Many Requests\)$", tested.stdout, re.M), (
            tested.stdout
        )
        assert time.monotonic() - begun < 8

        # docs/delivery.md, "Receiving our webhook": redirects are not followed; a 3xx is `failed` at once.
        receiver.test_redirect = True
        before = len(receiver.hits)
        tested = _run([chumphae, "channels", "test", user_id, "--wait", "8"], env, check=False)
        receiver.test_redirect = False
        assert tested.returncode == 1, tested.stdout
        assert re.search(r"^webhook: failed after 1 attempt\(s\) \(308 Permanent Redirect\)$", tested.stdout, re.M), (
            tested.stdout
        )
        assert len(receiver.hits) == before + 1  # one try, to our URL only

        # docs/daily-summary.md: the Bangkok day of the SOS, three formats.
        day = opened_local.astimezone(BANGKOK).date().isoformat()
        columns = _doc_columns()
        out = {fmt: tmp_path / f"daily.{fmt}" for fmt in ("csv", "xlsx", "json")}
        for fmt, path in out.items():
            _run([chumphae, "export", "daily", "--date", day, "--format", fmt, "--out", str(path)], env)

        raw_csv = out["csv"].read_bytes()
        assert raw_csv.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw_csv  # UTF-8 with BOM, CRLF
        reader = csv.DictReader(io.StringIO(raw_csv.decode("utf-8-sig")))
        assert reader.fieldnames == [c for c in columns if c != "cid"]
        csv_rows = {r["patient_id"]: r for r in reader}
        sos_row = csv_rows[str(alert["patient_id"])]
        assert sos_row["date"] == day
        assert int(sos_row["alerts_sos"]) >= 1 and int(sos_row["alerts_total"]) >= int(sos_row["alerts_sos"])
        notice_day = datetime.fromisoformat(row["created_at_local"]).date().isoformat()
        if notice_day == day:  # notices count by their own creation day, the SOS by its opening (midnight apart)
            assert int(sos_row["notices"]) >= 1 and int(sos_row["notices_delivered"]) >= 1
            assert int(sos_row["notices_delivered"]) + int(sos_row["notices_failed"]) <= int(sos_row["notices"])

        doc = json.loads(out["json"].read_text(encoding="utf-8"))
        assert set(doc) == {"date", "hospcode", "generated_at", "columns", "totals", "rows"}
        assert doc["date"] == day and doc["columns"] == reader.fieldnames
        assert doc["generated_at"].endswith("+07:00")
        json_row = next(r for r in doc["rows"] if r["patient_id"] == alert["patient_id"])
        assert json_row["alerts_sos"] == int(sos_row["alerts_sos"])
        assert doc["totals"]["alerts_sos"] >= 1 and doc["totals"]["patients"] == len(doc["rows"])

        from openpyxl import load_workbook

        book = load_workbook(out["xlsx"], read_only=True)
        assert {"summary", "daily"} <= set(book.sheetnames)
        sheet_rows = list(book["daily"].iter_rows(values_only=True))
        assert list(sheet_rows[0]) == reader.fieldnames
        header = list(sheet_rows[0])
        xrow = next(r for r in sheet_rows[1:] if str(r[header.index("patient_id")]) == str(alert["patient_id"]))
        assert int(xrow[header.index("alerts_sos")]) == int(sos_row["alerts_sos"])
        assert isinstance(xrow[header.index("pid")], str)  # text cells (leading zeros kept)
        book.close()
    finally:
        for proc in (gateway, backend):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
