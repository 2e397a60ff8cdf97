"""Patients from the hospital's "43 แฟ้ม" export: PERSON, HOME (by HID), FUNCTIONAL (ADL), DISABILITY.

Hospitals export the 43 files as one zip, `F43_<HOSPCODE>_<timestamp>.zip`
holding `PERSON.txt`, `HOME.txt`, `FUNCTIONAL.txt`, `DISABILITY.txt`, …
(`|`-separated, a header row of upper-case names, UTF-8 with BOM or cp874);
`import_export` takes the zip or a folder of the same files. Columns are
mapped by name, `|` or `,` separated, Buddhist-era dates accepted. Codes are
the verified ones in DOMAIN.md: DISCHARGE (1 died, 2 moved away, 3 missing:
refused; 9 not discharged), PRENAME (3-digit code of the Department of
Provincial Administration → title), FUNCTIONAL_TEST 01 = Barthel ADL (its
DEPENDENT 1–3 cross-checked), HOME joined by HOSPCODE + HID, TYPEAREA (1, 3,
5 live in the area; 2 and 4 do not: refused), DISABILITY (DISABTYPE 1–7 kept
as a line in the patient's notes).

HOME.VILLAGE is the village *number* within the tambon (หมู่ที่, `01`), not a
name, and the same number recurs in every tambon. The patient's `village` is
the name the district uses (the caregiver page and the district overview group
by it): the `village` of the nearest tax-map landmark within
`VILLAGE_RADIUS_M` of the home position, as the demo names its villages (an
empty map gets the shipped one first, as `chumphae serve` does; a dry run
names them from that map's file without storing it); a
home without a position, or with no landmark that near, gets `หมู่ที่ N`
(with ` ต.<TAMBON>` when the file has the tambon code).

A PERSON row is taken only with a valid 13-digit CID (check digit), a PID and
a name; a patient is found again by HOSPCODE + PID, else by CID, so running an
import twice changes nothing. A bad zip, a missing file or a missing column
raises `ImportRefused` before anything is written. A file that is neither
UTF-8 nor cp874 (a byte cp874 does not define) is not read at all, never
with its bytes replaced (a name silently changed): a PERSON file so is an
`ImportRefused`, any other a refusal naming the file and the byte's line. The report counts and
names rows by file and line only, never by CID or name (PDPA).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from chumphae import audit
from chumphae.models import Patient
from chumphae.timeutil import utcnow

if TYPE_CHECKING:
    from chumphae.map.layers import MapLayers

TABLES = ("PERSON", "HOME", "FUNCTIONAL", "DISABILITY")
IN_ZIP = ("PERSON", "HOME", "FUNCTIONAL")  # a hospital's zip always has these; a zip without one is refused
FILE_NAME = re.compile(r"^(PERSON|HOME|FUNCTIONAL|DISABILITY)(?:[_\-.].*)?$", re.IGNORECASE)
USED: dict[str, frozenset[str]] = {
    "PERSON": frozenset({"HOSPCODE", "CID", "PID", "HID", "PRENAME", "NAME", "LNAME", "HN", "SEX", "BIRTH",
                         "DISCHARGE", "TYPEAREA"}),
    "HOME": frozenset({"HOSPCODE", "HID", "HOUSE", "VILLAGE", "TAMBON", "AMPUR", "CHANGWAT", "LATITUDE",
                       "LONGITUDE"}),
    "FUNCTIONAL": frozenset({"HOSPCODE", "PID", "DATE_SERV", "FUNCTIONAL_TEST", "TESTRESULT", "DEPENDENT"}),
    "DISABILITY": frozenset({"HOSPCODE", "PID", "DISABTYPE", "DATE_DETECT", "DATE_DISAB"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "PERSON": frozenset({"HOSPCODE", "CID", "PID", "NAME"}),
    "HOME": frozenset({"HOSPCODE", "HID", "LATITUDE", "LONGITUDE"}),
    "FUNCTIONAL": frozenset({"HOSPCODE", "PID", "FUNCTIONAL_TEST", "TESTRESULT"}),
    "DISABILITY": frozenset({"HOSPCODE", "PID", "DISABTYPE"}),
}
ADL_TEST = "01"  # FUNCTIONAL_TEST 01 = Barthel ADL (02 IADL, 03 mental state, 04 TAI, 08 other, 09 unspecified)
DISCHARGED = {"1": "died", "2": "moved away", "3": "missing"}  # DISCHARGE 9 = not discharged
AWAY = {"2": "registered here but not living here", "4": "living outside the area"}  # TYPEAREA 1, 3, 5 live here
PRENAMES = {"001": "ด.ช.", "002": "ด.ญ.", "003": "นาย", "004": "น.ส.", "005": "นาง"}  # DOPA codes (504 in all)
DEPENDENT_GROUPS = {"1": range(12, 21), "2": range(5, 12), "3": range(0, 5)}  # 1 not, 2 slightly, 3 highly
DISABILITY_TYPES = {  # DISABTYPE, Ministry of Social Development's seven types
    "1": ("การเห็น", "seeing"), "2": ("การได้ยินหรือสื่อความหมาย", "hearing or communicating"),
    "3": ("การเคลื่อนไหวหรือทางร่างกาย", "moving or physical"), "4": ("จิตใจหรือพฤติกรรม", "mental or behavioural"),
    "5": ("สติปัญญา", "intellectual"), "6": ("การเรียนรู้", "learning"), "7": ("ออทิสติก", "autism"),
}
DISABILITY_NOTE = "[43 DISABILITY]"
# HOME.TAMBON within Chumphae (CHANGWAT 40 Khon Kaen, AMPUR 05 Chumphae): geocodes 400501–400512 of the Department
# of Provincial Administration, as listed by the `geothai` package 3.2.1 (data CC BY 4.0, GeoThai/data).
CHUMPHAE = ("40", "05")
CHUMPHAE_TAMBONS = {
    "01": ("ชุมแพ", "Chum Phae"), "02": ("โนนหัน", "Non Han"), "03": ("นาหนองทุ่ม", "Na Nong Thum"),
    "04": ("โนนอุดม", "Non Udom"), "05": ("ขัวเรียง", "Khua Riang"), "06": ("หนองไผ่", "Nong Phai"),
    "07": ("ไชยสอ", "Chai So"), "08": ("วังหินลาด", "Wang Hin Lat"), "09": ("นาเพียง", "Na Phiang"),
    "10": ("หนองเขียด", "Nong Khiat"), "11": ("หนองเสาเล้า", "Nong Sao Lao"), "12": ("โนนสะอาด", "Non Sa-at"),
}


class ImportRefused(Exception):
    """The export cannot be read as a whole (bad zip, missing file or column): nothing was imported."""


class Undecodable(ValueError):
    """A file neither UTF-8 nor cp874: the first byte cp874 does not define, and its line."""

    def __init__(self, byte: int, line: int, *, utf8: bool = False) -> None:
        self.byte, self.line = byte, line
        super().__init__(f"byte 0x{byte:02X} is not UTF-8 (and the file is not cp874)" if utf8
                         else f"byte 0x{byte:02X} is neither UTF-8 nor cp874")
FIELD_COUNT = "\0fields"  # in a row whose field count is not the header's: that count
THAILAND = (5.5, 20.5, 97.3, 105.7)  # lat min/max, lon min/max
VILLAGE_RADIUS_M = 2_000.0  # a home this close to a tax-map landmark takes that landmark's village name


def valid_cid(cid: str) -> bool:
    """13 digits whose last is the check digit: (11 − Σ d_i × (13 − i) mod 11) mod 10."""
    if not re.fullmatch(r"[0-9]{13}", cid):  # ASCII: `\d` takes Thai digits (๑๒…), int() reads them
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
    still_active: list[int] = field(default_factory=list)  # patient ids the export says left (DISCHARGE, TYPEAREA)
    trailing_bar: bool | None = None  # the export ends rows with a `|` its headers lack (None: each file decides)

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
        if self.still_active:
            ids = ", ".join(str(i) for i in self.still_active[:20]) + (" …" if len(self.still_active) > 20 else "")
            out.append(f"still on the programme though the export says they left (died, moved, missing or living "
                       f"elsewhere): patient {ids}; take them off with PATCH active=false if so")
        for table, cols in self.unused_columns.items():
            if cols:
                out.append(f"columns not used in {table}: {', '.join(cols)}")
        for note, n in sorted(self.notes.items()):
            out.append(f"note: {n} × {note}")
        return out


def _text(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else cp874; `Undecodable` if neither (no byte is replaced: a name would
    change and nothing say so)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        utf8_at = e.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
    try:
        return raw.decode("cp874")
    except UnicodeDecodeError as e:
        # The bad byte is where the file's own encoding stopped: the one that read further (a UTF-8 file with
        # one bad byte stops cp874 at its first Thai letter, a cp874 file stops UTF-8 there).
        at = max(e.start, utf8_at)
        raise Undecodable(raw[at], raw.count(b"\n", 0, at) + 1, utf8=at > e.start) from None


def _split(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (upper-case names) and the non-blank rows' fields with their line numbers; `|` or `,`."""
    first = text.split("\n", 1)[0]
    delimiter = "|" if first.count("|") >= first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().upper() for h in next(reader, [])]
    if len(header) > 1 and not header[-1]:
        header.pop()  # a header ending with the delimiter: its rows, with or without one, read as below
    return header, [(lineno, values) for lineno, values in enumerate(reader, start=2) if any(v.strip() for v in values)]


