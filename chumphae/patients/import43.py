"""Patients from the hospital's "43 แฟ้ม" export: PERSON, HOME (with lat/lon) and FUNCTIONAL (ADL).

The format is known from memory, not from a specification at hand
(DOMAIN.md), so the importer is liberal in what it reads and exact in what it
says it could not use: columns are mapped by name (upper-cased), `|` or `,`
separated, UTF-8 or TIS-620 (cp874, what HOSxP often writes), Buddhist-era
birth years accepted. A PERSON row is taken only with a valid 13-digit CID
(check digit), a PID and a name; a patient is found again by HOSPCODE + PID,
else by CID, so running an import twice changes nothing. The report counts and
names rows by file and line only, never by CID or name (PDPA).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.models import Patient
from chumphae.timeutil import utcnow

TABLES = ("PERSON", "HOME", "FUNCTIONAL")
FILE_NAME = re.compile(r"^(PERSON|HOME|FUNCTIONAL)(?:[_\-.].*)?$", re.IGNORECASE)
USED: dict[str, frozenset[str]] = {
    "PERSON": frozenset({"HOSPCODE", "CID", "PID", "HID", "PRENAME", "NAME", "LNAME", "HN", "SEX", "BIRTH",
                         "DISCHARGE"}),
    "HOME": frozenset({"HOSPCODE", "HID", "HOUSE", "VILLAGE", "LATITUDE", "LONGITUDE"}),
    "FUNCTIONAL": frozenset({"HOSPCODE", "PID", "DATE_SERV", "FUNCTIONAL_TEST", "TESTRESULT"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "PERSON": frozenset({"HOSPCODE", "CID", "PID", "NAME"}),
    "HOME": frozenset({"HOSPCODE", "HID", "LATITUDE", "LONGITUDE"}),
    "FUNCTIONAL": frozenset({"HOSPCODE", "PID", "FUNCTIONAL_TEST", "TESTRESULT"}),
}
ADL_TEST = "01"  # FUNCTIONAL_TEST 01 = Barthel ADL (04 = TAI)
LEFT = {"1", "2", "3"}  # DISCHARGE: 1 died, 2 moved away, 3 lost (9 = still here)
THAILAND = (5.5, 20.5, 97.3, 105.7)  # lat min/max, lon min/max


def valid_cid(cid: str) -> bool:
    """13 digits whose last is the check digit: (11 − Σ d_i × (13 − i) mod 11) mod 10."""
    if not re.fullmatch(r"\d{13}", cid):
        return False
    total = sum(int(cid[i]) * (13 - i) for i in range(12))
    return (11 - total % 11) % 10 == int(cid[12])


@dataclass
class ImportReport:
    files: dict[str, str] = field(default_factory=dict)  # table → file name
    rows: Counter[str] = field(default_factory=Counter)  # table → rows read
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, reason
    unused_columns: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)  # things used only in part
    missing: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as text lines: counts, reasons, file:line references; no CID, no names."""
        out = [f"read: {', '.join(f'{t} {self.rows[t]} rows ({self.files[t]})' for t in TABLES if t in self.files)}"]
        if self.missing:
            out.append(f"missing files: {', '.join(self.missing)}")
        out.append(f"patients taken (new): {self.created}; updated: {self.updated}; unchanged: {self.unchanged}; "
                   f"refused: {len(self.refused)}")
        for reason, n in sorted(Counter(r for _, _, r in self.refused).items()):
            where = [f"{f}:{line}" for f, line, r in self.refused if r == reason][:10]
            out.append(f"  refused {n} × {reason}: {', '.join(where)}{' …' if n > 10 else ''}")
        for table, cols in self.unused_columns.items():
            if cols:
                out.append(f"columns not used in {table}: {', '.join(cols)}")
        for note, n in sorted(self.notes.items()):
            out.append(f"note: {n} × {note}")
        return out


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (upper-case names) and rows as (line number, {name: value}); `|` or `,`; UTF-8 or cp874."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp874", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = "|" if first.count("|") >= first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().upper() for h in next(reader, [])]
    rows = []
    for lineno, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        rows.append((lineno, {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}))
    return header, rows


def _birth(text: str) -> date | None:
    if not re.fullmatch(r"\d{8}", text):
        return None
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    if year > 2400:  # Buddhist era
        year -= 543
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def find_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        m = FILE_NAME.match(p.stem) if p.is_file() else None
        if m and m.group(1).upper() not in found:
            found[m.group(1).upper()] = p
    return found


