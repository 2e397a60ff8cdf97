"""A webhook for other systems (the hospital's, a province's command centre).

`POST <the user's webhook URL>` with a JSON body (the notice key, event, rung,
page link and the alert as the API shows it), `Idempotency-Key: <notice key>`
(the same on every retry, as is the body: the worker renders it at the
first try) and `X-Chumphae-Signature: sha256=<hex HMAC-SHA256
of the raw body with CHUMPHAE_WEBHOOK_SECRET>`. 2xx or 409 is delivered;
408/429/5xx and time-outs are retried; other 4xx are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from pydantic import SecretStr

from chumphae.deliver.http import classify, transport_failure
from chumphae.deliver.notify import Outbound, Result


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, *, secret: SecretStr | None) -> None:
        self.client, self.secret = client, secret

    def ready(self) -> bool:
        return self.secret is not None and bool(self.secret.get_secret_value())

    async def send(self, out: Outbound) -> Result:
        if self.secret is None:
            return Result("refused", detail="CHUMPHAE_WEBHOOK_SECRET not set")
        body = json.dumps({**out.payload, "text": out.text}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": out.key,
                   "X-Chumphae-Signature": sign(self.secret.get_secret_value(), body)}
        try:
            r = await self.client.post(out.address, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return classify(r, provider_id=r.headers.get("X-Request-Id"))
