"""The durable outbox: every message is on disk before it is sent, until the backend acks it.

SQLite (WAL, synchronous=FULL: an alert written here survives a power cut
of the Pi). Messages are kept as the exact JSON text first built, so a
re-send is byte-identical and carries the same id — the backend dedupes on
it. Order of sending: messages not deferred first, then alerts before the
rest, then by `seq` (creation order). `defer(id)` moves one message behind
all others (a suspected poison message: see gateway/uplink.py).

A gateway offline for days must not fill its SD card: above `max_pending`
the oldest *non-alert* messages are dropped (counted); alerts are never
dropped. Acked rows are kept for `keep_acked_s` for audit, then pruned.

When the disk refuses writes (SQLITE_FULL, SQLITE_IOERR: the SD card is
full or failing) the outbox says so once at ERROR (`disk_full` turns true),
keeps new messages in a bounded memory queue (alerts always kept; the
oldest positions/readings beyond `memory_max` dropped and counted in
`memory_dropped`), keeps serving them to the uplink with the rest, and
remembers acks it could not write. It tries the disk again at most every
`retry_s`; when a write succeeds it moves the memory queue to disk in one
transaction (same ids and seqs: nothing lost, nothing duplicated) and says
so. What is only in memory does not survive a power cut — nothing else
could hold it.

The same database keeps the band replay guard's newest counters
(`band_counter`), so a restart does not reopen recorded frames.

When the outbox file itself is damaged (SQLITE_CORRUPT / SQLITE_NOTADB: an SD
card after a power cut), deleted or replaced by another file while the gateway
runs, the outbox is rebuilt (faults19): the pending messages and counters
that can still be read are kept (with their ids), the damaged file is moved
aside as `NAME.damaged-<UTC time>` for a person to look at, a new outbox is
made at the same path, and it says so at ERROR (`replaced`, `last_damage`).
A gateway whose outbox was damaged at start used to exit with a traceback at
every start (a supervisor's crash loop: no SOS ever left); one whose outbox
was deleted ran on an unlinked file and lost every pending message at the
next restart, saying nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)

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
    done_at TEXT,
    rank INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS band_counter (address TEXT PRIMARY KEY, seq INTEGER NOT NULL, saved TEXT NOT NULL);
"""
INDEX = "CREATE INDEX IF NOT EXISTS outbox_send ON outbox(state, rank, priority, seq)"

# SQLite result codes meaning "the disk refuses writes" (primary codes; extended ones are & 0xff): full, failing,
# and (faults19) a file that cannot be made or written there (its folder removed, a read-only file system).
SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 8, 10, 13, 14
REFUSALS = (SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN)
# ... and "the outbox file is not a sound database" (damaged, or not ours).
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
SALVAGE_CHUNK = 256  # rows read at a time (by rowid) from a damaged file whose whole read fails