def _load(report: ImportReport, table: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    header, rows = read_table(path)
    report.files[table], report.rows[table] = path.name, len(rows)
    report.unused_columns[table] = [h for h in header if h and h not in USED[table]]
    lacking = REQUIRED[table] - set(header)
    if lacking:
        report.refused.append((path.name, 1, f"missing column(s) {', '.join(sorted(lacking))}"))
        return []
    return rows


def _homes(report: ImportReport, path: Path | None) -> dict[tuple[str, str], dict[str, object]]:
    homes: dict[tuple[str, str], dict[str, object]] = {}
    for _line, r in _load(report, "HOME", path) if path else []:
        lat, lon = _float(r.get("LATITUDE", "")), _float(r.get("LONGITUDE", ""))
        home: dict[str, object] = {"house_no": r.get("HOUSE") or None, "village": r.get("VILLAGE") or None}
        if lat is not None and lon is not None and THAILAND[0] <= lat <= THAILAND[1] and THAILAND[2] <= lon <= THAILAND[3]:
            home["home_lat"], home["home_lon"] = lat, lon
        elif r.get("LATITUDE") or r.get("LONGITUDE"):
            report.notes["HOME position not in Thailand or not a number (home kept without a position)"] += 1
        homes[(r["HOSPCODE"], r["HID"])] = home
    return homes


def _adl(report: ImportReport, path: Path | None) -> dict[tuple[str, str], int]:
    """The newest Barthel ADL (test 01) per HOSPCODE + PID."""
    best: dict[tuple[str, str], tuple[str, int]] = {}
    for line, r in _load(report, "FUNCTIONAL", path) if path else []:
        if r["FUNCTIONAL_TEST"].zfill(2) != ADL_TEST:
            report.notes["FUNCTIONAL rows of other tests (not Barthel ADL 01) skipped"] += 1
            continue
        score = int(r["TESTRESULT"]) if r["TESTRESULT"].isdigit() else -1
        if not 0 <= score <= 20:
            assert path is not None
            report.refused.append((path.name, line, "ADL score not 0–20"))
            continue
        key, when = (r["HOSPCODE"], r["PID"]), r.get("DATE_SERV", "")
        if key not in best or when >= best[key][0]:
            best[key] = (when, score)
    return {k: v[1] for k, v in best.items()}


def import_folder(session: Session, folder: Path) -> ImportReport:
    """Create or update patients from the folder's PERSON (+ HOME, FUNCTIONAL) files."""
    report = ImportReport()
    files = find_files(folder)
    report.missing = [t for t in TABLES if t not in files]
    if "PERSON" not in files:
        return report
    homes = _homes(report, files.get("HOME"))
    adl = _adl(report, files.get("FUNCTIONAL"))
    used_homes = used_adl = 0
    person = files["PERSON"]
    seen: set[tuple[str, str]] = set()
    for line, r in _load(report, "PERSON", person):
        hospcode, pid, cid = r["HOSPCODE"], r["PID"], r["CID"]
        reason = ("no HOSPCODE or PID" if not hospcode or not pid else "CID not 13 digits with a valid check digit"
                  if not valid_cid(cid) else "no NAME" if not r["NAME"] else "discharged (died, moved or lost)"
                  if r.get("DISCHARGE", "") in LEFT else "PID repeated in the file" if (hospcode, pid) in seen else None)
        if reason:
            report.refused.append((person.name, line, reason))
            continue
        seen.add((hospcode, pid))
        values: dict[str, object] = {
            "hospcode": hospcode[:5], "pid": pid[:15], "cid": cid,
            "name_th": " ".join(x for x in (r["NAME"], r.get("LNAME", "")) if x)[:200],
            "prename": r.get("PRENAME") or None if not r.get("PRENAME", "").isdigit() else None,
            "hn": r.get("HN") or None, "sex": r.get("SEX") if r.get("SEX") in ("1", "2") else None,
            "birth_date": _birth(r.get("BIRTH", "")),
        }
        if r.get("PRENAME", "").isdigit():
            report.notes["PRENAME given as a code (not mapped; left empty)"] += 1
        if r.get("BIRTH") and values["birth_date"] is None:
            report.notes["BIRTH not a date YYYYMMDD (left empty)"] += 1
        home = homes.get((hospcode, r.get("HID", "")))
        if home is not None:
            values.update(home)
            used_homes += 1
        if (hospcode, pid) in adl:
            values["adl_score"] = adl[(hospcode, pid)]
            used_adl += 1
        _upsert(session, report, values)
    if homes and used_homes < len(homes):
        report.notes["HOME rows matching no imported person"] += len(homes) - used_homes
    if adl and used_adl < len(adl):
        report.notes["ADL scores matching no imported person"] += len(adl) - used_adl
    session.flush()
    audit.record(session, user=None, action="create", entity="patient_import", detail={
        "created": report.created, "updated": report.updated, "refused": len(report.refused)})
    return report


def _upsert(session: Session, report: ImportReport, values: dict[str, object]) -> None:
    patient = session.exec(select(Patient).where(Patient.hospcode == values["hospcode"], Patient.pid == values["pid"])
                           ).first() or session.exec(select(Patient).where(Patient.cid == values["cid"])
                                                     .order_by(col(Patient.id))).first()
    if patient is None:
        session.add(Patient(**values))  # type: ignore[arg-type]
        report.created += 1
        return
    changed = {k: v for k, v in values.items() if v is not None and getattr(patient, k) != v}
    if not changed:
        report.unchanged += 1
        return
    for k, v in changed.items():
        setattr(patient, k, v)
    patient.updated_at = utcnow()
    session.add(patient)
    report.updated += 1
