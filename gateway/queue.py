"""The durable outbox: every message is on disk before it is sent, until the backend acks it.

SQLite (WAL, synchronous=FULL: an alert written here survives a power cut
of the Pi). Messages are kept as the exact JSON text first built, so a
re-send is byte-identical and carries the same id — the backend dedupes on
it. Order of sending: alerts first, then by `seq` (creation order).

A gateway offline for days must not fill its SD card: above `max_pending`
the oldest *non-alert* messages are dropped (counted); alerts are never
dropped. Acked rows are kept for `keep_acked_s` for audit, then pruned.

The same database keeps the band replay guard's newest counters
(`band_counter`), so a restart does not reopen recorded frames.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chumphae.timeutil import utcnow

PRIORITY = {"alert": 0}
DEFAULT_PRIORITY = 5
PENDING, ACKED, REJECTED = 0, 1, 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    priority INTEGER NOT NULL,
    type TEXT NOT NULL,
    created TEXT NOT NULL,
    msg TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    done_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, priority, seq);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS band_counter (address TEXT PRIMARY KEY, seq INTEGER NOT NULL, saved TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    id: str
    seq: int
    type: str
    text: str  # the JSON frame as sent


def envelope(msg_id: str, type_: str, seq: int, body: dict[str, Any], t: datetime | None = None) -> str:
    return json.dumps(
        {"id": msg_id, "type": type_, "t": (t or utcnow()).isoformat(), "seq": seq, "body": body},
        separators=(",", ":"),
        ensure_ascii=False,
    )


class Outbox:
    """Thread-safe (one lock); all calls are short, so the asyncio loop may call them directly."""

    def __init__(self, path: Path, max_pending: int = 200_000, keep_acked_s: float = 86_400.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_pending = max_pending
        self.keep_acked_s = keep_acked_s
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT v FROM meta WHERE k='seq'").fetchone()
        top = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
        self._seq = max(int(row[0]) if row else 0, int(top))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def next_seq(self) -> int:
        """A fresh sequence number (persisted: it never goes back across restarts)."""
        with self._lock:
            self._seq += 1
            self._db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES ('seq', ?)", (str(self._seq),))
            return self._seq

    def put(self, type_: str, body: dict[str, Any], t: datetime | None = None) -> Queued:
        return self.put_many([(type_, body, t)])[0]

    def put_many(self, items: Iterable[tuple[str, dict[str, Any], datetime | None]]) -> list[Queued]:
        """Store messages in one transaction; they are durable when this returns."""
        out: list[Queued] = []
        now = utcnow().isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for type_, body, t in items:
                    self._seq += 1
                    q = Queued(str(uuid.uuid4()), self._seq, type_, "")
                    text = envelope(q.id, type_, q.seq, body, t)
                    self._db.execute(
                        "INSERT INTO outbox(id, seq, priority, type, created, msg) VALUES (?,?,?,?,?,?)",
                        (q.id, q.seq, PRIORITY.get(type_, DEFAULT_PRIORITY), type_, now, text),
                    )
                    out.append(Queued(q.id, q.seq, type_, text))
                self._db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES ('seq', ?)", (str(self._seq),))
                self._enforce_cap()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def _enforce_cap(self) -> None:
        (n,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE state=0").fetchone()
        excess = n - self.max_pending
        if excess > 0:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state=0 AND type != 'alert' "
                "ORDER BY seq LIMIT ?)",
                (excess,),
            )
            self.dropped += cur.rowcount

    def pending(self, limit: int, skip: Sequence[str] | set[str] = ()) -> list[Queued]:
        """Unacked messages in sending order (alerts first, then seq), not in `skip`."""
        skip_set = set(skip)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, type, msg FROM outbox WHERE state=0 ORDER BY priority, seq LIMIT ?",
                (limit + len(skip_set),),
            ).fetchall()
        return [Queued(*r) for r in rows if r[0] not in skip_set][:limit]

    def _finish(self, ids: Iterable[str], state: int) -> int:
        ids = list(ids)
        if not ids:
            return 0
        now = utcnow().isoformat()
        with self._lock:
            cur = self._db.executemany(
                "UPDATE outbox SET state=?, done_at=? WHERE id=? AND state=0", [(state, now, i) for i in ids]
            )
            return cur.rowcount

    def ack(self, ids: Iterable[str]) -> int:
        return self._finish(ids, ACKED)

    def reject(self, ids: Iterable[str]) -> int:
        """The backend called these malformed: re-sending would fail forever."""
        return self._finish(ids, REJECTED)

    def save_counters(self, seqs: Mapping[str, int]) -> None:
        """Store the replay guard's newest band counters (one transaction; never lowers one)."""
        if not seqs:
            return
        now = utcnow().isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO band_counter(address, seq, saved) VALUES (?,?,?) ON CONFLICT(address) "
                    "DO UPDATE SET seq=MAX(seq, excluded.seq), saved=excluded.saved",
                    [(a, int(q), now) for a, q in seqs.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_counters(self) -> dict[str, int]:
        with self._lock:
            return {a: int(q) for a, q in self._db.execute("SELECT address, seq FROM band_counter")}

    def depth(self) -> tuple[int, int]:
        """(pending messages, of which alerts)."""
        with self._lock:
            n, a = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(type='alert'), 0) FROM outbox WHERE state=0"
            ).fetchone()
        return int(n), int(a)

    def prune(self) -> int:
        cutoff = (utcnow() - timedelta(seconds=self.keep_acked_s)).isoformat()
        with self._lock:
            return self._db.execute("DELETE FROM outbox WHERE state!=0 AND done_at < ?", (cutoff,)).rowcount

    def all_ids(self) -> list[tuple[str, str, int]]:
        """(id, type, state) of every row, in seq order (audit and tests)."""
        with self._lock:
            return [tuple(r) for r in self._db.execute("SELECT id, type, state FROM outbox ORDER BY seq")]  # type: ignore[misc]