def disk_refused(exc: BaseException) -> bool:
    """True for SQLITE_FULL / SQLITE_IOERR (disk full or failing) and SQLITE_CANTOPEN / SQLITE_READONLY (no file
    can be made or written there), not for a bug in our SQL."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in REFUSALS
    text = str(exc).lower()
    return any(w in text for w in ("disk is full", "disk i/o error", "unable to open database", "readonly database"))


def damaged(exc: BaseException) -> bool:
    """True when SQLite says the file is damaged or not a database (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _ident(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` (device, inode), or None: none is."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_dev, st.st_ino


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _heals(method: Callable[Concatenate[Outbox, _P], _R]) -> Callable[Concatenate[Outbox, _P], _R]:
    """A call that finds the outbox file damaged rebuilds the outbox (what can be read is kept) and is
    made again, once, on the new file (faults19)."""

    def call(self: Outbox, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if not damaged(e):
                raise
            with self._lock:
                self._rebuild(f"damaged ({e})")
        return method(self, *args, **kwargs)

    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


def _open(path: Path) -> sqlite3.Connection:
    """The outbox database (created if new), or OperationalError (closed again) if the disk refuses."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        cols = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
        if "rank" not in cols:  # an outbox written by an older gateway
            db.execute("ALTER TABLE outbox ADD COLUMN rank INTEGER NOT NULL DEFAULT 0")
        db.execute(INDEX)
    except BaseException:
        db.close()
        raise
    return db


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite file


def _header_mended(path: Path, scratch: Path) -> sqlite3.Connection | None:
    """A file SQLite calls not a database may have only its first bytes damaged (the header string; an SD card's
    first sector): a copy in `scratch` (with its -wal) with that string written back, open, or None when SQLite
    still cannot read it. Only the copy is changed: the file itself is moved aside as it is (outside29)."""
    try:
        copy = scratch / "outbox.sqlite3"
        shutil.copyfile(path, copy)
        if Path(f"{path}-wal").exists():
            shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        with copy.open("r+b") as f:
            f.write(SQLITE_MAGIC)
        db = _open(copy)
    except (OSError, sqlite3.Error):
        return None
    try:
        _top_seq(db)
    except sqlite3.Error:
        db.close()
        return None
    return db


def _top_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT v FROM meta WHERE k='seq'").fetchone()
    top = db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
    return max(int(row[0]) if row else 0, int(top))


@dataclass(slots=True)
class _Held:
    """A message held in memory while the disk refuses writes."""

    id: str
    seq: int
    priority: int
    type: str
    created: str
    text: str
    rank: int = 0


@dataclass(frozen=True, slots=True)
class Queued:
    id: str
    seq: int
    type: str
    text: str  # the JSON frame as sent
    deferred: bool = False  # moved behind the others as a suspected poison message


def envelope(msg_id: str, type_: str, seq: int, body: dict[str, Any], t: datetime | None = None) -> str:
    return json.dumps(
        {"id": msg_id, "type": type_, "t": (t or utcnow()).isoformat(), "seq": seq, "body": body},
        separators=(",", ":"),
        ensure_ascii=False,
    )


class Outbox:
    """Thread-safe (one lock); all calls are short, so the asyncio loop may call them directly."""

    def __init__(
        self,
        path: Path,
        max_pending: int = 200_000,
        keep_acked_s: float = 86_400.0,
        *,
        memory_max: int = 10_000,
        retry_s: float = 1.0,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_pending = max_pending
        self.keep_acked_s = keep_acked_s
        self.memory_max = memory_max
        self.retry_s = retry_s
        self.dropped = 0
        self.memory_dropped = 0
        self.disk_full = False
        self.disk_full_episodes = 0
        self.last_disk_error: str | None = None
        self._held: dict[str, _Held] = {}  # in memory while the disk refuses writes, in arrival order
        self._done_later: dict[str, int] = {}  # id → ACKED/REJECTED not yet written
        self._counters_later: dict[str, int] = {}
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._on_disk = True
        self._seq = 0
        self.replaced = 0  # times the outbox file was found damaged, deleted or replaced, and rebuilt
        self.last_damage: str | None = None
        self._ident: tuple[int, int] | None = None
        try:
            try:
                self._db = _open(path)
            except sqlite3.DatabaseError as e:
                if not damaged(e):
                    raise
                # Damaged before we started (an SD card after a power cut). It used to end the gateway at every
                # start (faults19); now it is moved aside and a new outbox made, with the rows a copy whose header
                # string is written back can read (only those bytes damaged: every row was lost; outside29).
                with tempfile.TemporaryDirectory(prefix="outbox-salvage-") as scratch:
                    mended = _header_mended(path, Path(scratch))
                    self._db = mended or _open(Path(":memory:"))
                    self._rebuild(f"damaged ({e})", salvage=mended is not None)
            else:
                try:  # its first read: the seq counter in `meta`, written by every transaction (review19gw)
                    self._seq = _top_seq(self._db)
                except sqlite3.DatabaseError as e:
                    if not damaged(e):
                        self._db.close()
                        raise
                    self._rebuild(f"damaged ({e})")  # the rows are read, as when damage is met running
        except sqlite3.OperationalError as e:
            if not disk_refused(e):
                raise
            # Started on a full (or failing) disk: SQLite cannot even open the outbox (WAL needs its -shm file).
            # Run from memory (an empty scratch outbox) and open the real one when the disk has room (faults18);
            # what the outbox held from before waits for that.
            self._db, self._on_disk = _open(Path(":memory:")), False
            self._refused(e)
        self._seq = max(self._seq, _top_seq(self._db))
        if self._on_disk:
            self._ident = _ident(path)

    def _reopen(self) -> bool:
        """Started on a full disk (or the outbox was made again): open the real outbox now, if the disk lets us.
        Its folder is made again if it was removed (faults19). Lock held."""
        try:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # then SQLite cannot open the file either: SQLITE_CANTOPEN, a refusal like a full disk
            db = _open(self.path)
        except sqlite3.OperationalError as e:
            if not disk_refused(e):
                raise
            self._refused(e)
            return False
        top = _top_seq(db)
        for h in sorted(self._held.values(), key=lambda h: h.seq):
            if h.seq <= top:  # numbered from 0 in memory: the outbox's seq column must stay unique and
                top += 1      # increasing (the sent text keeps its seq: informative, protocol §3.1)
                h.seq = top
        self._seq = max(self._seq, top)
        self._db.close()
        self._db, self._on_disk = db, True
        self._ident = _ident(self.path)
        return True

    def close(self) -> None:
        with self._lock:
            if self._held or self._done_later or self._counters_later:
                try:
                    self._try_disk()  # a last chance for what only memory holds
                except sqlite3.DatabaseError as e:
                    if not damaged(e):
                        raise
                    self._rebuild(f"damaged ({e})")
            if self._held:
                log.error("outbox closed with %d messages only in memory (disk full): they are lost",
                          len(self._held))
            self._db.close()

    # -- a damaged, deleted or replaced outbox file (faults19) -----------------
    def check_file(self) -> bool:
        """Is the file at `path` still the one we write? (Called each second by the gateway's housekeeping.)
        Deleted (an operator freeing space, a clean-up script) or replaced by another file: the outbox is
        rebuilt at `path` from the open database, so a restart loses nothing. False when it was rebuilt."""
        with self._lock:
            if not self._on_disk:
                return True
            now = _ident(self.path)
            if now == self._ident:
                return True
            self._rebuild("deleted" if now is None else "replaced by another file")
            return False

    def _salvage(self) -> None:
        """Everything still readable in the open database that is not acknowledged goes to memory (same ids,
        seqs and ranks), as its band counters do; a damaged page loses only the rows on it. Lock held."""
        cols = "id, seq, priority, type, created, msg, rank"
        rows: list[tuple[Any, ...]] = []
        # NOT INDEXED: the rows are read from the table itself; through `outbox_send` (which `state=0` chooses) one
        # damaged index page failed every read, and the outbox was rebuilt empty (review19gw)
        try:
            rows = self._db.execute(f"SELECT {cols} FROM outbox NOT INDEXED WHERE state=0").fetchall()
        except sqlite3.DatabaseError:
            top = self._seq  # rowids never pass the seq counter (unknown when `meta` was the damaged page)
            try:
                top = max(top, int(self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM outbox").fetchone()[0]))
            except sqlite3.DatabaseError:
                pass
            for lo in range(0, top + 1, SALVAGE_CHUNK):
                try:
                    rows += self._db.execute(f"SELECT {cols} FROM outbox NOT INDEXED WHERE state=0 "
                                             "AND rowid BETWEEN ? AND ?", (lo, lo + SALVAGE_CHUNK - 1)).fetchall()
                except sqlite3.DatabaseError:
                    continue
        for r in rows:
            try:
                h = _Held(str(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), int(r[6]))
            except (TypeError, ValueError):
                continue
            self._held.setdefault(h.id, h)
            self._seq = max(self._seq, h.seq)  # a new message's seq stays unique (the seq column is UNIQUE)
        try:
            for a, q in self._db.execute("SELECT address, seq FROM band_counter"):
                self._counters_later[str(a)] = max(int(q), self._counters_later.get(str(a), int(q)))
        except (sqlite3.DatabaseError, TypeError, ValueError):
            pass

    def _move_aside(self) -> Path | None:
        """The file at `path` (and its -wal / -shm: a stale log must not meet a new database) renamed to
        `NAME.damaged-<UTC time>`; None when there was none."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{utcnow().strftime('%Y%m%dT%H%M%S.%fZ')}")
        moved = None
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
                moved = moved or aside
        return moved

    def _rebuild(self, why: str, *, salvage: bool = True) -> None:
        """The outbox file is damaged, deleted or replaced: keep what can be read (in memory), close it, move
        the file aside, open a new outbox at `path` and write it there (`_try_disk`: the disk-full rules if it
        refuses). Said at ERROR; counted in `replaced`. Lock held."""
        # The write that met the damage left its transaction open: its rows are not stored and are not to be
        # salvaged (put_many, made again, queues them anew; salvaged too, an SOS went twice under two ids).
        self._rollback()
        if salvage:
            self._salvage()
        try:
            self._db.close()  # before anything new exists at path: closing removes its -wal / -shm by name
        except sqlite3.Error:
            pass
        moved = self._move_aside()
        self.replaced += 1
        self.last_damage = f"outbox file {why}" + (f"; moved aside to {moved.name}" if moved else "")
        self._db, self._on_disk = _open(Path(":memory:")), False
        alerts = sum(1 for h in self._held.values() if h.type == "alert")
        log.error("%s: a new outbox is made at %s with the %d pending messages (%d alerts) that could be read",
                  self.last_damage, self.path, len(self._held), alerts)
        self._try_disk()

    # -- disk refusals -------------------------------------------------------
    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite may have rolled back by itself
                pass

    def _refused(self, exc: sqlite3.Error) -> None:
        """The disk refused a write: start (or continue) a disk-full episode."""
        self._retry_at = time.monotonic() + self.retry_s
        self.last_disk_error = f"{type(exc).__name__}: {exc}"
        if not self.disk_full:
            self.disk_full = True
            self.disk_full_episodes += 1
            log.error("outbox disk refuses writes (%s) at %s: holding messages in memory, alerts first, "
                      "until it has room", exc, self.path)

    def _recovered(self) -> None:
        if self.disk_full:
            self.disk_full = False
            log.warning("outbox disk has room again: memory queue written to disk (%d positions/readings "
                        "dropped while it was full so far)", self.memory_dropped)

    def _try_disk(self) -> bool:
        """Write what memory holds (messages, acks, counters) in one transaction. Lock held."""
        if not self._on_disk and not self._reopen():
            return False
        held = sorted(self._held.values(), key=lambda h: h.seq)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._insert(held)
            self._write_done_later()
            self._write_counters(self._counters_later)
            self._db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES ('seq', ?)", (str(self._seq),))
            self._enforce_cap()
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self._rollback()
            if not disk_refused(e):
                raise
            self._refused(e)
            return False
        self._held.clear()
        self._done_later.clear()
        self._counters_later.clear()
        self._recovered()
        return True

    @_heals
    def recover(self) -> bool:
        """During a disk-full episode, try the disk again (at most every `retry_s`). True = on disk."""
        with self._lock:
            if not (self.disk_full or self._held) or time.monotonic() < self._retry_at:
                return not self.disk_full
            return self._try_disk()

    def _hold(self, items: list[_Held]) -> None:
        for h in items:
            self._held[h.id] = h
        extra = sum(1 for h in self._held.values() if h.priority != PRIORITY["alert"]) - self.memory_max
        if extra > 0:  # thin: the oldest positions/readings go, alerts never
            for h in [h for h in self._held.values() if h.priority != PRIORITY["alert"]][:extra]:
                del self._held[h.id]
            self.memory_dropped += extra

    # -- writing -------------------------------------------------------------
    @_heals
    def next_seq(self) -> int:
        """A fresh sequence number (persisted: it never goes back across restarts; while the disk
        refuses writes it is kept in memory and written with the next successful write)."""
        with self._lock:
            self._seq += 1
            try:
                self._db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES ('seq', ?)", (str(self._seq),))
            except sqlite3.OperationalError as e:
                self._rollback()
                if not disk_refused(e):
                    raise
                self._refused(e)
            return self._seq

    def put(self, type_: str, body: dict[str, Any], t: datetime | None = None) -> Queued:
        return self.put_many([(type_, body, t)])[0]

    @_heals
    def put_many(self, items: Iterable[tuple[str, dict[str, Any], datetime | None]]) -> list[Queued]:
        """Store messages in one transaction; they are durable when this returns, unless the disk
        refuses writes: then they are held in memory (see the module doc) and written later."""
        now = utcnow().isoformat()
        with self._lock:
            new: list[_Held] = []
            for type_, body, t in items:
                self._seq += 1
                mid = str(uuid.uuid4())
                new.append(_Held(mid, self._seq, PRIORITY.get(type_, DEFAULT_PRIORITY), type_, now,
                                 envelope(mid, type_, self._seq, body, t)))
            if self.disk_full and time.monotonic() < self._retry_at:
                self._hold(new)
            else:
                self._hold(new)  # written from memory together with anything held before
                try:
                    self._try_disk()
                except BaseException:  # not a disk refusal: nothing of this call stays anywhere
                    for h in new:
                        self._held.pop(h.id, None)
                    raise
        return [Queued(h.id, h.seq, h.type, h.text) for h in new]

    def _insert(self, rows: Sequence[_Held]) -> None:
        self._db.executemany(
            "INSERT INTO outbox(id, seq, priority, type, created, msg, rank) VALUES (?,?,?,?,?,?,?)",
            [(h.id, h.seq, h.priority, h.type, h.created, h.text, h.rank) for h in rows],
        )

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

    # -- sending -------------------------------------------------------------
    @_heals
    def pending(self, limit: int, skip: Iterable[str] = ()) -> list[Queued]:
        """Unacked messages in sending order (not deferred first, alerts first, then seq), not in
        `skip`; those held in memory during a disk-full episode included."""
        if limit <= 0:
            return []
        with self._lock:
            skip_set = set(skip) | self._done_later.keys()
            rows = self._db.execute(
                "SELECT rank, priority, seq, id, type, msg FROM outbox WHERE state=0 "
                "ORDER BY rank, priority, seq LIMIT ?",
                (limit + len(skip_set),),
            ).fetchall()
            held = [(h.rank, h.priority, h.seq, h.id, h.type, h.text) for h in self._held.values()]
        both = sorted([r for r in rows if r[3] not in skip_set] + [h for h in held if h[3] not in skip_set])
        return [Queued(r[3], r[2], r[4], r[5], r[0] > 0) for r in both[:limit]]

    @_heals
    def defer(self, msg_id: str) -> bool:
        """Move one pending message behind all others (it is not dropped). False if unknown."""
        with self._lock:
            (top_db,) = self._db.execute("SELECT COALESCE(MAX(rank), 0) FROM outbox WHERE state=0").fetchone()
            top = max([int(top_db)] + [h.rank for h in self._held.values()]) + 1
            if msg_id in self._held:
                self._held[msg_id].rank = top
                return True
            try:
                return self._db.execute("UPDATE outbox SET rank=? WHERE id=? AND state=0", (top, msg_id)).rowcount > 0
            except sqlite3.OperationalError as e:
                self._rollback()
                if not disk_refused(e):
                    raise
                self._refused(e)
                return False

    def _finish(self, ids: Iterable[str], state: int) -> int:
        now = utcnow().isoformat()
        with self._lock:
            ids = [i for i in dict.fromkeys(ids) if i not in self._done_later]
            in_memory = [i for i in ids if i in self._held]
            for i in in_memory:  # done before it ever reached the disk
                del self._held[i]
            n = len(in_memory)
            rest = [i for i in ids if i not in in_memory]
            if not rest:
                return n
            try:
                cur = self._db.executemany(
                    "UPDATE outbox SET state=?, done_at=? WHERE id=? AND state=0", [(state, now, i) for i in rest]
                )
                return n + cur.rowcount
            except sqlite3.OperationalError as e:
                self._rollback()
                if not disk_refused(e):
                    raise
                self._refused(e)
                marks = ",".join("?" * len(rest))
                known = [r[0] for r in self._db.execute(f"SELECT id FROM outbox WHERE state=0 AND id IN ({marks})", rest)]
                for i in known:
                    self._done_later[i] = state
                return n + len(known)

    def _write_done_later(self) -> None:
        if self._done_later:
            now = utcnow().isoformat()
            self._db.executemany(
                "UPDATE outbox SET state=?, done_at=? WHERE id=? AND state=0",
                [(st, now, i) for i, st in self._done_later.items()],
            )

    @_heals
    def ack(self, ids: Iterable[str]) -> int:
        return self._finish(ids, ACKED)

    @_heals
    def reject(self, ids: Iterable[str]) -> int:
        """The backend called these malformed: re-sending would fail forever."""
        return self._finish(ids, REJECTED)

    # -- the band replay guard's counters ------------------------------------
    def _write_counters(self, seqs: Mapping[str, int]) -> None:
        if seqs:
            now = utcnow().isoformat()
            self._db.executemany(
                "INSERT INTO band_counter(address, seq, saved) VALUES (?,?,?) ON CONFLICT(address) "
                "DO UPDATE SET seq=MAX(seq, excluded.seq), saved=excluded.saved",
                [(a, int(q), now) for a, q in seqs.items()],
            )

    @_heals
    def save_counters(self, seqs: Mapping[str, int]) -> None:
        """Store the replay guard's newest band counters (one transaction; never lowers one). While
        the disk refuses writes they wait in memory and go with the next successful write."""
        if not seqs:
            return
        with self._lock:
            for a, q in seqs.items():
                self._counters_later[a] = max(int(q), self._counters_later.get(a, int(q)))
            if self.disk_full and time.monotonic() < self._retry_at:
                return
            self._try_disk()

    @_heals
    def load_counters(self) -> dict[str, int]:
        with self._lock:
            return {a: int(q) for a, q in self._db.execute("SELECT address, seq FROM band_counter")}

    # -- state -----------------------------------------------------------------
    @_heals
    def depth(self) -> tuple[int, int]:
        """(pending messages, of which alerts), memory included."""
        with self._lock:
            n, a = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(type='alert'), 0) FROM outbox WHERE state=0"
            ).fetchone()
            n -= len(self._done_later)
            a -= sum(1 for i in self._done_later if self._db.execute(
                "SELECT 1 FROM outbox WHERE id=? AND type='alert'", (i,)).fetchone()) if self._done_later else 0
            n += len(self._held)
            a += sum(1 for h in self._held.values() if h.type == "alert")
        return int(n), int(a)

    def memory_queue(self) -> int:
        """Messages held only in memory (disk full)."""
        return len(self._held)

    @_heals
    def prune(self) -> int:
        cutoff = (utcnow() - timedelta(seconds=self.keep_acked_s)).isoformat()
        with self._lock:
            try:
                return self._db.execute("DELETE FROM outbox WHERE state!=0 AND done_at < ?", (cutoff,)).rowcount
            except sqlite3.OperationalError as e:
                self._rollback()
                if not disk_refused(e):
                    raise
                return 0

    @_heals
    def all_ids(self) -> list[tuple[str, str, int]]:
        """(id, type, state) of every row on disk, in seq order (audit and tests)."""
        with self._lock:
            return [(str(r[0]), str(r[1]), int(r[2])) for r in self._db.execute("SELECT id, type, state FROM outbox ORDER BY seq")]
