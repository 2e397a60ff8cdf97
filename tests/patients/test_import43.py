"""Patients from a 43-file export (zip or folder; PERSON, HOME, FUNCTIONAL, DISABILITY): taken, updated,
refused by the verified codes; a bad export imports nothing; no CID or name printed."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.cli import app as cli
from chumphae.config import get_settings
from chumphae.db import make_engine
from chumphae.errors import ConfigError
from chumphae.map.store import map_info
from chumphae.models import Patient
from chumphae.patients.import43 import import_folder, valid_cid


def cid(first12: str) -> str:
    total = sum(int(first12[i]) * (13 - i) for i in range(12))
    return first12 + str((11 - total % 11) % 10)


GOOD1, GOOD2, GOOD3 = cid("140990000001"), cid("340010045678"), cid("110020030040")
BAD_CHECK = GOOD1[:12] + str((int(GOOD1[12]) + 1) % 10)


def write_export(folder: Path, *, adl_newest: str = "9", encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "PERSON.txt").write_text("\n".join([
        "HOSPCODE|CID|PID|HID|PRENAME|NAME|LNAME|HN|SEX|BIRTH|MSTATUS|DISCHARGE|TYPEAREA|D_UPDATE",
        f"10707|{GOOD1}|000101|H01|นาง|สมศรี|ใจดี|HN101|2|24830501|2|9|1|20250110",
        f"10707|{GOOD2}|000102|H02|003|บุญมี|มีสุข||1|19380214|1|9|3|20250110",
        f"10707|{BAD_CHECK}|000103|H03|นาย|ผิด|เลขบัตร||1|19400101|1|9|1|20250110",
        f"10707|{GOOD3}||H04|นาย|ไม่มี|รหัส||1|19400101|1|9|1|20250110",
        f"10707|{cid('550010000009')}|000105|H05|นาย|เสีย|ชีวิต||1|19300101|1|1|1|20250110",
        f"10707|{cid('550010000017')}|000106|H05|005|ย้าย|ออก||2|19300101|1|2|1|20250110",
        f"10707|{cid('550010000025')}|000107|H05|005|หาย|ตัว||2|19300101|1|3|1|20250110",
        f"10707|{cid('550010000033')}|000108|H05|004|อยู่|ที่อื่น||2|19300101|1|9|4|20250110",
        "",
    ]), encoding=encoding)
    (folder / "home.csv").write_text("\n".join([  # comma-separated, lower-case file name
        "HOSPCODE,HID,HOUSE_ID,HOUSE,VILLAGE,TAMBON,LATITUDE,LONGITUDE,VHVID,D_UPDATE",
        "10707,H01,40050100101,12/3,01,01,16.5442,102.0997,V1,20250110",
        "10707,H02,40050100102,45,02,01,0,0,V1,20250110",  # no real position
        "10707,H99,40050100199,1,03,01,16.55,102.10,V1,20250110",  # nobody lives here in PERSON
    ]), encoding=encoding)
    (folder / "FUNCTIONAL.txt").write_text("\n".join([
        "HOSPCODE|PID|SEQ|DATE_SERV|FUNCTIONAL_TEST|TESTRESULT|DEPENDENT|PROVIDER|D_UPDATE",
        "10707|000101|1|20240601|01|14|3|P1|20240601",  # 14 is not "highly dependent"
        f"10707|000101|2|20250105|01|{adl_newest}|2|P1|20250105",
        "10707|000101|3|20250105|04|2|2|P1|20250105",  # TAI, not ADL
        "10707|000102|1|20250105|01|25|3|P1|20250105",  # not a Barthel score
    ]), encoding=encoding)
    (folder / "DISABILITY.txt").write_text("\n".join([
        "HOSPCODE|DISABID|PID|DISABTYPE|DISABCAUSE|DIAGCODE|DATE_DETECT|DATE_DISAB|D_UPDATE|CID",
        f"10707|D1|000101|3|1|I64|20200101|20200101|20250110|{GOOD1}",
        f"10707|D2|000101|4|1|F03|20220101|20220101|20250110|{GOOD1}",
        f"10707|D3|000102|9|1|F03|20220101|20220101|20250110|{GOOD2}",  # no such type
    ]), encoding=encoding)
    return folder


def zip_export(folder: Path, into: Path, *, skip: str = "", inner: str = "") -> Path:
    """The folder's files as the hospital sends them: one F43_<HOSPCODE>_<timestamp>.zip."""
    path = into / "F43_10707_20250110093000.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            name = {"home.csv": "HOME.txt"}.get(f.name, f.name)
            if name != skip:
                z.write(f, inner + name)
    return path


