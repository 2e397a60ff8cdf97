"""Each channel adapter against its fake provider over real HTTP: one request, its answer read as the provider means it."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from chumphae.deliver.http import retry_after_s
from chumphae.deliver.line import LineChannel
from chumphae.deliver.notify import Outbound
from chumphae.deliver.sms import SmsChannel, find_id
from chumphae.deliver.webhook import WebhookChannel
from tests.deliver.conftest import LINE_IDS, PHONE, Fakes
from tests.deliver.fakes import LINE_TOKEN


def outbound(channel: str, address: str, **kw: object) -> Outbound:
    values: dict[str, object] = dict(key=str(uuid.uuid4()), channel=channel, address=address, lang="th",
                                     text="🚨 ด่วน: กดขอความช่วยเหลือ", alert_id=7, link="https://x.example/#alert=7",
                                     ack=True, payload={"alert": {"id": 7}})
    values.update(kw)
    return Outbound(**values)  # type: ignore[arg-type]


async def test_line_push_once_per_retry_key_and_each_failure_read_right(fakes: Fakes) -> None:
    fakes.line.script = ["ok", "ok", "429", "500", "hang", "400"]
    fakes.line.retry_after = "7"
    async with httpx.AsyncClient(timeout=0.5) as client:
        line = LineChannel(client, api_url=fakes.line.url, token=_secret(LINE_TOKEN))
        out = outbound("line", LINE_IDS["caregiver"])
        first = await line.send(out)
        assert first.outcome == "accepted" and first.provider_id == fakes.line.ids[out.key]
        again = await line.send(out)  # the same retry key: LINE answers 409, it was delivered before
        assert (again.outcome, again.provider_id) == ("accepted", fakes.line.ids[out.key])
        assert again.detail.startswith("409")
        assert fakes.line.accepted[out.key] == 1
        limited = await line.send(outbound("line", LINE_IDS["caregiver"]))
        assert (limited.outcome, limited.retry_after_s) == ("retry", 7.0)
        assert (await line.send(outbound("line", LINE_IDS["caregiver"]))).outcome == "retry"  # 500
        timed_out = await line.send(outbound("line", LINE_IDS["caregiver"]))
        assert (timed_out.outcome, timed_out.detail) == ("retry", "ReadTimeout")
        assert (await line.send(outbound("line", LINE_IDS["caregiver"]))).outcome == "refused"  # 400
        wrong = LineChannel(client, api_url=fakes.line.url, token=_secret("not-the-token"))
        assert (await wrong.send(outbound("line", LINE_IDS["caregiver"]))).outcome == "refused"  # 401
    body = fakes.line.hits[0].body
    assert body["to"] == LINE_IDS["caregiver"] and body["notificationDisabled"] is False
    text, confirm = body["messages"]
    assert text == {"type": "text", "text": "🚨 ด่วน: กดขอความช่วยเหลือ"}
    actions = confirm["template"]["actions"]
    assert actions[0]["data"] == "ack=7" and actions[1]["uri"] == "https://x.example/#alert=7"


@pytest.mark.parametrize("fmt", ["form", "json"])
async def test_sms_gateway_form_or_json_with_basic_auth_and_message_id(fakes: Fakes, fmt: str) -> None:
    settings = fakes.settings(sms_format=fmt)
    fakes.sms.script = ["ok", "ok", "500"]
    async with httpx.AsyncClient(timeout=0.5) as client:
        sms = SmsChannel(client, settings)
        out = outbound("sms", PHONE, text="ผู้ป่วย: สมศรี")
        r = await sms.send(out)
        assert (r.outcome, r.provider_id) == ("accepted", fakes.sms.ids[out.key])
        assert (await sms.send(out)).outcome == "accepted"  # the gateway honours the idempotency key
        assert fakes.sms.accepted[out.key] == 1
        assert (await sms.send(outbound("sms", PHONE))).outcome == "retry"
        bad = SmsChannel(client, fakes.settings(sms_password="wrong"))
        assert (await bad.send(outbound("sms", PHONE))).outcome == "refused"
    assert fakes.sms.hits[0].body == {"msisdn": PHONE, "message": "ผู้ป่วย: สมศรี", "sender": "Chumphae"}


async def test_webhook_signed_with_idempotency_key(fakes: Fakes) -> None:
    fakes.webhook.script = ["ok", "ok"]
    async with httpx.AsyncClient(timeout=0.5) as client:
        hook = WebhookChannel(client, secret=_secret("webhook-secret-not-logged"))
        out = outbound("webhook", fakes.webhook.url + "/in")
        assert (await hook.send(out)).outcome == "accepted"
        assert (await hook.send(out)).outcome == "accepted"  # 409: already had it
        forged = WebhookChannel(client, secret=_secret("another-secret"))
        assert (await forged.send(outbound("webhook", fakes.webhook.url + "/in"))).outcome == "refused"
    assert fakes.webhook.accepted[out.key] == 1
    assert fakes.webhook.hits[0].body["alert"] == {"id": 7} and fakes.webhook.hits[0].key == out.key


def test_retry_after_seconds_or_http_date_and_nested_ids() -> None:
    assert retry_after_s("12") == 12.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert retry_after_s("soon") is None and retry_after_s(None) is None
    assert find_id(json.loads('{"result": {"messages": [{"id": 1, "message_id": "abc"}]}}'), "message_id") == "abc"


def _secret(value: str):  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    return SecretStr(value)
