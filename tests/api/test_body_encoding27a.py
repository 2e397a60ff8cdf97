"""What the 400 `bad_request` of an undecodable body says is what the server does (review27a).

The OpenAPI document and mobile-api said a body is refused with 400 when its bytes are not UTF-8; the server
reads JSON as Python's json does: UTF-8 (a BOM allowed), UTF-16 or UTF-32, told by the first bytes. A client
built from the document would not know a UTF-16 body is taken.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import World

BODY = '{"name": "ป้าแดง", "role": "caregiver"}'


def test_a_utf16_or_utf32_body_is_taken_and_the_400_says_so(client: TestClient, world: World) -> None:
    headers = {**world.auth("admin"), "content-type": "application/json"}
    for encoding in ("utf-16", "utf-32", "utf-8"):
        answer = client.post("/api/v1/users", content=BODY.encode(encoding), headers=headers)
        assert answer.status_code == 201, (encoding, answer.status_code)
        assert answer.json()["name"] == "ป้าแดง"
    refused = client.post("/api/v1/users", content=b'{"name": "\xff", "role": "caregiver"}', headers=headers)
    assert refused.status_code == 400 and refused.json()["code"] == "bad_request"
    described = client.get("/openapi.json").json()["paths"]["/api/v1/users"]["post"]["responses"]["400"]
    assert "UTF-16" in described["description"] and "UTF-32" in described["description"]
