"""review19gw: defects found reviewing faults19's outbox rebuild (gateway/queue.py), each pinned on a real
SQLite file damaged on disk as an SD card after a power cut would leave it."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from chumphae.timeutil import utcnow
from gateway import queue as queue_mod
from gateway.queue import Outbox
from gateway.siteconfig import SiteConfig
from tests.gateway.test_district import town  # noqa: F401  (fixture: the seeded town site)


def _pages(path: Path, name: str) -> list[tuple[int, str]]:
    """(page number, page type) of the b-tree `name` (SQLite's dbstat), in key order."""
    db = sqlite3.connect(path)
    try:
        return [(int(p), str(t)) for p, t in db.execute(
            "SELECT pageno, pagetype FROM dbstat WHERE name=? ORDER BY path", (name,))]
    finally:
        db.close()


def _damage(path: Path, page: int) -> None:
    """One 4 KiB page overwritten with 0xff (not a b-tree page any more)."""
    with open(path, "r+b") as f:
        f.seek((page - 1) * 4096)
        f.write(b"\xff" * 4096)


def _filled(path: Path, n: int) -> str:
    """An outbox with one pending SOS and `n` positions, closed (checkpointed); the SOS's id."""
    ob = Outbox(path)
    sos = ob.put("alert", {"type": "sos"})
    for i in range(n):
        ob.put("position", {"n": i})
    ob.close()
    return sos.id


def test_a_damaged_meta_page_at_start_is_rebuilt_not_a_crash_loop(tmp_path: Path) -> None:
    """The `meta` table (the seq counter) is written by every outbox transaction, so it is the page most likely
    torn by a power cut. `Outbox()` read it outside the damage handling: `database disk image is malformed`
    ended the gateway at every start (the crash loop faults19 meant to end). Now the outbox is rebuilt and
    the pending SOS kept."""
    q = tmp_path / "outbox.sqlite3"
    sos = _filled(q, 50)
    [(meta, _kind)] = _pages(q, "meta")
    _damage(q, meta)
    ob = Outbox(q)  # raised sqlite3.DatabaseError
    try:
        assert ob.replaced == 1 and "malformed" in (ob.last_damage or "")
        assert ob.depth() == (51, 1) and ob.pending(1)[0].id == sos
        later = ob.put("position", {"n": -1})
        assert later.seq > max(q2.seq for q2 in ob.pending(100) if q2.id != later.id)
    finally:
        ob.close()


def test_a_damaged_index_page_does_not_lose_the_pending_messages(tmp_path: Path) -> None:
    """A leaf of the sending index (`outbox_send`) damaged: the rows themselves are sound, but the salvage read
    them through that index, whole and then by rowid chunks (`state=0` chose the index again), so every read
    failed and the outbox was rebuilt empty: the pending SOS and 3,000 positions gone, said as '0 pending
    messages (0 alerts) that could be read'. Now the salvage reads the table itself."""
    q = tmp_path / "outbox.sqlite3"
    sos = _filled(q, 3000)
    leaves = [p for p, kind in _pages(q, "outbox_send") if kind == "leaf"]
    _damage(q, leaves[0])  # the SOS's entry (alerts first in the index)
    ob = Outbox(q)
    try:
        ob.put("position", {"n": -1})  # its transaction counts the pending rows through the index
        assert ob.replaced == 1
        assert ob.depth() == (3002, 1) and ob.pending(1)[0].id == sos
    finally:
        ob.close()


def test_a_put_that_meets_the_damage_mid_transaction_stores_its_alert_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """put_many's transaction had inserted the SOS when the next row met a damaged page (here a leaf of the id
    index). The salvage then read the failed, still open transaction: the SOS, not committed, was kept under
    its id, and put_many, made again on the new file, queued it once more under a new id: two SOS messages the
    backend cannot tell apart (it dedupes on id), two alerts for one press. Now the failed transaction is rolled
    back before the salvage: the SOS is queued once."""
    q = tmp_path / "outbox.sqlite3"
    _filled(q, 3000)
    leaves = [p for p, kind in _pages(q, "sqlite_autoindex_outbox_1") if kind == "leaf"]
    _damage(q, leaves[-1])  # ids sort by text: the last leaf holds the highest ids
    ids = iter([uuid.UUID(int=1), uuid.UUID(int=2**128 - 2)] + [uuid.uuid4() for _ in range(10)])
    monkeypatch.setattr(queue_mod.uuid, "uuid4", lambda: next(ids))  # the SOS sorts first, the position last
    ob = Outbox(q)
    try:
        ob.put_many([("alert", {"type": "sos", "press": 1}, None), ("position", {"n": -1}, None)])
        assert ob.replaced == 1
        presses = [x for x in ob.pending(10_000) if x.type == "alert" and '"press":1' in x.text]
        assert len(presses) == 1
    finally:
        ob.close()


async def test_a_config_answer_with_a_version_that_is_not_a_number_is_refused_and_the_cached_one_kept(
        tmp_path: Path) -> None:
    """faults19 refused an answer without receivers and bands lists, but `parse` turned only KeyError / TypeError
    met in the lists into its ValueError: `"version": null` (or a list, an object) raised TypeError out of
    `fetch`, which catches ValueError, so at start the gateway died although a good copy was cached on disk
    (and a poll's refresh failed with a traceback). Now it is refused at ERROR like the other junk."""
    from gateway.config import GatewaySettings
    from gateway.service import load_config
    from tests.gateway.fake_backend import FakeBackend
    from tests.gateway.sources import SITE

    token = "gw-test-token-0123456789"
    backend = FakeBackend(token, config={**SITE, "version": 4})
    await backend.start()
    try:
        s = GatewaySettings(backend_url=backend.url, token=token, config_cache=tmp_path / "c.json",
                            queue_path=tmp_path / "q.sqlite3")
        first = await load_config(s)
        assert first is not None and first.version == 4
        for version in (None, [4], {"v": 4}):
            backend.config = {**SITE, "version": version}
            assert await load_config(s, first) is first  # the poll
            started = await load_config(s)  # a start with the cached copy: was TypeError
            assert started is not None and started.version == 4 and len(started.bands) == 1
    finally:
        await backend.stop()


def test_a_flat_out_simulation_held_at_its_cap_counts_real_seconds_ahead(town: SiteConfig) -> None:  # noqa: F811
    """gwsmall19 held a flat-out simulation (speed 0) at `max_ahead_s` ahead of the wall clock too, but
    `real_s_until` still answered 0 s for speed 0: `chumphae demo --speed 0` announced every alert as
    '(+0 s)' although, held at the cap, it came minutes later in real time."""
    from gateway.simulate.district import DistrictSource

    src = DistrictSource(town, speed=0, seed=1)
    src.max_ahead_s = 60.0
    lead = (src.wall() - utcnow()).total_seconds()
    assert abs(lead) < 5.0  # starts now
    assert src.real_s_until(src.clock() + 30.0) == 0.0  # within the lead still to gain: at once
    assert 235.0 <= src.real_s_until(src.clock() + 300.0) <= 245.0  # was 0.0