def test_cid_check_digit() -> None:
    assert valid_cid(GOOD1) and valid_cid(GOOD2) and not valid_cid(BAD_CHECK)
    assert not valid_cid("14099") and not valid_cid("14099000000a1")


def test_import_takes_updates_and_refuses(session: Session, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "43")
    report = import_folder(session, folder)
    session.commit()
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert sorted((f, line, reason) for f, line, reason in report.refused) == [
        ("DISABILITY.txt", 4, "DISABTYPE not 1–7"),
        ("FUNCTIONAL.txt", 5, "ADL score not 0–20"),
        ("PERSON.txt", 4, "CID not 13 digits with a valid check digit"),
        ("PERSON.txt", 5, "no HOSPCODE or PID"),
        ("PERSON.txt", 6, "discharged: died (DISCHARGE 1)"),
        ("PERSON.txt", 7, "discharged: moved away (DISCHARGE 2)"),
        ("PERSON.txt", 8, "discharged: missing (DISCHARGE 3)"),
        ("PERSON.txt", 9, "living outside the area (TYPEAREA 4)"),
    ]
    people = {p.pid: p for p in session.exec(select(Patient)).all()}
    a, b = people["000101"], people["000102"]
    assert (a.cid, a.name_th, a.prename, a.hn, a.sex, a.birth_date) == (GOOD1, "สมศรี ใจดี", "นาง", "HN101", "2",
                                                                         date(1940, 5, 1))  # BE 2483
    # the map was empty: the import loaded the shipped one (as `serve` does), whose town centre this home is at;
    # a home without a position: HOME.VILLAGE 02 of TAMBON 01 as people read it (Thai and English), not the codes
    assert (a.house_no, a.village, a.home_lat, a.home_lon, a.adl_score) == ("12/3", "Chumphae town", 16.5442, 102.0997, 9)
    assert b.village == "หมู่ที่ 2 ต.ชุมแพ / Moo 2, Chum Phae"
    assert a.notes == ("[43 DISABILITY] ความพิการ / disability: 3 การเคลื่อนไหวหรือทางร่างกาย / moving or physical; "
                       "4 จิตใจหรือพฤติกรรม / mental or behavioural")
    assert (b.prename, b.home_lat, b.adl_score, b.birth_date, b.notes) == ("นาย", None, None, date(1938, 2, 14),
                                                                           None)  # PRENAME 003
    assert report.unused_columns["PERSON"] == ["MSTATUS", "D_UPDATE"]
    text = "\n".join(report.lines())
    for secret in (GOOD1, GOOD2, BAD_CHECK, "สมศรี", "ใจดี", "บุญมี"):
        assert secret not in text
    assert "HOME rows matching no imported person" in text
    assert "note: 1 × FUNCTIONAL DEPENDENT disagrees" in text
    assert "DISABILITY 3 rows (DISABILITY.txt)" in text

    # Again: nothing changes. Then a newer ADL score: one update.
    again = import_folder(session, folder)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    write_export(folder, adl_newest="4")
    third = import_folder(session, folder)
    session.commit()
    assert (third.created, third.updated, third.unchanged) == (0, 1, 1)
    assert session.exec(select(Patient).where(Patient.pid == "000101")).one().adl_score == 4


