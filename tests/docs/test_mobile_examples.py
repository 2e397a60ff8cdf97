"""docs/mobile-api.md's examples, as printed, against the app on the seeded demo district."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.seed import seed_demo

DOC = Path(__file__).resolve().parents[2] / "docs" / "mobile-api.md"


def examples() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("## Examples"):].split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("curl ")]


def test_every_documented_example_runs_against_the_demo(client: TestClient, app_engine: Engine) -> None:
    with Session(app_engine) as s:
        tokens = seed_demo(s).tokens
        s.commit()
    auth = {"$T": tokens["volunteer1"], "$A": tokens["admin"]}
    runs = examples()
    assert len(runs) >= 9
    seen = set()
    for argv in runs:
        method, body, headers, url = "GET", None, {}, ""
        it = iter(argv[1:])
        for arg in it:
            if arg == "-X":
                method = next(it)
            elif arg == "-d":
                body = json.loads(next(it))  # the JSON bodies as printed parse
            elif arg == "-H":
                h = next(it)
                if h in auth:
                    headers["Authorization"] = f"Bearer {auth[h]}"
                elif h == "$J":
                    headers["Content-Type"] = "application/json"
                elif ":" in h:
                    k, v = h.split(":", 1)
                    headers[k] = v.strip()
            elif arg.startswith("http://127.0.0.1:8080/"):
                url = arg.removeprefix("http://127.0.0.1:8080")
        assert "Authorization" in headers and url, argv
        r = client.request(method, url, headers=headers, content=json.dumps(body) if body is not None else None)
        assert r.status_code in (200, 201, 204, 304), (argv, r.status_code, r.text)
        seen.add((method, re.sub(r"\?.*", "", url)))
        if method == "GET" and r.status_code == 200 and url.split("?")[0].endswith(("/bands", "/alerts")):
            page = r.json()
            assert set(page) == {"items", "total", "limit", "offset", "next_offset"}, page
        if method == "POST" and url.endswith("/search/sightings"):  # the band the example before registered
            assert r.status_code == 201 and r.json()["positions"][0]["source"] == "search", r.text
        if method == "PUT" and url.endswith("/bands"):
            assert r.json()["band"]["address"] == "C0:CA:FE:00:01:2A"
            assert set(r.json()) == {"band", "replaced"}  # as the table says
            assert {b["address"] for b in r.json()["replaced"]} and not any(b["active"] for b in r.json()["replaced"])
    assert {("POST", "/api/v1/patients"), ("POST", "/api/v1/users"), ("PUT", "/api/v1/patients/7/bands"),
            ("POST", "/api/v1/patients/7/search/sightings")} <= seen