def read_table(data: bytes | str, trailing: bool | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (upper-case names) and rows as (line number, {name: value}); `|` or `,`; bytes UTF-8 or cp874
    (`Undecodable` if neither), or the text already decoded by `_text`.
    A row with more or fewer fields than the header has its count under `FIELD_COUNT` (refused by `_load`).
    `trailing`: the export ends its rows with a delimiter its headers lack (None: this file's rows decide,
    `_trailing_delimiter`); then a row's empty last field beyond the header is dropped (fix19)."""
    header, lines = _split(_text(data) if isinstance(data, bytes) else data)
    if trailing is None:
        trailing = _trailing_delimiter(header, [values for _, values in lines])
    if trailing:
        lines = [(lineno, values[:-1] if len(values) > len(header) and not values[-1].strip() else values)
                 for lineno, values in lines]
    rows = []
    for lineno, values in lines:
        row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        if len(values) != len(header):
            row[FIELD_COUNT] = str(len(values))
        rows.append((lineno, row))
    return header, rows


def _trailing_delimiter(header: list[str], rows: list[list[str]]) -> bool:
    """Rows that end with a `|` their header does not: every row's last field empty, and more than half of at
    least two rows exactly one field longer than the header. Then that field is the delimiter's, not data (a
    `|` inside a name still leaves one field too many, and is refused); a lone row with one empty field too
    many stays refused: it may be a shifted one."""
    extra = sum(len(r) == len(header) + 1 for r in rows)
    return extra >= 2 and 2 * extra > len(rows) and all(len(r) > len(header) and not r[-1].strip() for r in rows)


def _ends_rows_with_delimiter(text: str) -> bool:
    """This file shows the export's habit of a delimiter after each row's last field (`_trailing_delimiter`)."""
    header, lines = _split(text)
    return _trailing_delimiter(header, [values for _, values in lines])


def _birth(text: str) -> date | None:
    if not re.fullmatch(r"[0-9]{8}", text):
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


@dataclass(frozen=True, slots=True)
class Source:
    """One table's file: its name (as shown in the report) and its bytes."""

    name: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Decoded:
    """One table's file decoded once (`_text`): its name and its text."""

    name: str
    text: str


def find_files(folder: Path) -> dict[str, Source]:
    found: dict[str, Source] = {}
    for p in sorted(folder.iterdir()):
        m = FILE_NAME.match(p.stem) if p.is_file() else None
        if m and m.group(1).upper() not in found:
            found[m.group(1).upper()] = Source(p.name, p.read_bytes())
    return found


def read_zip(path: Path) -> dict[str, Source]:
    """The tables of an `F43_<HOSPCODE>_<timestamp>.zip` (members matched by name, any folder inside)."""
    found: dict[str, Source] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                stem = Path(info.filename).stem
                m = FILE_NAME.match(stem) if not info.is_dir() else None
                if m and m.group(1).upper() not in found:
                    found[m.group(1).upper()] = Source(Path(info.filename).name, z.read(info))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        raise ImportRefused(f"{path.name} is not a readable zip ({e}); nothing was imported") from None
    lacking = [t for t in IN_ZIP if t not in found]
    if lacking:
        raise ImportRefused(f"{path.name} has no {', '.join(t + '.txt' for t in lacking)}; nothing was imported")
    return found


def open_export(path: Path) -> dict[str, Source]:
    """The tables of a zip or a folder; `ImportRefused` if neither, or if it has no PERSON file."""
    if path.is_dir():
        files = find_files(path)
    elif path.is_file():
        files = read_zip(path)
    else:
        raise ImportRefused(f"{path} is neither a folder nor a zip file")
    if "PERSON" not in files:
        raise ImportRefused(f"no PERSON file in {path} (looked for PERSON.txt, person.csv, PERSON_*.txt …)")
    return files


def _load(report: ImportReport, table: str, src: Decoded | None) -> list[tuple[int, dict[str, str]]]:
    if src is None:
        return []
    header, rows = read_table(src.text, report.trailing_bar)
    report.files[table], report.rows[table] = src.name, len(rows)
    report.unused_columns[table] = [h for h in header if h and h not in USED[table]]
    lacking = REQUIRED[table] - set(header)
    if lacking:
        raise ImportRefused(f"{src.name}: missing column(s) {', '.join(sorted(lacking))}; nothing was imported")
    kept = []
    for line, r in rows:
        if FIELD_COUNT in r:
            report.refused.append((src.name, line, f"{r[FIELD_COUNT]} fields where the header has {len(header)}"))
        else:
            kept.append((line, r))
    return kept


def _homes(report: ImportReport, src: Decoded | None) -> dict[tuple[str, str], dict[str, object]]:
    homes: dict[tuple[str, str], dict[str, object]] = {}
    for _line, r in _load(report, "HOME", src):
        lat, lon = _float(r.get("LATITUDE", "")), _float(r.get("LONGITUDE", ""))
        home: dict[str, object] = {"house_no": r.get("HOUSE") or None,
                                   "village": moo_name(r.get("VILLAGE", ""), r.get("TAMBON", ""),
                                                       r.get("AMPUR", ""), r.get("CHANGWAT", ""))}
        if lat is not None and lon is not None and THAILAND[0] <= lat <= THAILAND[1] and THAILAND[2] <= lon <= THAILAND[3]:
            home["home_lat"], home["home_lon"] = lat, lon
        elif r.get("LATITUDE") or r.get("LONGITUDE"):
            report.notes["HOME position not in Thailand or not a number (home kept without a position)"] += 1
        homes[(r["HOSPCODE"], r["HID"])] = home
    return homes


def moo_name(village: str, tambon: str = "", ampur: str = "", changwat: str = "") -> str | None:
    """HOME.VILLAGE `07` of TAMBON `10` as people read it, Thai and English: `หมู่ที่ 7 ต.หนองเขียด / Moo 7,
    Nong Khiat` (the tambon named when AMPUR and CHANGWAT are Chumphae's or left empty, else its code:
    `หมู่ที่ 7 ต.10 / Moo 7, tambon 10`); None when there is no village number."""
    v = village.strip()
    if not v:
        return None
    n = str(int(v)) if v.isdigit() else v
    code = tambon.strip()
    here = all(got.strip().zfill(2) in ("00", want) for got, want in zip((changwat, ampur), CHUMPHAE, strict=True))
    name = CHUMPHAE_TAMBONS.get(code.zfill(2)) if here and code.isdigit() else None
    th, en = (f" ต.{name[0]}", f", {name[1]}") if name else (f" ต.{code}", f", tambon {code}") if code else ("", "")
    return f"หมู่ที่ {n}{th} / Moo {n}{en}"[:64]


def _name_villages(session: Session, report: ImportReport, homes: dict[tuple[str, str], dict[str, object]], *,
                   dry_run: bool = False) -> None:
    """Homes with a position take the village name of the nearest tax-map landmark within VILLAGE_RADIUS_M."""
    placed = [(h, lat, lon) for h in homes.values()
              if isinstance(lat := h.get("home_lat"), float) and isinstance(lon := h.get("home_lon"), float)]
    if not placed:
        return
    from chumphae.map.store import load_default_map, load_layers, map_info  # (shapely, numpy) only when needed

    empty = not map_info(session)
    if empty and not dry_run:
        # As `chumphae serve` does at its start: else the names would depend on whether the backend had ever run
        # before this import (หมู่ที่ N before, the map's village after), and importing the same export again
        # after the first start would "update" every placed patient.
        load_default_map(session)
        report.notes["the map was empty: the shipped tax map loaded first, as `chumphae serve` does"] += 1
    elif empty:  # a dry run: the same names, without storing the map (~6 s) only to roll it back
        report.notes["the map is empty: villages named from the shipped tax map's file, not loaded (dry run; "
                     "the import loads it first, as `chumphae serve` does)"] += 1
    layers: MapLayers | None
    try:
        layers = _shipped_landmarks() if empty and dry_run else load_layers(session)
    except ValueError:  # no map at all
        layers = None
    if layers is None or not len(layers.landmarks):
        report.notes["no tax map loaded: villages named หมู่ที่ N ต.<tambon> / Moo N, <tambon>"] += 1
        return
    x, y = layers.metric.xy([lon for _h, _lat, lon in placed], [lat for _h, lat, _lon in placed])
    nearest, dist = layers.landmarks.nearest(x, y)
    for (home, _lat, _lon), k, d in zip(placed, nearest.tolist(), dist.tolist(), strict=True):
        name = layers.landmarks.props[k].get("village") if k >= 0 and d <= VILLAGE_RADIUS_M else None
        if name:
            home["village"] = str(name)[:64]
        else:
            report.notes["HOME position far from every tax-map landmark (village named หมู่ที่ N ต.<tambon>)"] += 1


def _shipped_landmarks() -> MapLayers:
    """The landmarks `load_default_map` would store, read from the same file, in the metric CRS `load_layers`
    would pick then (the UTM zone of all four layers' extent): the same nearest landmark for every home.
    ValueError if the file has no feature at all."""
    import shapely

    from chumphae.config import get_settings
    from chumphae.map.crs import Metric
    from chumphae.map.importer import LAYERS, read_layer
    from chumphae.map.layers import MapLayers
    from chumphae.map.store import DEFAULT_DATASET, DEFAULT_MAP

    path = get_settings().map_path or DEFAULT_MAP  # as load_default_map
    records = [r for layer in LAYERS for r in read_layer(path, layer, dataset=DEFAULT_DATASET).records]
    if not records:
        raise ValueError(f"no map features in {path.name}")
    metric = Metric.for_bounds(*shapely.total_bounds([r.geom for r in records]))
    return MapLayers.from_records([r for r in records if r.layer == "landmarks"], metric)


def _adl(report: ImportReport, src: Decoded | None) -> dict[tuple[str, str], int]:
    """The newest Barthel ADL (test 01) per HOSPCODE + PID; DEPENDENT (1–3) checked against the score."""
    best: dict[tuple[str, str], tuple[str, int]] = {}
    for line, r in _load(report, "FUNCTIONAL", src):
        if r["FUNCTIONAL_TEST"].zfill(2) != ADL_TEST:
            report.notes["FUNCTIONAL rows of other tests (not Barthel ADL 01) skipped"] += 1
            continue
        score = int(r["TESTRESULT"]) if r["TESTRESULT"].isdigit() else -1
        if not 0 <= score <= 20:
            assert src is not None
            report.refused.append((src.name, line, "ADL score not 0–20"))
            continue
        dependent = r.get("DEPENDENT", "")
        if dependent in DEPENDENT_GROUPS and score not in DEPENDENT_GROUPS[dependent]:
            report.notes["FUNCTIONAL DEPENDENT disagrees with the ADL score's group (the score is used)"] += 1
        key, when = (r["HOSPCODE"], r["PID"]), r.get("DATE_SERV", "")
        if key not in best or when >= best[key][0]:
            best[key] = (when, score)
    return {k: v[1] for k, v in best.items()}


def _disabilities(report: ImportReport, src: Decoded | None) -> dict[tuple[str, str], str]:
    """Per HOSPCODE + PID, the patient's disability types as one Thai/English notes line."""
    types: dict[tuple[str, str], set[str]] = {}
    for line, r in _load(report, "DISABILITY", src):
        kind = r["DISABTYPE"].lstrip("0")
        if kind not in DISABILITY_TYPES:
            assert src is not None
            report.refused.append((src.name, line, "DISABTYPE not 1–7"))
            continue
        types.setdefault((r["HOSPCODE"], r["PID"]), set()).add(kind)
    return {key: f"{DISABILITY_NOTE} ความพิการ / disability: " + "; ".join(
        f"{k} {DISABILITY_TYPES[k][0]} / {DISABILITY_TYPES[k][1]}" for k in sorted(kinds))
        for key, kinds in types.items()}


def _with_disability(notes: str | None, line: str | None) -> str | None:
    """The notes with the 43-file disability line replaced (other notes kept as written)."""
    kept = [x for x in (notes or "").split("\n") if x and not x.startswith(DISABILITY_NOTE)]
    return "\n".join(kept + ([line] if line else [])) or None


def _refusal(r: dict[str, str], seen: set[tuple[str, str]]) -> str | None:
    hospcode, pid = r["HOSPCODE"], r["PID"]
    discharge, typearea = r.get("DISCHARGE", "").strip(), r.get("TYPEAREA", "").strip()
    if not hospcode or not pid:
        return "no HOSPCODE or PID"
    if not valid_cid(r["CID"]):
        return "CID not 13 digits with a valid check digit"
    if not r["NAME"]:
        return "no NAME"
    if discharge in DISCHARGED:
        return f"discharged: {DISCHARGED[discharge]} (DISCHARGE {discharge})"
    if typearea in AWAY:
        return f"{AWAY[typearea]} (TYPEAREA {typearea})"
    if (hospcode, pid) in seen:
        return "PID repeated in the file"
    return None


def _prename(report: ImportReport, code: str) -> str | None:
    code = code.strip()
    if not code:
        return None
    if not code.isdigit():
        return code[:32]  # an export that writes the title itself
    title = PRENAMES.get(code.zfill(3))
    if title is None:
        report.notes["PRENAME code not among 001–005 (left empty)"] += 1
    return title


def import_folder(session: Session, folder: Path) -> ImportReport:
    """Create or update patients from a folder (kept for callers of the first version)."""
    return import_export(session, folder)


def import_export(session: Session, path: Path, *, dry_run: bool = False) -> ImportReport:
    """Create or update patients from an F43 zip or a folder: PERSON (+ HOME, FUNCTIONAL, DISABILITY).
    Raises `ImportRefused` (nothing added to the session) when the export cannot be read whole.
    `dry_run`: the caller rolls the session back; an empty map is then read from its file, not stored."""
    report = ImportReport()
    files: dict[str, Decoded] = {}
    sources = open_export(path)
    report.missing = [t for t in TABLES if t not in sources]
    for table, src in sources.items():  # each file decoded once, before any other reading: nothing is read
        try:                            # from a file that does not decode
            files[table] = Decoded(src.name, _text(src.raw))
        except Undecodable as e:
            if table == "PERSON":
                raise ImportRefused(f"{src.name}: line {e.line}: {e}; nothing was imported") from None
            report.refused.append((src.name, e.line, f"{e}: nothing read from the file"))
    report.trailing_bar = any(_ends_rows_with_delimiter(src.text) for src in files.values())
    homes = _homes(report, files.get("HOME"))
    _name_villages(session, report, homes, dry_run=dry_run)
    adl = _adl(report, files.get("FUNCTIONAL"))
    disabilities = _disabilities(report, files.get("DISABILITY"))
    person = files["PERSON"]
    people = _load(report, "PERSON", person)  # all files read and checked before the first write
    used_homes = used_adl = used_disab = 0
    seen: set[tuple[str, str]] = set()
    for line, r in people:
        hospcode, pid, cid = r["HOSPCODE"], r["PID"], r["CID"]
        reason = _refusal(r, seen)
        if reason:
            report.refused.append((person.name, line, reason))
            if reason.startswith(("discharged", AWAY.get(r.get("TYPEAREA", "").strip(), "\0"))):
                known = _existing(session, hospcode, pid, cid)
                if known is not None and known.active:  # the export says they left: tell, do not decide
                    report.still_active.append(known.id or 0)
            continue
        seen.add((hospcode, pid))
        values: dict[str, object] = {
            "hospcode": hospcode[:5], "pid": pid[:15], "cid": cid,
            "name_th": " ".join(x for x in (r["NAME"], r.get("LNAME", "")) if x)[:200],
            "prename": _prename(report, r.get("PRENAME", "")),
            "hn": r.get("HN") or None, "sex": r.get("SEX") if r.get("SEX") in ("1", "2") else None,
            "birth_date": _birth(r.get("BIRTH", "")),
        }
        if r.get("BIRTH") and values["birth_date"] is None:
            report.notes["BIRTH not a date YYYYMMDD (left empty)"] += 1
        home = homes.get((hospcode, r.get("HID", "")))
        if home is not None:
            values.update(home)
            used_homes += 1
        elif "HOME" in files:  # no home: no safe zone can be built until one is set (PATCH home_…)
            report.notes["PERSON HID not in HOME (patient kept without a home; set one before a safe zone)"] += 1
        if (hospcode, pid) in adl:
            values["adl_score"] = adl[(hospcode, pid)]
            used_adl += 1
        disability = disabilities.get((hospcode, pid))
        used_disab += disability is not None
        _upsert(session, report, values, disability=disability)
    if homes and used_homes < len(homes):
        report.notes["HOME rows matching no imported person"] += len(homes) - used_homes
    if adl and used_adl < len(adl):
        report.notes["ADL scores matching no imported person"] += len(adl) - used_adl
    if disabilities and used_disab < len(disabilities):
        report.notes["DISABILITY rows matching no imported person"] += len(disabilities) - used_disab
    session.flush()
    audit.record(session, user=None, action="create", entity="patient_import", detail={
        "created": report.created, "updated": report.updated, "refused": len(report.refused)})
    return report


def _existing(session: Session, hospcode: str, pid: str, cid: str) -> Patient | None:
    """The patient a PERSON row stands for: by HOSPCODE + PID, else by CID."""
    found = session.exec(select(Patient).where(Patient.hospcode == hospcode[:5], Patient.pid == pid[:15])).first()
    if found is None and cid:
        found = session.exec(select(Patient).where(Patient.cid == cid).order_by(col(Patient.id))).first()
    return found


def _upsert(session: Session, report: ImportReport, values: dict[str, object], *, disability: str | None) -> None:
    patient = _existing(session, str(values["hospcode"]), str(values["pid"]), str(values["cid"]))
    if patient is None:
        session.add(Patient(**values, notes=_with_disability(None, disability)))  # type: ignore[arg-type]
        report.created += 1
        return
    values = {**values, "notes": _with_disability(patient.notes, disability)}
    changed = {k: v for k, v in values.items() if (v is not None or k == "notes") and getattr(patient, k) != v}
    if not changed:
        report.unchanged += 1
        return
    for k, v in changed.items():
        setattr(patient, k, v)
    patient.updated_at = utcnow()
    session.add(patient)
    report.updated += 1