def database_url(engine: Engine) -> str:
    """The URL a separate process would be given for this test database (its own schema on PostgreSQL)."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name != "postgresql":
        return url
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def test_cli_imports_the_hospital_zip_on_both_databases(engine: Engine, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", database_url(engine))
    folder = write_export(tmp_path / "43", encoding="cp874")
    (tmp_path / "zips").mkdir()

    def count() -> int:
        with Session(engine) as s:
            return len(s.exec(select(Patient)).all())

    # A bad zip, a zip without HOME.txt, a PERSON file without its CID column: one clear line, nothing imported.
    bad = tmp_path / "zips" / "F43_10707_20250110093000.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    r = CliRunner().invoke(cli, ["patients", "import-43", str(bad)])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError) and "not a readable zip" in str(r.exception)
    no_home = zip_export(folder, tmp_path / "zips", skip="HOME.txt")
    r = CliRunner().invoke(cli, ["patients", "import-43", str(no_home)])
    assert isinstance(r.exception, ConfigError) and "has no HOME.txt" in str(r.exception)
    broken = tmp_path / "broken"
    write_export(broken)
    person = broken / "PERSON.txt"
    person.write_text(person.read_text(encoding="utf-8").replace("|CID|", "|XCID|"), encoding="utf-8")
    r = CliRunner().invoke(cli, ["patients", "import-43", str(zip_export(broken, tmp_path / "zips"))])
    assert isinstance(r.exception, ConfigError) and "missing column(s) CID" in str(r.exception)
    assert count() == 0

    # The real thing: members in a folder inside the zip, cp874, DISABILITY included.
    good = zip_export(folder, tmp_path / "zips", inner="F43_10707/")
    r = CliRunner().invoke(cli, ["patients", "import-43", str(good)])
    assert r.exit_code == 0, r.output
    assert "patients taken (new): 2; updated: 0; unchanged: 0; refused: 8" in r.output
    assert "DISABILITY 3 rows (DISABILITY.txt)" in r.output
    for secret in (GOOD1, GOOD2, "สมศรี", "ใจดี"):
        assert secret not in r.output
    with Session(engine) as s:
        a = s.exec(select(Patient).where(Patient.pid == "000101")).one()
        assert (a.name_th, a.prename, a.adl_score, a.home_lat) == ("สมศรี ใจดี", "นาง", 9, 16.5442)
        assert a.notes is not None and "จิตใจหรือพฤติกรรม / mental or behavioural" in a.notes
    again = CliRunner().invoke(cli, ["patients", "import-43", str(good)])
    assert "patients taken (new): 0; updated: 0; unchanged: 2" in again.output
    assert count() == 2


def test_cli_reads_tis620_and_prints_no_personal_data(app_engine: Engine, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    folder = write_export(tmp_path / "43", encoding="cp874")
    result = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert result.exit_code == 0, result.output
    assert "patients taken (new): 2; updated: 0; unchanged: 0; refused: 8" in result.output
    assert GOOD1 not in result.output and "สมศรี" not in result.output
    with Session(app_engine) as s:
        assert s.exec(select(Patient).where(Patient.pid == "000101")).one().name_th == "สมศรี ใจดี"
    dry = CliRunner().invoke(cli, ["patients", "import-43", str(folder), "--dry-run"])
    assert "unchanged: 2" in dry.output and "dry run" in dry.output
    missing = CliRunner().invoke(cli, ["patients", "import-43", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0


def test_village_names_come_from_the_tax_map(session: Session, tmp_path: Path) -> None:
    """HOME.VILLAGE is a number (หมู่ที่ 01); with the map loaded a home takes its nearest landmark's village."""
    from chumphae.map.store import load_default_map

    load_default_map(session)
    folder = write_export(tmp_path / "43")
    with (folder / "home.csv").open("a", encoding="utf-8") as f:  # H02 again, now far from every landmark
        f.write("\n10707,H02,40050100102,45,02,01,16.2,102.5,V1,20250110")
    report = import_folder(session, folder)
    session.commit()
    people = {p.pid: p for p in session.exec(select(Patient)).all()}
    assert people["000101"].village == "Chumphae town"  # 16.5442, 102.0997: the town centre of the shipped map
    assert people["000102"].village == "หมู่ที่ 2 ต.ชุมแพ / Moo 2, Chum Phae"
    assert "village named หมู่ที่ N ต.<tambon>" in "\n".join(report.lines())


def test_village_names_do_not_depend_on_whether_the_backend_ran_first(tmp_path: Path) -> None:
    """outside21: on a fresh data directory (before any `chumphae serve`) the map was empty, so a home in town got
    `หมู่ที่ 1 ต.ชุมแพ`; after `serve` had loaded the shipped map the same export "updated" it to the map's name.
    Now `import-43` loads the shipped map on an empty one, as `serve` does: the same names either way."""
    folder = write_export(tmp_path / "43")
    first = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert first.exit_code == 0, first.output
    assert "the shipped tax map loaded first" in first.output and "no tax map loaded" not in first.output
    engine = make_engine(get_settings().effective_database_url)
    try:
        with Session(engine) as session:
            villages = {p.pid: p.village for p in session.exec(select(Patient)).all()}
            assert villages["000101"] == "Chumphae town"
            assert map_info(session)  # kept: `serve` finds the map loaded and leaves it
    finally:
        engine.dispose()
    again = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert again.exit_code == 0, again.output
    assert "taken (new): 0; updated: 0; unchanged: 2" in again.output and "shipped tax map" not in again.output
