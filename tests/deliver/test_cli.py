"""`chumphae channels`: contact points and preferences, link codes, a test message on every channel, the worker
as its own process (killed mid-send, another picks up and re-sends nothing accepted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.cli import app
from chumphae.db import upgrade
from chumphae.models import ContactPoint, DeliveryPreference, LineLinkCode, OutboxNotice
from tests.conftest import build_world
from tests.deliver.conftest import LINE_IDS, PHONE, Fakes, raise_sos
from tests.deliver.fakes import LINE_SECRET, LINE_TOKEN, SMS_PASSWORD, SMS_USER, WEBHOOK_SECRET

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from chumphae.config import reset_settings

    values = {
        "CHUMPHAE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CHUMPHAE_LINE_API_URL": fakes.line.url, "CHUMPHAE_LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN,
        "CHUMPHAE_LINE_CHANNEL_SECRET": LINE_SECRET, "CHUMPHAE_SMS_URL": fakes.sms.url + "/send",
        "CHUMPHAE_SMS_USERNAME": SMS_USER, "CHUMPHAE_SMS_PASSWORD": SMS_PASSWORD,
        "CHUMPHAE_WEBHOOK_SECRET": WEBHOOK_SECRET, "CHUMPHAE_DELIVERY_TIMEOUT_S": "0.5",
        "CHUMPHAE_DELIVERY_BACKOFF_S": "0.2",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    return values


@pytest.fixture
def cli_engine(env: dict[str, str]) -> Engine:
    from chumphae.db import make_engine

    engine = make_engine(env["CHUMPHAE_DATABASE_URL"])
    upgrade(engine)
    return engine


def test_set_show_link_code_and_test_every_channel(cli_engine: Engine, fakes: Fakes) -> None:
    world = build_world(cli_engine)
    r = runner.invoke(app, ["channels", "set", "caregiver", "--line", LINE_IDS["caregiver"], "--sms", "081-234-5678",
                            "--webhook", fakes.webhook.url + "/in", "--severity", "high=line,sms",
                            "--quiet", "22:00-06:00"])
    assert r.exit_code == 0, r.output
    assert "sms: 081…678" in r.output and "critical: line,sms,webhook,feed" in r.output
    assert "high: line,sms (+ feed: always)" in r.output  # the feed goes whatever is chosen (docs12: it was not said)
    assert PHONE not in r.output and LINE_IDS["caregiver"] not in r.output
    with Session(cli_engine) as s:
        assert {c.channel: c.address for c in s.exec(select(ContactPoint))} == {
            "line": LINE_IDS["caregiver"], "sms": PHONE, "webhook": fakes.webhook.url + "/in"}
        pref = s.get(DeliveryPreference, world.users["caregiver"])
        assert pref is not None and (pref.channels, pref.quiet_start, pref.quiet_end) == (
            {"high": ["line", "sms"]}, "22:00", "06:00")
    for bad in (["--sms", "call me"], ["--line", "me"], ["--quiet", "late"], ["--severity", "huge=line"],
                ["--severity", "high=pigeon"], ["--remove", "fax"]):  # fax: ignored without a word before docs11
        r = runner.invoke(app, ["channels", "set", "caregiver", *bad])
        assert r.exit_code == 1 and "Traceback" not in r.output, (bad, r.output)
    assert runner.invoke(app, ["channels", "set", "nobody", "--sms", PHONE]).exit_code == 1

    fakes.line.script = ["500", "ok"]  # retried once, then delivered
    fakes.sms.script = ["400"]  # refused
    r = runner.invoke(app, ["channels", "test", "caregiver", "--wait", "10"])
    assert r.exit_code == 1, (r.output, r.exception)
    lines = r.output.splitlines()
    assert len(lines) == 3, (r.output, r.exception)
    assert lines[0].startswith(f"line: sent after 2 attempt(s) id={next(iter(fakes.line.ids.values()))}")
    assert lines[1] == "sms: failed after 1 attempt(s) (400 Bad Request)"
    assert lines[2].startswith("webhook: sent after 1 attempt(s)")
    assert "ข้อความทดสอบ" in fakes.line.hits[-1].body["messages"][0]["text"]

    r = runner.invoke(app, ["channels", "link-code", str(world.users["volunteer"])])
    assert r.exit_code == 0
    code = r.output.splitlines()[0]
    assert "ส่งรหัสนี้" in r.output and "send this code" in r.output  # what to do with it, Thai and English
    with Session(cli_engine) as s:
        stored = s.exec(select(LineLinkCode)).one()
        assert code not in stored.code_hash and stored.user_id == world.users["volunteer"]


def test_worker_process_killed_mid_send_another_resends_nothing_accepted(cli_engine: Engine, env: dict[str, str],
                                                                          fakes: Fakes) -> None:
    world = build_world(cli_engine)
    with Session(cli_engine) as s:
        s.add(ContactPoint(user_id=world.users["caregiver"], channel="line", address=LINE_IDS["caregiver"]))
        s.commit()
    fakes.line.script = ["accept_hang"]
    fakes.line.hang_s = 30.0  # LINE took it; the answer never reaches the first worker
    from chumphae.timeutil import utcnow

    raise_sos(cli_engine, world.own_patient, now=utcnow())
    child_env = {**os.environ, **env, "CHUMPHAE_DELIVERY_TIMEOUT_S": "20"}
    cmd = [sys.executable, "-c", "from chumphae.cli import main; main()", "channels", "worker"]
    first = subprocess.Popen(cmd, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not fakes.line.accepted:
            assert time.monotonic() < deadline and first.poll() is None, "the first worker never sent"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    with Session(cli_engine) as s:
        row = s.exec(select(OutboxNotice).where(OutboxNotice.channel == "line")).one()
        assert row.status == "sending" and row.attempts == 1
        row.lease_until = utcnow()  # the lease (60 s) has run out: as if a minute passed
        s.add(row)
        s.commit()
    second = subprocess.Popen(cmd, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with Session(cli_engine) as s:
                row = s.exec(select(OutboxNotice).where(OutboxNotice.channel == "line")).one()
            if row.status == "sent":
                break
            assert time.monotonic() < deadline and second.poll() is None, row.status
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(10)
        except subprocess.TimeoutExpired:
            second.kill()
    assert row.attempts == 2
    assert fakes.line.accepted == {row.key: 1}  # the second push repeated the key: 409, not a second message
    assert [h.answer for h in fakes.line.hits] == ["accept_hang", "ok"]
