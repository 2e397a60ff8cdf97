"""A notice's retries carry the body of its first try (freeze28), on SQLite and PostgreSQL, over real HTTP.

The webhook receiver here behaves as a standard idempotency layer does (IETF draft "The Idempotency-Key
HTTP Header Field"): a request whose key it has seen with a different body is answered 422. Before freeze28
each try rendered the message again, so an alert re-triggered between two tries changed the retry's body
(its `alert.count`, `last_triggered_at`, the text's clock time) and signature: 422, the notice `failed`
and the alert escalated although the receiver had the first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.deliver.linehook import set_contact
from chumphae.deliver.run import channels, http_client
from chumphae.deliver.webhook import sign
from chumphae.deliver.worker import Worker
from chumphae.models import Alert, OutboxNotice, Patient
from chumphae.patients.erase import erase_patient
from tests.conftest import World
from tests.deliver.conftest import T0, Clock, Fakes, options, raise_sos
from tests.deliver.fakes import WEBHOOK_SECRET

CID = "3409900123456"  # the patient's national ID: never in what is sent nor in what is kept


@dataclass
class Got:
    key: str
    raw: bytes
    signature: str
    status: int


@dataclass
class Receiver:
    """Answers the first `fail_first` requests 500; then 422 to a known key with another body, else 200."""

    fail_first: int = 1
    got: list[Got] = field(default_factory=list)
    first_body: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, key: str, raw: bytes, signature: str) -> int:
        with self.lock:
            known = self.first_body.setdefault(key, raw)
            if sum(1 for g in self.got if g.status == 500) < self.fail_first:
                status = 500
            else:
                status = 422 if known != raw else 200
            self.got.append(Got(key, raw, signature, status))
            return status


@contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer(self.headers.get("Idempotency-Key") or "", raw,
                                     self.headers.get("X-Chumphae-Signature") or "")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def first_notices(engine: Engine, alert_id: int) -> dict[str, OutboxNotice]:
    """The alert's first notice per push channel (the 'opened' event's)."""
    with Session(engine) as s:
        rows = s.exec(select(OutboxNotice).where(OutboxNotice.alert_id == alert_id, OutboxNotice.event == "opened",
                                                 col(OutboxNotice.channel) != "feed")).all()
        return {r.channel: r for r in rows}


def setup(engine: Engine, world: World, url: str) -> None:
    with Session(engine) as s:
        set_contact(s, user_id=world.users["caregiver"], channel="webhook", address=url)
        patient = s.get(Patient, world.own_patient)
        assert patient is not None
        patient.cid = CID
        s.add(patient)
        s.commit()


async def test_retries_after_a_retrigger_carry_the_first_tries_bytes(engine: Engine, district: World,
                                                                     fakes: Fakes) -> None:
    fakes.line.script, fakes.sms.script = ["500"], ["500"]
    clock = Clock(T0)
    s = fakes.settings()
    with receiving(Receiver()) as hook:
        setup(engine, district, hook.url)
        alert_id = raise_sos(engine, district.own_patient).alert_id
        assert alert_id is not None
        async with http_client(s) as client:
            worker = Worker(engine, channels(client, s), options(), public_url=s.public_url, clock=clock,
                            rnd=lambda: 0.0)
            assert await worker.run_once() >= 3  # line, sms, webhook: each answered 500, queued again
            sent = first_notices(engine, alert_id)
            assert {c: n.status for c, n in sent.items()} == {"line": "queued", "sms": "queued",
                                                              "webhook": "queued"}
            assert all(n.body and CID not in n.body for n in sent.values())
            # The alert moves between the tries: re-triggered 90 s later (count 2, text's time 10:01, not 10:00).
            clock.advance(90)
            raise_sos(engine, district.own_patient, now=clock.now)
            with Session(engine) as db:
                alert = db.get(Alert, alert_id)
                assert alert is not None and alert.count == 2
            clock.advance(5)
            await worker.run_once()
    done = first_notices(engine, alert_id)
    key = done["webhook"].key
    tries = [g for g in hook.got if g.key == key]
    assert [g.status for g in tries] == [500, 200]
    assert tries[0].raw == tries[1].raw and tries[0].signature == tries[1].signature
    assert tries[1].signature == sign(WEBHOOK_SECRET, tries[1].raw)
    for channel, fake in (("line", fakes.line), ("sms", fakes.sms)):
        bodies = [h.body for h in fake.hits if h.key == done[channel].key]
        assert len(bodies) == 2 and bodies[0] == bodies[1], channel
        if channel == "sms":  # the first try's clock time, not the re-trigger's
            assert "10:00" in bodies[1]["message"] and "10:01" not in bodies[1]["message"]
    assert {c: (n.status, n.attempts, n.body) for c, n in done.items()} == {
        c: ("sent", 2, None) for c in ("line", "sms", "webhook")}  # done: the kept body is dropped


async def test_erase_blanks_the_kept_body_and_the_retry_is_cancelled(engine: Engine, district: World,
                                                                     fakes: Fakes) -> None:
    fakes.line.script, fakes.sms.script = ["500"], ["500"]
    clock = Clock(T0)
    s = fakes.settings()
    with receiving(Receiver()) as hook:
        setup(engine, district, hook.url)
        alert_id = raise_sos(engine, district.own_patient).alert_id
        assert alert_id is not None
        async with http_client(s) as client:
            worker = Worker(engine, channels(client, s), options(), public_url=s.public_url, clock=clock,
                            rnd=lambda: 0.0)
            await worker.run_once()
            kept = first_notices(engine, alert_id)
            with Session(engine) as db:
                patient = db.get(Patient, district.own_patient)
                assert patient is not None
                name = patient.name_th
                assert all(n.status == "queued" and n.body and name in n.body and CID not in n.body
                           for n in kept.values())
                erase_patient(db, patient=patient, user=None, route="test")
                db.commit()
            after = first_notices(engine, alert_id)
            assert {c: n.body for c, n in after.items()} == {c: None for c in kept}
            clock.advance(5)
            await worker.run_once()
    assert {c: n.status for c, n in first_notices(engine, alert_id).items()} == {
        c: "cancelled" for c in ("line", "sms", "webhook")}
    assert len([g for g in hook.got if g.key == kept["webhook"].key]) == 1
