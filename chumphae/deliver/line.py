"""LINE Messaging API push (LINE Notify ended on 31 March 2025).

`POST {CHUMPHAE_LINE_API_URL}/v2/bot/message/push` with the channel access
token as a Bearer token, `X-Line-Retry-Key: <the notice's UUID>` so a retried
push is delivered once (a repeat of an accepted key answers 409), and a JSON
body `{"to", "messages", "notificationDisabled": false}`: a text message and,
for an alert, a confirm template whose postback (`ack=<alert id>`) acknowledges
it through our signed webhook (`chumphae.deliver.linehook`).

Plain httpx rather than line-bot-sdk: one request shape, and we need the raw
status, `Retry-After` and the 409 of a repeated retry key, which the SDK turns
into exceptions of its generated client; the signature check is six lines of hmac.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from chumphae.deliver.http import classify, transport_failure
from chumphae.deliver.notify import Outbound, Result

PUSH_PATH = "/v2/bot/message/push"


def push_body(out: Outbound) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"type": "text", "text": out.text[:5000]}]
    if out.ack and out.alert_id is not None and out.link:
        en = out.lang == "en"
        messages.append({
            "type": "template",
            "altText": ("Acknowledge this alert?" if en else "รับเรื่องการแจ้งเตือนนี้?"),
            "template": {
                "type": "confirm",
                "text": ("Will you take this alert?" if en else "คุณจะรับเรื่องนี้ไหม?"),
                "actions": [
                    {"type": "postback", "label": "Take it" if en else "รับเรื่อง", "data": f"ack={out.alert_id}",
                     "displayText": "I am on it" if en else "รับเรื่องแล้ว"},
                    {"type": "uri", "label": "Open" if en else "เปิดดู", "uri": out.link},
                ],
            },
        })
    return {"to": out.address, "messages": messages, "notificationDisabled": False}


class LineChannel:
    name = "line"

    def __init__(self, client: httpx.AsyncClient, *, api_url: str, token: SecretStr | None) -> None:
        self.client, self.api_url, self.token = client, api_url.rstrip("/"), token

    def ready(self) -> bool:
        return self.token is not None and bool(self.token.get_secret_value())

    async def send(self, out: Outbound) -> Result:
        if self.token is None:
            return Result("refused", detail="LINE channel access token not set")
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}", "X-Line-Retry-Key": out.key}
        try:
            r = await self.client.post(self.api_url + PUSH_PATH, json=push_body(out), headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        provider_id = r.headers.get("x-line-accepted-request-id") if r.status_code == 409 else \
            r.headers.get("x-line-request-id")
        if 200 <= r.status_code < 300:
            try:
                sent = r.json().get("sentMessages") or []
                provider_id = str(sent[0]["id"]) if sent else provider_id
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        return classify(r, provider_id=provider_id)
