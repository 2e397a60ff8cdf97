"""The outbox: durable across reopen, alerts first, ack/reject, cap never drops alerts."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.queue import Outbox


def test_survives_reopen_in_order_alerts_first(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    p1 = ob.put("position", {"n": 1})
    a1 = ob.put("alert", {"type": "sos"})
    p2 = ob.put("position", {"n": 2})
    ob.close()
    ob = Outbox(tmp_path / "o.db")  # a restart
    order = [q.id for q in ob.pending(10)]
    assert order == [a1.id, p1.id, p2.id]
    msg = json.loads(ob.pending(1)[0].text)
    assert msg["id"] == a1.id and msg["type"] == "alert" and msg["body"] == {"type": "sos"} and msg["seq"] == a1.seq
    # seq keeps growing across the restart
    assert ob.put("position", {}).seq > p2.seq
    assert ob.next_seq() > p2.seq + 1


def test_ack_and_reject_remove_from_pending_and_skip_works(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    qs = ob.put_many([("position", {"n": i}, None) for i in range(5)])
    assert [q.id for q in ob.pending(2, skip={qs[0].id})] == [qs[1].id, qs[2].id]
    assert ob.ack([qs[0].id, qs[1].id, "not-a-known-id"]) == 2
    assert ob.ack([qs[0].id]) == 0  # second ack of the same id changes nothing
    assert ob.reject([qs[2].id]) == 1
    assert ob.depth() == (2, 0)
    assert [q.id for q in ob.pending(10)] == [qs[3].id, qs[4].id]


def test_cap_drops_oldest_positions_never_alerts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_pending=3)
    a = ob.put("alert", {"n": 0})
    ps = ob.put_many([("position", {"n": i}, None) for i in range(4)])
    assert ob.depth() == (3, 1)
    assert ob.dropped == 2
    assert [q.id for q in ob.pending(10)] == [a.id, ps[2].id, ps[3].id]
