"""Patients from a 43-file export (PERSON, HOME, FUNCTIONAL): taken, updated, refused; no CID or name printed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.cli import app as cli
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
        "HOSPCODE|CID|PID|HID|PRENAME|NAME|LNAME|HN|SEX|BIRTH|MSTATUS|DISCHARGE|D_UPDATE",
        f"10707|{GOOD1}|000101|H01|นาง|สมศรี|ใจดี|HN101|2|24830501|2|9|20250110",
        f"10707|{GOOD2}|000102|H02|003|บุญมี|มีสุข||1|19380214|1|9|20250110",
        f"10707|{BAD_CHECK}|000103|H03|นาย|ผิด|เลขบัตร||1|19400101|1|9|20250110",
        f"10707|{GOOD3}||H04|นาย|ไม่มี|รหัส||1|19400101|1|9|20250110",
        f"10707|{cid('550010000009')}|000105|H05|นาย|เสีย|ชีวิต||1|19300101|1|1|20250110",
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
        "10707|000101|1|20240601|01|14|1|P1|20240601",
        f"10707|000101|2|20250105|01|{adl_newest}|2|P1|20250105",
        "10707|000101|3|20250105|04|2|2|P1|20250105",  # TAI, not ADL
        "10707|000102|1|20250105|01|25|3|P1|20250105",  # not a Barthel score
    ]), encoding=encoding)
    return folder


def test_cid_check_digit() -> None:
    assert valid_cid(GOOD1) and valid_cid(GOOD2) and not valid_cid(BAD_CHECK)
    assert not valid_cid("14099") and not valid_cid("14099000000a1")


def test_import_takes_updates_and_refuses(session: Session, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "43")
    report = import_folder(session, folder)
    session.commit()
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert sorted((f, line, reason) for f, line, reason in report.refused) == [
        ("FUNCTIONAL.txt", 5, "ADL score not 0–20"),
        ("PERSON.txt", 4, "CID not 13 digits with a valid check digit"),
        ("PERSON.txt", 5, "no HOSPCODE or PID"),
        ("PERSON.txt", 6, "discharged (died, moved or lost)"),
    ]
    people = {p.pid: p for p in session.exec(select(Patient)).all()}
    a, b = people["000101"], people["000102"]
    assert (a.cid, a.name_th, a.prename, a.hn, a.sex, a.birth_date) == (GOOD1, "สมศรี ใจดี", "นาง", "HN101", "2",
                                                                         date(1940, 5, 1))  # BE 2483
    assert (a.house_no, a.village, a.home_lat, a.home_lon, a.adl_score) == ("12/3", "01", 16.5442, 102.0997, 9)
    assert (b.prename, b.home_lat, b.adl_score, b.birth_date) == (None, None, None, date(1938, 2, 14))
    assert report.unused_columns["PERSON"] == ["MSTATUS", "D_UPDATE"]
    text = "\n".join(report.lines())
    for secret in (GOOD1, GOOD2, BAD_CHECK, "สมศรี", "ใจดี", "บุญมี"):
        assert secret not in text
    assert "HOME rows matching no imported person" in text and "PRENAME given as a code" in text

    # Again: nothing changes. Then a newer ADL score: one update.
    again = import_folder(session, folder)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    write_export(folder, adl_newest="4")
    third = import_folder(session, folder)
    session.commit()
    assert (third.created, third.updated, third.unchanged) == (0, 1, 1)
    assert session.exec(select(Patient).where(Patient.pid == "000101")).one().adl_score == 4


def test_cli_reads_tis620_and_prints_no_personal_data(app_engine: Engine, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    folder = write_export(tmp_path / "43", encoding="cp874")
    result = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert result.exit_code == 0, result.output
    assert "patients taken (new): 2; updated: 0; unchanged: 0; refused: 4" in result.output
    assert GOOD1 not in result.output and "สมศรี" not in result.output
    with Session(app_engine) as s:
        assert s.exec(select(Patient).where(Patient.pid == "000101")).one().name_th == "สมศรี ใจดี"
    dry = CliRunner().invoke(cli, ["patients", "import-43", str(folder), "--dry-run"])
    assert "unchanged: 2" in dry.output and "dry run" in dry.output
    missing = CliRunner().invoke(cli, ["patients", "import-43", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0
