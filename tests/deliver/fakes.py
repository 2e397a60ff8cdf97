"""Fake providers as real HTTP servers on 127.0.0.1: LINE Messaging API, a Thai SMS gateway, a webhook receiver.

They answer as the providers do: LINE takes a push once per `X-Line-Retry-Key`
and answers 409 (with `x-line-accepted-request-id`) to a repeat of an accepted
key; 429 with `Retry-After`; 500; time-outs (hang without accepting, or accept
and then hang so the client never hears: the case that makes duplicates). A
script of answers, or a failure rate with a seed, decides each request.

`accepted[key]` counts deliveries per idempotency key: anything above 1 is a
duplicate the person would have seen twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

LINE_TOKEN = "test-line-token-not-a-secret"
LINE_SECRET = "test-line-channel-secret"
SMS_USER, SMS_PASSWORD = "chumphae", "sms-password-not-logged"
WEBHOOK_SECRET = "webhook-secret-not-logged"

# Answers a script may hold: ok, 429, 500, 400, hang (time-out, not accepted), accept_hang (accepted, then hang).
FAILURES = ("429", "500", "hang", "accept_hang")


@dataclass
class Hit:
    t: float  # time.monotonic() when the request arrived
    key: str | None
    body: Any
    answer: str


@dataclass
class Fake:
    """What one fake saw; its behaviour is `script` (first) then `fail_rate` (seeded), else ok."""

    name: str
    script: list[str] = field(default_factory=list)
    fail_rate: float = 0.0
    seed: int = 1
    retry_after: str = "1"
    hang_s: float = 1.0
    hits: list[Hit] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # idempotency key → deliveries
    replies: list[dict[str, Any]] = field(default_factory=list)  # LINE reply bodies, in arrival order
    ids: dict[str, str] = field(default_factory=dict)  # key → provider message id
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.block: list[bool] = []

    def decide(self) -> str:
        """Scripted answers first; then, of every 10 requests, exactly round(10 × fail_rate) fail, at random places."""
        with self.lock:
            if self.script:
                return self.script.pop(0)
            if not self.fail_rate:
                return "ok"
            if not self.block:
                failing = round(10 * self.fail_rate)
                self.block = [True] * failing + [False] * (10 - failing)
                self.rng.shuffle(self.block)
            return self.rng.choice(FAILURES) if self.block.pop() else "ok"

    def accept(self, key: str) -> tuple[bool, str]:
        """(first time, provider id) for a key."""
        with self.lock:
            first = key not in self.ids
            if first:
                self.ids[key] = uuid.uuid4().hex[:16]
                self.accepted[key] += 1
            return first, self.ids[key]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.accepted.values() if n > 1)


class _Handler(BaseHTTPRequestHandler):
    fake: Fake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _read(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:  # noqa: N802
        raw = self._read()
        f = self.fake
        answer = f.decide()
        key, body, problem = self.check(raw)
        with f.lock:
            f.hits.append(Hit(time.monotonic(), key, body, answer))
        if problem is not None:
            self._reply(problem[0], {"message": problem[1]})
            return
        assert key is not None
        if answer == "hang":
            time.sleep(f.hang_s)
            self.close_connection = True
            return
        if answer in ("429", "500", "400"):
            headers = {"Retry-After": f.retry_after} if answer == "429" else {}
            self._reply(int(answer), {"message": "Too many requests" if answer == "429" else "error"}, headers)
            return
        first, pid = f.accept(key)
        if answer == "accept_hang":
            time.sleep(f.hang_s)  # accepted, but the client gives up before it hears so
            self.close_connection = True
            return
        self.answer_ok(first, pid)

    def check(self, raw: bytes) -> tuple[str | None, Any, tuple[int, str] | None]:
        raise NotImplementedError

    def answer_ok(self, first: bool, pid: str) -> None:
        raise NotImplementedError


class _LineHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/v2/bot/message/reply":
            super().do_POST()
            return
        # A reply (the webhook's answer to an event): no retry key, the reply token is good once; kept
        # apart from pushes so that scripts of answers and delivery counts concern pushes only.
        raw = self._read()
        if self.headers.get("Authorization") != f"Bearer {LINE_TOKEN}":
            self._reply(401, {"message": "Authentication failed"})
            return
        body = json.loads(raw)
        token = body.get("replyToken")
        ok = isinstance(token, str) and 1 <= len(body.get("messages") or []) <= 5
        with self.fake.lock:
            ok = ok and token not in {r["replyToken"] for r in self.fake.replies}
            self.fake.replies.append(body)
        self._reply(200 if ok else 400, {"sentMessages": [{"id": str(uuid.uuid4())}]} if ok else
                    {"message": "Invalid reply token"})

    def check(self, raw: bytes) -> tuple[str | None, Any, tuple[int, str] | None]:
        if self.path != "/v2/bot/message/push":
            return None, None, (404, "Not found")
        if self.headers.get("Authorization") != f"Bearer {LINE_TOKEN}":
            return None, None, (401, "Authentication failed")
        key = self.headers.get("X-Line-Retry-Key")
        try:
            uuid.UUID(key or "")
            body = json.loads(raw)
        except ValueError:
            return key, None, (400, "The request body has 1 error(s)")
        if not isinstance(body.get("to"), str) or not 1 <= len(body.get("messages") or []) <= 5:
            return key, body, (400, "The request body has 1 error(s)")
        return key, body, None

    def answer_ok(self, first: bool, pid: str) -> None:
        if first:
            self._reply(200, {"sentMessages": [{"id": pid, "quoteToken": "q" + pid}]},
                        {"x-line-request-id": str(uuid.uuid4())})
        else:
            self._reply(409, {"message": "The retry key is already accepted"},
                        {"x-line-accepted-request-id": pid})


class _SmsHandler(_Handler):
    def check(self, raw: bytes) -> tuple[str | None, Any, tuple[int, str] | None]:
        expected = "Basic " + base64.b64encode(f"{SMS_USER}:{SMS_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return None, None, (401, "bad credentials")
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            body = json.loads(raw)
        else:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if not body.get("msisdn") or not body.get("message"):
            return None, body, (400, "msisdn and message required")
        return self.headers.get("Idempotency-Key") or uuid.uuid4().hex, body, None

    def answer_ok(self, first: bool, pid: str) -> None:
        self._reply(200, {"status": "success", "data": [{"msisdn": "66xxxxxxxxx", "message_id": pid}]})


class _WebhookHandler(_Handler):
    def check(self, raw: bytes) -> tuple[str | None, Any, tuple[int, str] | None]:
        mac = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, self.headers.get("X-Chumphae-Signature") or ""):
            return None, None, (401, "bad signature")
        return self.headers.get("Idempotency-Key"), json.loads(raw), None

    def answer_ok(self, first: bool, pid: str) -> None:
        self._reply(200 if first else 409, {"received": pid}, {"X-Request-Id": pid})


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many workers' connections at once, as a provider takes them
    daemon_threads = True


@contextmanager
def serving(fake: Fake, handler: type[_Handler]) -> Iterator[Fake]:
    cls = type(f"{handler.__name__}Bound", (handler,), {"fake": fake})
    server = _Server(("127.0.0.1", 0), cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def line_server(fake: Fake) -> Any:
    return serving(fake, _LineHandler)


def sms_server(fake: Fake) -> Any:
    return serving(fake, _SmsHandler)


def webhook_server(fake: Fake) -> Any:
    return serving(fake, _WebhookHandler)


def line_signature(body: bytes, secret: str = LINE_SECRET) -> str:
    """What LINE puts in X-Line-Signature."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
