"""End to end, as the district office's integrator would write it: the person who connects Smart Chumphae to the
district's LINE Official Account and its SMS provider, from README.md, docs/delivery.md, docs/mobile-api.md and
docs/feed-protocol.md alone (and the commands' --help).

Real processes (`chumphae seed-demo`, `chumphae serve` on SQLite in a temp dir, `chumphae-gateway --simulate
everything`), a fake LINE Messaging API and a fake SMS gateway of our own on 127.0.0.1 (stdlib http.server), pointed
at by `CHUMPHAE_LINE_API_URL` and `CHUMPHAE_SMS_URL`. Loopback only. Every expectation quotes the docs in a comment;
the guesses where the docs were silent are in docs/delivery.md's last section, "For the LINE and SMS integrator
(outside30)", now that the system was seen to do them.

Two users care for every demo patient:
- ``A`` (Thai), linked to LINE by a link code sent in a signed webhook event, with an SMS number and
  ``--severity low=line`` (battery alerts on LINE, which the default sends to the feed only). The fake LINE answers
  the first try of each of A's pushes 500 (a retry with the same key must follow), the fake SMS gateway answers the
  first try of each message 429 + Retry-After.
- ``B`` (English), ``--line`` set by hand, quiet hours covering now. The fake LINE "accepts" the first try of each of
  B's pushes but answers 500 (the answer lost on the way back), then 409 to the retry of that key, as LINE does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.docs20_frames import FLAG_SOS, FLAG_WORN, Body, Heard, payload, write_recording

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
BANGKOK = ZoneInfo("Asia/Bangkok")
PUBLIC_URL = "https://chumphae.example"
LINE_TOKEN = "line-channel-access-token-ของอำเภอ"[:26] + "xyz"
LINE_SECRET = "district-line-channel-secret"
SMS_USER, SMS_PASSWORD = "chumphae-district", "sms-pass-ลับ"[:8] + "w0rd"
SMS_SENDER = "ChumphaeHos"
SMS_PHONE = "+66812345678"
A_NAME, B_NAME = "ป้าแดง ทดสอบไลน์", "Daeng English Tester"
A_LINE = "U" + "a1" * 16
B_LINE = "U" + "b2" * 16
STRANGER_LINE = "U" + "c3" * 16
E_LINE = "U" + "e4" * 16
V_LINE = "U" + "d5" * 16
NEW_LINE = "U" + "f6" * 16
M_TH_LINE = "U" + "07" * 16
M_EN_LINE = "U" + "08" * 16
BAND_ADDRESS = "C0:CA:FE:00:30:01"
BAND_KEY = "30313233343536373839616263646566"
RETRY_AFTER_S = 1
V_RETRY_AFTER_S = 10
THAI = re.compile(r"[\u0e00-\u0e7f]")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hit:
    at: float
    path: str
    headers: dict[str, str]
    raw: bytes
    answered: int


@dataclass
class Fakes:
    """The LINE Messaging API and the SMS gateway: record every request; answer as `flaky` says."""

    line_url: str
    sms_url: str
    flaky: bool = False  # off for `channels test`, on once the gateway runs
    hits: list[Hit] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)  # key -> messages the "phone" got
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line_answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if path == "/v2/bot/message/reply":
            return 200, {}, b"{}"
        key = headers.get("x-line-retry-key", "")
        to = json.loads(raw).get("to")
        if to == E_LINE:  # E blocked the OA: LINE answers 400 to every push
            return 400, {}, b'{"message":"The user hasn\'t added the LINE Official Account as a friend."}'
        with self.lock:
            n = self.tries[key] = self.tries.get(key, 0) + 1
            if self.flaky and to == A_LINE and n == 1:
                return 500, {}, b'{"message":"internal"}'
            if self.flaky and to == V_LINE and n == 1:
                return 429, {"Retry-After": str(V_RETRY_AFTER_S)}, b'{"message":"rate limited"}'
            if self.delivered.get(key):
                # LINE: a retry key already accepted answers 409 (and does not send again)
                return 409, {"x-line-accepted-request-id": "acc-" + key[:8]}, b'{"message":"already accepted"}'
            self.delivered[key] = 1
            if self.flaky and to == B_LINE and n == 1:
                return 500, {}, b'{"message":"lost answer"}'  # it went out; the answer did not come back
        body = json.dumps({"sentMessages": [{"id": f"line-{key[:8]}", "quoteToken": "q"}]}).encode()
        return 200, {"x-line-request-id": f"req-{key[:8]}"}, body

    def sms_answer(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        key = headers.get("idempotency-key") or headers.get("x-request-key", "")
        with self.lock:
            n = self.tries[key] = self.tries.get(key, 0) + 1
            if self.flaky and n == 1:
                return 429, {"Retry-After": str(RETRY_AFTER_S)}, b'{"error":"slow down"}'
            self.delivered[key] = self.delivered.get(key, 0) + 1
        # docs: "the message id is the first value under CHUMPHAE_SMS_ID_FIELD anywhere in the JSON answer"
        answer = {"status": "ok", "data": {"messages": [{"message_id": f"sms-{key[:8]}", "ref": f"ref-{key[:8]}"}]}}
        return 200, {}, json.dumps(answer).encode()

    def of(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    lport, sport = _free_port(), _free_port()
    fk = Fakes(line_url=f"http://127.0.0.1:{lport}", sms_url=f"http://127.0.0.1:{sport}/api/send")

    def handler(kind: str) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if kind == "line":
                    status, extra, body = fk.line_answer(self.path, headers, raw)
                else:
                    status, extra, body = fk.sms_answer(headers)
                with fk.lock:
                    fk.hits.append(Hit(time.monotonic(), self.path, headers, raw, status))
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler

    servers = [
        ThreadingHTTPServer(("127.0.0.1", lport), handler("line")),
        ThreadingHTTPServer(("127.0.0.1", sport), handler("sms")),
    ]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield fk
    for s in servers:
        s.shutdown()
        s.server_close()


def _env(data: Path, port: int, fk: Fakes, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUMPHAE_", "GATEWAY_"))}
    env.update(
        CHUMPHAE_DATA_DIR=str(data),
        CHUMPHAE_PORT=str(port),
        CHUMPHAE_PUBLIC_URL=PUBLIC_URL,
        CHUMPHAE_LINE_CHANNEL_ACCESS_TOKEN=LINE_TOKEN,
        CHUMPHAE_LINE_CHANNEL_SECRET=LINE_SECRET,
        CHUMPHAE_LINE_API_URL=fk.line_url,
        CHUMPHAE_SMS_URL=fk.sms_url,
        CHUMPHAE_SMS_USERNAME=SMS_USER,
        CHUMPHAE_SMS_PASSWORD=SMS_PASSWORD,
        CHUMPHAE_SMS_SENDER=SMS_SENDER,
        CHUMPHAE_DELIVERY_BACKOFF_S="1",
        CHUMPHAE_DELIVERY_BACKOFF_MAX_S="4",
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, (args[1:3], done.stdout[-1000:], done.stderr[-2000:])
    return done


def _wait(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _signed(base: str, events: list[dict[str, Any]], secret: str = LINE_SECRET) -> httpx.Response:
    """docs: `X-Line-Signature` must equal base64(HMAC-SHA256(raw body, CHUMPHAE_LINE_CHANNEL_SECRET))."""
    raw = json.dumps({"destination": "Uffff", "events": events}, ensure_ascii=False).encode("utf-8")
    sig = base64.b64encode(hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).digest()).decode()
    return httpx.post(
        f"{base}/api/v1/line/webhook",
        content=raw,
        headers={"X-Line-Signature": sig, "Content-Type": "application/json"},
        timeout=10,
    )


def _event(kind: str, line_id: str, reply: str | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": kind,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": line_id},
        "webhookEventId": uuid.uuid4().hex,
        "deliveryContext": {"isRedelivery": False},
    }
    if reply:
        ev["replyToken"] = reply
    ev.update(extra)
    return ev


def _texts(hit: Hit) -> list[str]:
    return [m.get("text", "") for m in json.loads(hit.raw)["messages"] if m.get("type") == "text"]


def _all_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _all_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _all_strings(v)]
    return []


def _replies_to(fk: Fakes, token: str) -> list[Hit]:
    return [h for h in fk.of("/v2/bot/message/reply") if json.loads(h.raw).get("replyToken") == token]


def _thai_then_english(text: str) -> bool:
    thai = THAI.search(text)
    latin = re.search(r"[A-Za-z]{3,}", text)
    return bool(thai and latin and thai.start() < latin.start())


def test_line_and_sms_from_the_integrators_docs(tmp_path: Path, fakes: Fakes) -> None:
    data = tmp_path / "data"
    port = _free_port()
    env = _env(data, port, fakes)
    chumphae = str(BIN / "chumphae")
    base = f"http://127.0.0.1:{port}"

    seeded = _run([chumphae, "seed-demo"], env).stdout
    town_token = re.search(r"gateway gw-chumphae-town\s+(\S+)", seeded)
    patients = re.search(r"seeded: (\d+) patients", seeded)
    assert town_token and patients, "seed-demo printed no town gateway token or patient count"

    admin_token = re.search(r"^\s*admin\s+(\S+)", seeded, re.M)
    assert admin_token, "seed-demo printed no admin token"
    n_patients = int(patients.group(1))

    def create(name: str, lang: str, role: str = "caregiver", assigned: bool = True) -> tuple[str, str]:
        args = [chumphae, "users", "create", "--role", role, "--name", name, "--lang", lang]
        for pid in range(1, n_patients + 1 if assigned else 1):
            args += ["--patient", str(pid)]
        out = _run(args, env).stdout
        uid = re.search(r"^user (\d+) ", out, re.I | re.M)
        tok = re.search(r"token: (\S+)", out)
        assert uid and tok, "users create printed no id or token"
        return uid.group(1), tok.group(1)

    a_id, a_token = create(A_NAME, "th")
    b_id, b_token = create(B_NAME, "en")
    e_id, _ = create("ลุงเอ บล็อกไลน์", "th")  # E blocked the district's LINE account: every push answers 400
    c_id, _ = create("คุณซี ไม่มีผู้ป่วย", "th", assigned=False)  # C cares for nobody
    v_id, _ = create("อสม. วี ทดสอบ", "th", role="volunteer", assigned=False)
    _run([chumphae, "channels", "set", e_id, "--line", E_LINE], env)
    _run([chumphae, "channels", "set", v_id, "--line", V_LINE], env)
    m_th_id, m_th_token = create("ผู้จัดการดูแล ทดสอบ", "th", role="care_manager", assigned=False)
    m_en_id, _ = create("Care Manager Tester", "en", role="care_manager", assigned=False)
    _run([chumphae, "channels", "set", m_th_id, "--line", M_TH_LINE], env)
    _run([chumphae, "channels", "set", m_en_id, "--line", M_EN_LINE], env)

    # docs: `--sms PHONE` (9–15 digits, `+` allowed); `--severity SEV=CH,CH`; prints "one line per severity
    # (`high: line,sms (+ feed: always)` ...; `; not sent, no contact point: line` names the channels chosen that
    # the user has no active contact point on".
    shown = _run([chumphae, "channels", "set", a_id, "--sms", SMS_PHONE, "--severity", "low=line"], env).stdout
    assert re.search(r"^low: line \(\+ feed: always\); not sent, no contact point: line$", shown, re.M), shown
    assert SMS_PHONE not in shown and "812345678" not in shown  # "addresses masked"
    # docs: "a value outside these is refused with one line, nothing changed"
    bad = _run([chumphae, "channels", "set", a_id, "--severity", "low=fax"], env, check=False)
    assert bad.returncode != 0 and len((bad.stdout + bad.stderr).strip().splitlines()) == 1
    assert _run([chumphae, "channels", "show", a_id], env).stdout == shown
    for bad_args in (
        ["--line", "U123"],  # "`U` and 32 hex digits"
        ["--line", "u" + "a1" * 16],
        ["--sms", "08123456"],  # "9–15 digits, `+` allowed"
        ["--sms", "+6681234567890123"],
        ["--webhook", "ftp://example.org/x"],  # "an `http(s)` URL"
        ["--quiet", "25:00-06:00"],
        ["--severity", "urgent=line"],
    ):
        bad = _run([chumphae, "channels", "set", a_id, *bad_args], env, check=False)
        said = (bad.stdout + bad.stderr).strip().splitlines()
        assert bad.returncode != 0 and len(said) == 1, (bad_args, said)
    assert _run([chumphae, "channels", "show", a_id], env).stdout == shown  # "nothing changed"
    # "`default` forgets one"; "`(default)` where the user chose nothing"
    assert re.search(r"^critical: .*\(default\)", shown, re.M), shown
    forgot = _run([chumphae, "channels", "set", a_id, "--severity", "medium=sms", "--severity", "medium=default"], env)
    assert forgot.stdout == shown, forgot.stdout

    # Quiet hours "(per person, Asia/Bangkok, e.g. 22:00–06:00)" covering now, for B.
    now_bkk = datetime.now(BANGKOK)
    quiet = f"{(now_bkk - timedelta(hours=2)):%H:%M}-{(now_bkk + timedelta(hours=2)):%H:%M}"
    shown_b = _run([chumphae, "channels", "set", b_id, "--line", B_LINE, "--quiet", quiet], env).stdout
    assert B_LINE not in shown_b
    assert re.search(r"^high: line \(\+ feed: always\) \(default\)", shown_b, re.M) or re.search(
        r"^high: line.*\(default\)", shown_b, re.M
    ), shown_b

    # docs: "`chumphae channels link-code USER` prints one (`ABCD-EFGH`, 24 h, one use ...)"
    link_out = _run([chumphae, "channels", "link-code", a_id], env).stdout
    code_m = re.search(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b", link_out)
    assert code_m, "link-code printed no ABCD-EFGH code"
    code = code_m.group(1)

    log_path = tmp_path / "backend.log"
    log_file = log_path.open("wb")
    backend = subprocess.Popen(
        [chumphae, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    gateway: subprocess.Popen[bytes] | None = None
    try:
        _wait(lambda: _healthy(base), 60, "GET /healthz")
        # V is the patients' volunteer (docs/mobile-api.md: `{"patient_id": 31, "relation": "volunteer"}`)
        for pid in range(1, n_patients + 1):
            made = httpx.post(
                f"{base}/api/v1/users/{v_id}/patients",
                json={"patient_id": pid, "relation": "volunteer"},
                headers={"Authorization": f"Bearer {admin_token.group(1)}"},
                timeout=10,
            )
            assert made.status_code == 204, made.text
        # A patient of our own with a band whose key we know (docs/mobile-api.md: `POST /api/v1/patients`,
        # `PUT …/bands` `{address, key_hex, site, model}`, `POST /api/v1/users/{id}/patients`), for a re-trigger.
        admin = {"Authorization": f"Bearer {admin_token.group(1)}"}
        made = httpx.post(
            f"{base}/api/v1/patients", json={"name_th": "นางกดซ้ำ ทดสอบ", "name_en": "Repress Test"}, headers=admin
        )
        assert made.status_code == 201, made.text
        own_pid = made.json()["id"]
        made = httpx.put(
            f"{base}/api/v1/patients/{own_pid}/bands",
            json={"address": BAND_ADDRESS, "key_hex": BAND_KEY, "site": "gw-chumphae-town"},
            headers=admin,
        )
        assert made.status_code == 200, made.text
        made = httpx.post(f"{base}/api/v1/users/{a_id}/patients", json={"patient_id": own_pid}, headers=admin)
        assert made.status_code == 204, made.text
        gw_out = _run(
            [chumphae, "gateways", "create", "--slug", "gw-o30", "--name", "outside30 replay", "--site"]
            + ["gw-chumphae-town", "--receiver", "rx-o30,16.5461,102.1030"],
            env,
        ).stdout
        o30_token = re.search(r"token: (\S+)", gw_out)
        assert o30_token, "gateways create printed no token"

        # --- The LINE webhook: signature first --------------------------------------------------------------
        # docs: "compared in constant time, before the body is parsed: otherwise **401**"
        wrong = _signed(base, [_event("message", A_LINE, "rt-bad", message={"type": "text", "text": code})], "nope")
        assert wrong.status_code == 401, wrong.text
        unsigned = httpx.post(f"{base}/api/v1/line/webhook", content=b"not json at all", timeout=10)
        assert unsigned.status_code == 401, unsigned.text  # no signature, a body that is not JSON: 401, not 400
        # docs: "A body that is not a JSON object: 400."
        raw = b"[1, 2, 3]"
        sig = base64.b64encode(hmac.new(LINE_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
        not_obj = httpx.post(f"{base}/api/v1/line/webhook", content=raw, headers={"X-Line-Signature": sig}, timeout=10)
        assert not_obj.status_code == 400, not_obj.text
        assert not _replies_to(fakes, "rt-bad")

        # docs: a "text that is not a valid code, from someone not linked" -> "that code is wrong, used or expired"
        wrong_code = _signed(
            base, [_event("message", A_LINE, "rt-wrong", message={"type": "text", "text": "ZZZZ-ZZZZ"})]
        )
        assert wrong_code.status_code == 200
        assert wrong_code.json() == {"linked": 0, "acknowledged": 0, "ignored": 1}

        # docs: "case, dashes and spaces do not matter": the code typed in lower case, a space for the dash.
        typed = code.lower().replace("-", " ")
        linked = _signed(
            base, [_event("message", A_LINE, "rt-link", message={"id": "1", "type": "text", "text": typed})]
        )
        assert linked.status_code == 200, linked.text
        assert linked.json() == {"linked": 1, "acknowledged": 0, "ignored": 0}
        # "one use": the same code from another LINE id links nobody
        again = _signed(base, [_event("message", STRANGER_LINE, "rt-again", message={"type": "text", "text": code})])
        assert again.json() == {"linked": 0, "acknowledged": 0, "ignored": 1}

        # docs: every text `message` event carrying a `replyToken` "is answered once in LINE (`POST
        # /v2/bot/message/reply`, after the 200 ...), Thai first, then English"; "a code is never echoed back".
        for token in ("rt-wrong", "rt-link", "rt-again"):
            replies = _wait(lambda t=token: _replies_to(fakes, t), 15, f"the LINE reply to {token}")
            time.sleep(0.3)
            replies = _replies_to(fakes, token)
            assert len(replies) == 1, token
            r = replies[0]
            assert r.headers.get("authorization") == f"Bearer {LINE_TOKEN}"
            text = "\n".join(_texts(r))
            assert _thai_then_english(text), text
            # doc (outside30): "one text message, the Thai line, a newline, the English line"
            assert len(json.loads(r.raw)["messages"]) == 1 and len(text.splitlines()) == 2, text
            assert THAI.search(text.splitlines()[0]) and not THAI.search(text.splitlines()[1]), text
            assert code not in text.upper() and code.replace("-", "") not in text.upper().replace("-", "")
        assert "\n".join(_texts(_replies_to(fakes, "rt-wrong")[0])) != "\n".join(
            _texts(_replies_to(fakes, "rt-link")[0])
        )
        # docs: the LINE user id "becomes the code's user's `line` contact point": A's low=line is no longer skipped
        shown = _run([chumphae, "channels", "show", a_id], env).stdout
        assert re.search(r"^low: line \(\+ feed: always\)$", shown, re.M), shown
        assert A_LINE not in shown

        # --- `channels test` --------------------------------------------------------------------------------
        # docs: "prints `CHANNEL: STATUS after N attempt(s) [id=…|(error)]`, exit 1 if any was not sent"
        tested = _run([chumphae, "channels", "test", a_id, "--wait", "30"], env)
        line_line = re.search(r"^line: sent after 1 attempt\(s\) id=(\S+)$", tested.stdout, re.M)
        assert line_line, tested.stdout
        # the SMS id: "the first value under CHUMPHAE_SMS_ID_FIELD anywhere in the JSON answer"
        sms_line = re.search(r"^sms: sent after 1 attempt\(s\) id=(\S+)$", tested.stdout, re.M)
        assert sms_line, tested.stdout
        test_sms = fakes.of("/api/send")
        assert len(test_sms) == 1
        sms_key = test_sms[0].headers.get("idempotency-key", "")
        assert sms_line.group(1) == f"sms-{sms_key[:8]}"
        test_push = [h for h in fakes.of("/v2/bot/message/push") if json.loads(h.raw)["to"] == A_LINE]
        assert len(test_push) == 1
        # "In one language, the user's ...: Thai, or English only when it is `en` (the LINE buttons and a
        # `channels test` message too)"
        assert all(THAI.search(t) for t in _texts(test_push[0])), _texts(test_push[0])
        # doc (outside30): "a `chumphae channels test` message: `"messages": [text]` alone, no buttons"; "a LINE
        # push's id is the answer's first `sentMessages[].id`"
        assert [m["type"] for m in json.loads(test_push[0].raw)["messages"]] == ["text"]
        assert line_line.group(1) == f"line-{test_push[0].headers['x-line-retry-key'][:8]}"
        tested_b = _run([chumphae, "channels", "test", b_id, "--wait", "30"], env)
        assert re.search(r"^line: sent after 1 attempt\(s\)", tested_b.stdout, re.M), tested_b.stdout
        b_test = [h for h in fakes.of("/v2/bot/message/push") if json.loads(h.raw)["to"] == B_LINE]
        assert len(b_test) == 1 and not any(THAI.search(t) for t in _texts(b_test[0])), _texts(b_test[0])

        # --- Alerts from a simulated gateway -------------------------------------------------------------------
        fakes.flaky = True
        pushes_before = len(fakes.of("/v2/bot/message/push"))
        sms_before = len(fakes.of("/api/send"))
        gw_env = _env(
            data,
            port,
            fakes,
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
        headers_a = {"Authorization": f"Bearer {a_token}"}

        def alerts_of(kind: str) -> list[dict[str, Any]]:
            got = httpx.get(f"{base}/api/v1/alerts", params={"type": kind}, headers=headers_a, timeout=10)
            assert got.status_code == 200, got.text
            body = got.json()
            items = body["items"] if isinstance(body, dict) else body
            return list(items)

        sos = _wait(lambda: alerts_of("sos"), 60, "an SOS alert")[0]
        sos_id = sos["id"]
        link = f"{PUBLIC_URL}/#alert={sos_id}"

        def pushes_for(alert_id: int, to: str) -> list[Hit]:
            return [
                h
                for h in fakes.of("/v2/bot/message/push")[pushes_before:]
                if json.loads(h.raw)["to"] == to
                and any(f"#alert={alert_id}" in s for s in _all_strings(json.loads(h.raw)))
            ]

        def accepted(hits: list[Hit]) -> list[Hit]:
            return [h for h in hits if h.answered in (200, 409)]

        # README: alerts "reach caregivers within seconds"; here a bound for the wait, not a measure.
        _wait(lambda: accepted(pushes_for(sos_id, A_LINE)), 30, "A's SOS push accepted on LINE")
        _wait(lambda: accepted(pushes_for(sos_id, B_LINE)), 30, "B's SOS push (critical: quiet hours ignored)")
        sms_sos = _wait(
            lambda: [
                h
                for h in fakes.of("/api/send")[sms_before:]
                if link in parse_qs(h.raw.decode())["message"][0] and h.answered == 200
            ],
            30,
            "A's SOS SMS accepted",
        )

        # LINE push: "POST {CHUMPHAE_LINE_API_URL}/v2/bot/message/push, Authorization: Bearer <channel access token>,
        # X-Line-Retry-Key: <the notice's UUID>, body {"to": <LINE user id>, "messages": [text, confirm template],
        # "notificationDisabled": false}"
        tries_a = pushes_for(sos_id, A_LINE)
        keys_a = {h.headers.get("x-line-retry-key") for h in tries_a}
        assert len(keys_a) == 1, keys_a  # one notice to A for the opening (no re-trigger pushes within 60 s)
        key_a = keys_a.pop()
        assert key_a and UUID_RE.match(key_a)
        assert [h.answered for h in tries_a] == [500, 200]  # "5xx ... → retried with the same key"
        assert tries_a[0].raw == tries_a[1].raw  # "every retry sends the same"
        for h in tries_a:
            assert h.headers.get("authorization") == f"Bearer {LINE_TOKEN}"
        push = json.loads(tries_a[1].raw)
        assert set(push) == {"to", "messages", "notificationDisabled"} and push["notificationDisabled"] is False
        assert push["to"] == A_LINE and len(push["messages"]) == 2
        text_msg, confirm = push["messages"]
        assert text_msg["type"] == "text"
        assert confirm["type"] == "template" and confirm["template"]["type"] == "confirm"
        actions = confirm["template"]["actions"]
        # "The confirm template has a postback button "รับเรื่อง" (`ack=<alert id>`) and a link button "เปิดดู"."
        ack_btn = next(a for a in actions if a["type"] == "postback")
        assert ack_btn["label"] == "รับเรื่อง" and ack_btn["data"] == f"ack={sos_id}"
        open_btn = next(a for a in actions if a["type"] == "uri")
        assert open_btn["label"] == "เปิดดู" and open_btn["uri"] == link

        # "What a message says": "🚨 ด่วน: กดขอความช่วยเหลือ (ระดับวิกฤต) / ผู้ป่วย: … / พบล่าสุด: … เวลา 21:40 น.
        # / เปิดดู: https://chumphae.example/#alert=41"
        full = httpx.get(f"{base}/api/v1/alerts/{sos_id}", headers=headers_a, timeout=10).json()
        text = text_msg["text"]
        lines = text.splitlines()
        assert lines[0] == "🚨 ด่วน: กดขอความช่วยเหลือ (ระดับวิกฤต)", lines
        assert lines[1] == f"ผู้ป่วย: {full['patient']['name_th']}", lines
        assert lines[-1] == f"เปิดดู: {link}", lines
        # "with the Bangkok time": the latest trigger at the first try (docs: `last_triggered_at`), HH:MM
        hhmm = datetime.fromisoformat(full["last_triggered_at_local"]).strftime("%H:%M")
        assert lines[2].startswith("พบล่าสุด: ") and lines[2].endswith(f"เวลา {hhmm} น."), lines
        assert not re.search(r"(?<!\d)\d{13}(?!\d)", tries_a[1].raw.decode()), "a 13-digit number (a CID?)"

        # B: English "only when it is `en` (the LINE buttons ... too)"; the 409 of a repeated retry key is delivered
        tries_b = pushes_for(sos_id, B_LINE)
        assert len({h.headers.get("x-line-retry-key") for h in tries_b}) == 1
        assert [h.answered for h in tries_b] == [500, 409]
        b_push = json.loads(tries_b[-1].raw)
        b_text = b_push["messages"][0]["text"]
        assert full["type_en"] in b_text and link in b_text, b_text
        assert f"at {hhmm}" in b_text, b_text
        b_labels = [a["label"] for a in b_push["messages"][1]["template"]["actions"]]
        assert not any(THAI.search(label) for label in b_labels), b_labels
        assert not any(THAI.search(s) for s in _all_strings(b_push) if s not in (full["patient"]["name_th"],)), b_push

        # SMS: "one POST CHUMPHAE_SMS_URL, form ..., basic auth, fields named by settings (default msisdn,
        # message, sender)"; "The notice key goes in the CHUMPHAE_SMS_IDEMPOTENCY_HEADER header (default
        # Idempotency-Key)"; 429 "→ retried with the same key", "never before the provider's Retry-After".
        sms_key = sms_sos[0].headers.get("idempotency-key")
        sms_tries = [h for h in fakes.of("/api/send") if h.headers.get("idempotency-key") == sms_key]
        assert [h.answered for h in sms_tries] == [429, 200]
        assert sms_tries[1].at - sms_tries[0].at >= RETRY_AFTER_S - 0.05
        assert sms_tries[0].raw == sms_tries[1].raw
        form = parse_qs(sms_tries[1].raw.decode())
        assert set(form) == {"msisdn", "message", "sender"}, set(form)
        assert form["msisdn"] == [SMS_PHONE] and form["sender"] == [SMS_SENDER]
        assert form["message"][0].startswith("🚨 ด่วน: กดขอความช่วยเหลือ")
        basic = base64.b64encode(f"{SMS_USER}:{SMS_PASSWORD}".encode()).decode()
        assert sms_tries[1].headers.get("authorization") == f"Basic {basic}"
        assert fakes.delivered[sms_key] == 1

        # docs/mobile-api.md "Alert deliveries": A's line notice sent after 2 attempts, B's too (409 = delivered)
        def sos_rows() -> list[dict[str, Any]] | None:
            got = httpx.get(f"{base}/api/v1/alerts/{sos_id}/deliveries", headers=headers_a, timeout=10)
            assert got.status_code == 200, got.text
            rows = [d for d in got.json()["deliveries"] if str(d["user_id"]) in (a_id, b_id)]
            ready = [d for d in rows if d["channel"] != "feed" and d["event"] == "opened"]
            return rows if len(ready) == 3 and all(d["status"] == "sent" for d in ready) else None

        rows = _wait(sos_rows, 20, "the SOS notices of A and B sent")
        by = {(str(d["user_id"]), d["channel"]): d for d in rows if d["event"] == "opened"}
        assert by[(a_id, "line")]["attempts"] == 2 and by[(a_id, "sms")]["attempts"] == 2
        assert by[(b_id, "line")]["attempts"] == 2 and by[(b_id, "line")]["delivered"] is True
        assert (b_id, "sms") not in by  # B has no phone: "limited to the channels they have a contact point on"
        assert by[(a_id, "feed")]["status"] == "sent"
        # docs/mobile-api.md: "Phone numbers, LINE user ids and webhook URLs are never shown."
        shown_rows = json.dumps(rows)
        assert SMS_PHONE not in shown_rows and A_LINE not in shown_rows and B_LINE not in shown_rows
        # nobody got it twice: each key "delivered" once by the fakes
        assert all(n == 1 for n in fakes.delivered.values()), fakes.delivered

        # --- Severity routing and quiet hours --------------------------------------------------------------------
        # battery (low): default "feed"; A chose low=line. band removed (medium): "LINE, webhook, feed", but B's
        # quiet hours: "non-critical alerts go to the feed only".
        battery = _wait(lambda: alerts_of("battery_low"), 60, "a battery_low alert")[0]
        removed = _wait(lambda: alerts_of("band_removed"), 60, "a band_removed alert")[0]
        _wait(lambda: accepted(pushes_for(battery["id"], A_LINE)), 30, "A's battery push (low=line)")
        _wait(lambda: accepted(pushes_for(removed["id"], A_LINE)), 30, "A's band-removed push (medium default)")

        def channels_for(alert_id: int, uid: str) -> set[str]:
            got = httpx.get(f"{base}/api/v1/alerts/{alert_id}/deliveries", headers=headers_a, timeout=10).json()
            return {d["channel"] for d in got["deliveries"] if str(d["user_id"]) == uid}

        assert channels_for(battery["id"], a_id) == {"line", "feed"}
        assert channels_for(battery["id"], b_id) == {"feed"}
        assert channels_for(removed["id"], a_id) == {"line", "feed"}  # medium: no SMS by default
        assert channels_for(removed["id"], b_id) == {"feed"}  # quiet hours
        assert not pushes_for(battery["id"], B_LINE) and not pushes_for(removed["id"], B_LINE)
        fall = _wait(lambda: alerts_of("fall"), 90, "a fall alert")[0]
        # "Critical alerts are never silenced."
        _wait(lambda: accepted(pushes_for(fall["id"], B_LINE)), 30, "B's fall push in quiet hours")

        # "A notice whose alert was resolved before a try is not sent: `cancelled`." The fall reached V (E's push
        # refused: see below) and the fake LINE asked V's first try to come back after V_RETRY_AFTER_S.
        v_fall = _wait(lambda: pushes_for(fall["id"], V_LINE), 30, "V's first try for the fall")
        assert [h.answered for h in v_fall] == [429]
        done = httpx.post(
            f"{base}/api/v1/alerts/{fall['id']}/resolve", json={"outcome": "false_alarm"}, headers=headers_a, timeout=10
        )
        assert done.status_code == 200, done.text

        def v_fall_row() -> dict[str, Any] | None:
            got = httpx.get(f"{base}/api/v1/alerts/{fall['id']}/deliveries", headers=headers_a, timeout=10).json()
            rows = [d for d in got["deliveries"] if str(d["user_id"]) == v_id and d["channel"] == "line"]
            return rows[0] if rows and rows[0]["status"] == "cancelled" else None

        cancelled = _wait(v_fall_row, V_RETRY_AFTER_S + 20, "V's fall notice cancelled")
        # (the claim "sets `sending`, a lease ... and `attempts + 1`" before the resolved alert is seen: 2 attempts,
        # one request)
        assert cancelled["delivered"] is False and cancelled["attempts"] == 2, cancelled
        assert len(pushes_for(fall["id"], V_LINE)) == 1
        # The gateway goes quiet: "90 s after its last message the backend raises `gateway_offline` for it
        # (severity medium: the care managers are told)" (docs/gateway-protocol.md §6); checked further down.
        _stop(gateway)
        # Meanwhile our replay: SOS pressed at 0 s and again at 70 s (gateway-protocol §7: a second `sos` message
        # comes only after 60 s), played in real time. docs/delivery.md: "Re-triggers of an alert still open (...
        # SOS pressed again) always reach the feed, but push to a person on a channel at most once per 15 minutes
        # (60 s for critical alerts)": 70 s apart, so A is pushed again.
        start = datetime.now(BANGKOK)
        heard: list[Heard] = []
        for i in range(76):
            pressed = i < 3 or 70 <= i < 73
            body = Body(FLAG_WORN | (FLAG_SOS if pressed else 0), 80, 1.1, 0.9, 1.0, 0, 0, i)
            heard.append(
                Heard(
                    start + timedelta(seconds=i),
                    "rx-o30",
                    BAND_ADDRESS,
                    -60,
                    payload(BAND_ADDRESS, BAND_KEY, 5000 + i, body),
                )
            )
        recording = tmp_path / "repress.jsonl"
        write_recording(recording, start, heard, start + timedelta(seconds=76))
        replay = subprocess.Popen(
            [str(BIN / "chumphae-gateway"), "--replay", str(recording), "--now", "--speed", "1"],
            env=_env(
                data,
                port,
                fakes,
                GATEWAY_TOKEN=o30_token.group(1),
                GATEWAY_BACKEND_URL=base,
                GATEWAY_RECEIVER_ID="rx-o30",
                GATEWAY_QUEUE_PATH=str(tmp_path / "o30-outbox.sqlite3"),
                GATEWAY_CONFIG_CACHE=str(tmp_path / "o30-config.json"),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gateway = replay

        # --- A refused push escalates ---------------------------------------------------------------------------
        # "other 4xx (bad token, blocked, bad number) → `failed`, not retried"; "a notice that `failed` or
        # `gave_up` moves its alert to the next rung with someone at once (history event `escalated` with
        # `"reason": "undelivered"` ...)"; "An escalation adds "ยังไม่มีผู้รับเรื่อง ส่งต่อถึง…""
        def row_of(alert_id: int, uid: str, channel: str) -> dict[str, Any] | None:
            got = httpx.get(f"{base}/api/v1/alerts/{alert_id}/deliveries", headers=headers_a, timeout=10).json()
            rows = [d for d in got["deliveries"] if str(d["user_id"]) == uid and d["channel"] == channel]
            return rows[0] if rows else None

        e_row = _wait(
            lambda: (r := row_of(removed["id"], e_id, "line")) and r["status"] == "failed" and r,
            30,
            "E's refused band-removed notice failed",
        )
        assert e_row["attempts"] == 1 and e_row["last_error"] == "400 Bad Request", e_row
        assert len(pushes_for(removed["id"], E_LINE)) == 1  # not retried
        v_push = _wait(
            lambda: accepted(pushes_for(removed["id"], V_LINE)),
            V_RETRY_AFTER_S + 30,
            "the volunteer told on escalation",
        )
        v_text = _texts(v_push[0])[0]
        v_tries = pushes_for(removed["id"], V_LINE)  # "never before the provider's `Retry-After`"
        assert [h.answered for h in v_tries] == [429, 200] and v_tries[1].at - v_tries[0].at >= V_RETRY_AFTER_S - 0.05
        assert "ยังไม่มีผู้รับเรื่อง ส่งต่อถึง" in v_text and f"#alert={removed['id']}" in v_text, v_text
        v_row = row_of(removed["id"], v_id, "line")
        assert v_row and v_row["level"] == 1 and v_row["event"] == "escalated", v_row
        hist = httpx.get(f"{base}/api/v1/alerts/{removed['id']}", headers=headers_a, timeout=10).json()
        climbs = [e for e in hist["events"] if e["kind"] == "escalated"]
        assert climbs and climbs[0]["details"].get("reason") == "undelivered", hist["events"]

        # --- Acknowledging from LINE ------------------------------------------------------------------------------
        # docs: "`postback` `ack=<alert id>` → the linked user acknowledges the alert ... The feed shows it as any
        # acknowledgement"; the reply "you have taken alert #N".
        acked = _signed(base, [_event("postback", A_LINE, "rt-ack", postback={"data": ack_btn["data"]})])
        assert acked.status_code == 200 and acked.json() == {"linked": 0, "acknowledged": 1, "ignored": 0}
        after = httpx.get(f"{base}/api/v1/alerts/{sos_id}", headers=headers_a, timeout=10).json()
        assert after["status"] == "acknowledged" and str(after["acknowledged_by"]) == a_id
        assert after["acknowledged_by_name"] == A_NAME
        assert after["acknowledged_at_local"].endswith("+07:00")
        # GET /api/v1/alerts/{id}: "with its history (`events`: `t`, `kind`, `user_id`, `details`)"
        ack_events = [e for e in after["events"] if "ack" in e["kind"]]
        assert len(ack_events) == 1 and str(ack_events[0]["user_id"]) == a_id, after["events"]
        reply = _wait(lambda: _replies_to(fakes, "rt-ack"), 15, "the reply to the ack postback")
        assert f"#{sos_id}" in "\n".join(_texts(reply[0])), _texts(reply[0])
        # "already acknowledged: nothing changes"
        again_ack = _signed(base, [_event("postback", B_LINE, "rt-ack2", postback={"data": f"ack={sos_id}"})])
        assert again_ack.status_code == 200
        still = httpx.get(f"{base}/api/v1/alerts/{sos_id}", headers=headers_a, timeout=10).json()
        assert str(still["acknowledged_by"]) == a_id and len([e for e in still["events"] if "ack" in e["kind"]]) == 1
        # "a LINE user not linked: counted as `ignored`", answered "not linked yet"
        stranger = _signed(base, [_event("postback", STRANGER_LINE, "rt-str", postback={"data": f"ack={sos_id}"})])
        assert stranger.json() == {"linked": 0, "acknowledged": 0, "ignored": 1}
        _wait(lambda: _replies_to(fakes, "rt-str"), 15, "the 'not linked yet' reply")

        # "Also accepted as a postback `link=<code>`."
        c_out = _run([chumphae, "channels", "link-code", c_id], env).stdout
        c_code = re.search(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b", c_out)
        assert c_code
        got = _signed(base, [_event("postback", STRANGER_LINE, "rt-lc", postback={"data": f"link={c_code.group(1)}"})])
        assert got.json() == {"linked": 1, "acknowledged": 0, "ignored": 0}
        # "(they must be allowed to see it ...)": C cares for nobody; "alert #N could not be taken"
        rid = removed["id"]
        got = _signed(base, [_event("postback", STRANGER_LINE, "rt-cack", postback={"data": f"ack={rid}"})])
        assert got.status_code == 200 and got.json()["acknowledged"] == 0, got.text
        removed_now = httpx.get(f"{base}/api/v1/alerts/{rid}", headers=headers_a, timeout=10).json()
        assert removed_now["acknowledged_by"] is None
        reply = _wait(lambda: _replies_to(fakes, "rt-cack"), 15, "the 'could not be taken' reply")
        assert f"#{rid}" in "\n".join(_texts(reply[0]))
        # "a linked person's other messages get no answer" (and: "Anything else ...: counted as `ignored`")
        got = _signed(base, [_event("message", A_LINE, "rt-chat", message={"type": "text", "text": "สวัสดีค่ะ"})])
        assert got.json() == {"linked": 0, "acknowledged": 0, "ignored": 1}, got.text
        # "resolved: ignored"
        done = httpx.post(
            f"{base}/api/v1/alerts/{battery['id']}/resolve", json={"outcome": "device_fixed"}, headers=headers_a
        )
        assert done.status_code == 200, done.text
        got = _signed(base, [_event("postback", A_LINE, "rt-res", postback={"data": f"ack={battery['id']}"})])
        assert got.json() == {"linked": 0, "acknowledged": 0, "ignored": 1}, got.text

        # "a LINE id linked to someone else before is taken from them": C's code sent from E's LINE
        e_code = re.search(
            r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b", _run([chumphae, "channels", "link-code", c_id], env).stdout
        )
        assert e_code
        got = _signed(base, [_event("message", E_LINE, None, message={"type": "text", "text": e_code.group(1)})])
        assert got.json() == {"linked": 1, "acknowledged": 0, "ignored": 0}
        e_shown = _run([chumphae, "channels", "show", e_id], env).stdout
        assert re.search(r"^high: .*not sent, no contact point: line", e_shown, re.M), e_shown
        assert not _replies_to(fakes, "rt-chat")  # (checked here, well after its 200)
        # quiet hours `off`
        before_off = _run([chumphae, "channels", "show", b_id], env).stdout
        quiet_off = _run([chumphae, "channels", "set", b_id, "--quiet", "off"], env).stdout
        assert quiet_off != before_off and quiet_off == _run([chumphae, "channels", "show", b_id], env).stdout

        # "`follow` → re-activates a linked LINE id; `unfollow` (blocked) → deactivates it"; `channels show`:
        # "`; not sent, no contact point: line` names the channels chosen that the user has no active contact point on"
        shown_b = _run([chumphae, "channels", "show", b_id], env).stdout
        # "`follow` and `unfollow` events are counted in none of the three, linked or not"
        zero = {"linked": 0, "acknowledged": 0, "ignored": 0}
        assert _signed(base, [_event("unfollow", B_LINE)]).json() == zero
        blocked = _run([chumphae, "channels", "show", b_id], env).stdout
        assert re.search(r"^high: .*not sent, no contact point: line", blocked, re.M), blocked
        assert _signed(base, [_event("follow", B_LINE, "rt-fol")]).json() == zero
        assert _run([chumphae, "channels", "show", b_id], env).stdout == shown_b
        # replies: "linked" (... "follow by someone linked"), "a welcome asking for the link code (follow by
        # someone not linked)"
        assert _signed(base, [_event("follow", NEW_LINE, "rt-new")]).json() == zero
        fol = _wait(lambda: _replies_to(fakes, "rt-fol"), 15, "the reply to a linked follow")
        new = _wait(lambda: _replies_to(fakes, "rt-new"), 15, "the welcome to a new follower")
        assert _texts(fol[0]) == _texts(_replies_to(fakes, "rt-link")[0])
        assert _texts(new[0]) != _texts(fol[0]) and _thai_then_english("\n".join(_texts(new[0])))

        # --- A gateway's alert on LINE ----------------------------------------------------------------------
        # docs: "A gateway's alert (`gateway_offline`, `gateway_radio`: no patient, told to the care managers)
        # names the gateway and says its summary (docs/feed-protocol.md §3) instead of a patient and where last
        # seen" — "วิทยุของเกตเวย์ไม่ทำงาน (ระดับปานกลาง) / เกตเวย์: gw-ban-nong-phai / <summary> (เวลา 21:43 น.) /
        # เปิดดู: …" "(in English `Gateway: …` and the English summary)".
        headers_m = {"Authorization": f"Bearer {m_th_token}"}

        def offline() -> list[dict[str, Any]]:
            got = httpx.get(f"{base}/api/v1/alerts", params={"type": "gateway_offline"}, headers=headers_m, timeout=10)
            assert got.status_code == 200, got.text
            return [a for a in got.json()["items"] if a["details"].get("gateway") == "gw-chumphae-town"]

        gw_alert = _wait(offline, 150, "gateway_offline for gw-chumphae-town")[0]
        m_push = _wait(lambda: accepted(pushes_for(gw_alert["id"], M_TH_LINE)), 30, "the care manager's push")
        gw_lines = _texts(m_push[0])[0].splitlines()
        gw_link = f"{PUBLIC_URL}/#alert={gw_alert['id']}"
        assert gw_lines[0] == f"{gw_alert['type_th']} (ระดับ{gw_alert['severity_th']})", gw_lines
        assert gw_lines[1] == "เกตเวย์: gw-chumphae-town", gw_lines
        summary_th = gw_alert["details"]["summary_th"]
        gw_hhmm = datetime.fromisoformat(gw_alert["last_triggered_at_local"]).strftime("%H:%M")
        assert gw_lines[2] == f"{summary_th} (เวลา {gw_hhmm} น.)", gw_lines
        assert gw_lines[3:] == [f"เปิดดู: {gw_link}"], gw_lines
        m_en_push = _wait(lambda: accepted(pushes_for(gw_alert["id"], M_EN_LINE)), 30, "the English push")
        en_text = _texts(m_en_push[0])[0]
        assert "Gateway: gw-chumphae-town" in en_text.splitlines(), en_text
        assert gw_alert["details"]["summary_en"] in en_text and gw_link in en_text, en_text
        assert not THAI.search(en_text), en_text
        # the gateway's alert went to no caregiver: "a gateway's alert tells the care managers"
        assert not pushes_for(gw_alert["id"], A_LINE) and not pushes_for(gw_alert["id"], B_LINE)

        # --- The re-trigger of our own patient's SOS ----------------------------------------------------------
        def own_sos() -> dict[str, Any] | None:
            got = httpx.get(
                f"{base}/api/v1/alerts", params={"type": "sos", "patient_id": own_pid}, headers=headers_a, timeout=10
            ).json()["items"]
            return got[0] if got and got[0]["count"] >= 2 else None

        repressed = _wait(own_sos, 60, "our patient's SOS pressed again (count 2)")
        rsid = repressed["id"]

        def own_rows() -> list[dict[str, Any]] | None:
            got = httpx.get(f"{base}/api/v1/alerts/{rsid}/deliveries", headers=headers_a, timeout=10).json()
            rows = [d for d in got["deliveries"] if str(d["user_id"]) == a_id and d["channel"] != "feed"]
            return rows if len(rows) == 4 and all(d["status"] == "sent" for d in rows) else None

        own = _wait(own_rows, 30, "A's opened and re-triggered LINE and SMS notices, sent")
        assert sorted((d["event"], d["channel"]) for d in own) == [
            ("opened", "line"),
            ("opened", "sms"),
            ("retriggered", "line"),
            ("retriggered", "sms"),
        ]
        assert len({h.headers.get("x-line-retry-key") for h in pushes_for(rsid, A_LINE)}) == 2
        _stop(replay)

        # --- Other settings: no channel secret, a JSON SMS gateway -------------------------------------------
        for proc in (gateway, backend):
            _stop(proc)
        fakes.flaky = False
        env2 = {k: v for k, v in env.items() if k != "CHUMPHAE_LINE_CHANNEL_SECRET"}
        env2.update(
            CHUMPHAE_SMS_FORMAT="json",
            CHUMPHAE_SMS_FIELD_TO="to",
            CHUMPHAE_SMS_FIELD_MESSAGE="text",
            CHUMPHAE_SMS_FIELD_SENDER="from",
            CHUMPHAE_SMS_ID_FIELD="ref",
            CHUMPHAE_SMS_IDEMPOTENCY_HEADER="X-Request-Key",
        )
        backend = subprocess.Popen(
            [chumphae, "serve", "--port", str(port)], env=env2, stdout=subprocess.DEVNULL, stderr=log_file
        )
        _wait(lambda: _healthy(base), 60, "GET /healthz after the restart")
        # "otherwise **401** (also when no secret is set)": signed with an empty key, or with the old secret
        for key in ("", LINE_SECRET):
            got = _signed(base, [_event("message", A_LINE, None, message={"type": "text", "text": "hi"})], key)
            assert got.status_code == 401, (key, got.text)
        before = len(fakes.of("/api/send"))
        tested = _run([chumphae, "channels", "test", a_id, "--wait", "30"], env2)
        sms_line = re.search(r"^sms: sent after 1 attempt\(s\) id=(\S+)$", tested.stdout, re.M)
        assert sms_line, tested.stdout
        hit = fakes.of("/api/send")[before]
        assert hit.headers.get("content-type", "").startswith("application/json")
        body = json.loads(hit.raw)
        assert set(body) == {"to", "text", "from"} and body["to"] == SMS_PHONE and body["from"] == SMS_SENDER
        key = hit.headers.get("x-request-key", "")
        assert UUID_RE.match(key) and "idempotency-key" not in hit.headers
        assert sms_line.group(1) == f"ref-{key[:8]}"
        _stop(backend)

        # "Secrets (tokens, channel secret, SMS password, webhook secret), link codes, LINE ids, phone numbers and
        # message texts are never logged."
        log_file.flush()
        log = log_path.read_text(encoding="utf-8", errors="replace")
        assert "HTTP Request: POST" in log  # the client's own line, kept (host, path, answer)
        secrets = [LINE_TOKEN, LINE_SECRET, SMS_PASSWORD, code, c_code.group(1), SMS_PHONE, "812345678", A_NAME]
        secrets += [A_LINE, B_LINE, E_LINE, V_LINE, STRANGER_LINE, NEW_LINE, "ด่วน", "ยังไม่มีผู้รับเรื่อง"]
        assert [x for x in secrets if x in log] == []
    finally:
        for proc in (gateway, backend):
            _stop(proc)
        log_file.close()


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
