"""SMS through a Thai HTTP gateway: one form or JSON post with basic auth, an id per number back.

URL, credentials and field names are settings (`CHUMPHAE_SMS_*`), so a
provider is a configuration, not code. The notice's key goes in the
idempotency header (`CHUMPHAE_SMS_IDEMPOTENCY_HEADER`); a gateway that ignores
it may deliver a time-out's retry twice (docs/delivery.md).
"""

from __future__ import annotations

from typing import Any

import httpx

from chumphae.config import Settings
from chumphae.deliver.http import classify, transport_failure
from chumphae.deliver.notify import Outbound, Result


def find_id(body: Any, key: str) -> str | None:
    """The first value under `key` anywhere in a JSON answer (providers nest it differently)."""
    if isinstance(body, dict):
        if key in body and body[key] is not None:
            return str(body[key])
        values = list(body.values())
    elif isinstance(body, list):
        values = body
    else:
        return None
    for v in values:
        found = find_id(v, key)
        if found is not None:
            return found
    return None


class SmsChannel:
    name = "sms"

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client, self.s = client, settings

    def ready(self) -> bool:
        return bool(self.s.sms_url)

    async def send(self, out: Outbound) -> Result:
        s = self.s
        if not s.sms_url:
            return Result("refused", detail="CHUMPHAE_SMS_URL not set")
        fields = {s.sms_field_to: out.address, s.sms_field_message: out.text, s.sms_field_sender: s.sms_sender}
        headers = {s.sms_idempotency_header: out.key} if s.sms_idempotency_header else {}
        extra: dict[str, Any] = {"json": fields} if s.sms_format == "json" else {"data": fields}
        if s.sms_username:
            extra["auth"] = httpx.BasicAuth(s.sms_username, s.sms_password.get_secret_value() if s.sms_password else "")
        try:
            r = await self.client.post(s.sms_url, headers=headers, **extra)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        provider_id = None
        if 200 <= r.status_code < 300:
            try:
                provider_id = find_id(r.json(), s.sms_id_field)
            except ValueError:
                provider_id = None
        return classify(r, provider_id=provider_id)
