"""docs/gateway-protocol.md §3.4, as a gateway written from it meets it: a message is filed under the patient
its band is registered to; `patient_id` only matters for an alert that names no band."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select
from websockets.asyncio.client import connect

from chumphae.models import Alert, PositionRecord
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import BAND, Site, server, site  # noqa: F401  (the fixtures)
from tests.ingest.test_gateway_socket import frame, position, url


async def test_band_decides_the_patient_and_patient_id_is_informative(server: LiveServer, site: Site) -> None:  # noqa: F811
    now = datetime.now(UTC)
    own, other = site.world.own_patient, site.world.other_patient
    lower = position(now, address=BAND.lower(), patient_id=other)  # someone else's id: neither refused nor used
    bare = position(now, address=BAND.replace(":", ""))
    sos = {"type": "sos", "severity": "critical", "patient_id": own, "t": now.isoformat(), "details": {}}
    foreign = {**sos, "patient_id": other}  # no band of this site on that patient
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        sent = [frame("position", lower), frame("position", bare, seq=2), frame("alert", sos, seq=3),
                frame("alert", foreign, seq=4)]
        for _, text in sent:
            await ws.send(text)
        acked: set[str] = set()
        errors: dict[str, str] = {}
        while len(acked) + len(errors) < len(sent):
            f = await recv_json(ws)
            if f["type"] == "ack":
                acked |= set(f["ids"])
            elif f["type"] == "error":
                errors[f["id"]] = f["code"]
    ids = [mid for mid, _ in sent]
    assert acked >= {ids[0], ids[2]} and errors == {ids[1]: "bad_body", ids[3]: "bad_body"}
    with Session(site.world.engine) as s:
        assert [p.patient_id for p in s.exec(select(PositionRecord)).all()] == [own]
        assert [(a.patient_id, a.type) for a in s.exec(select(Alert)).all()] == [(own, "sos")]


def test_the_document_says_so() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "gateway-protocol.md").read_text(encoding="utf-8")
    assert "`patient_id` is then informative" in doc and "without the\ncolons it is refused" in doc
