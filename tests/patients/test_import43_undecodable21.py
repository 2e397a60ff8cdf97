"""A 43-file that is neither UTF-8 nor cp874 is refused, never read with its bytes replaced (small21).

The importer decoded cp874 with errors="replace": a byte cp874 does not define (0xDB–0xDE, 0xFC–0xFF, most of
0x81–0x9F) became U+FFFD, so a name changed and the report said nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from chumphae.models import Patient
from chumphae.patients.import43 import ImportRefused, import_folder
from tests.patients.test_import43 import write_export


def test_a_person_file_neither_utf8_nor_cp874_is_refused_and_nothing_imported(session: Session,
                                                                              tmp_path: Path) -> None:
    folder = write_export(tmp_path / "43", encoding="cp874")
    person = folder / "PERSON.txt"
    person.write_bytes(person.read_bytes().replace("บุญมี".encode("cp874"), "บุญ".encode("cp874") + b"\xfc"))
    with pytest.raises(ImportRefused) as refused:
        import_folder(session, folder)
    assert str(refused.value) == ("PERSON.txt: line 3: byte 0xFC is neither UTF-8 nor cp874; "
                                  "nothing was imported")
    assert session.exec(select(Patient)).all() == []


def test_another_file_so_is_refused_by_line_and_the_others_are_imported(session: Session, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "43", encoding="cp874")
    home = folder / "home.csv"
    raw = home.read_bytes().split(b"\n")
    raw[2] = raw[2].replace(b",45,", b",45\xdb,")  # line 3: H02's house number
    home.write_bytes(b"\n".join(raw))
    report = import_folder(session, folder)
    assert ("home.csv", 3, "byte 0xDB is neither UTF-8 nor cp874: nothing read from the file") in report.refused
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert "HOME" not in report.files and "HOME" not in report.missing
    assert "refused 1 × byte 0xDB is neither UTF-8 nor cp874: nothing read from the file: home.csv:3" \
        in "\n".join(report.lines())
    people = {p.pid: p for p in session.exec(select(Patient)).all()}
    assert people["000101"].name_th == "สมศรี ใจดี" and people["000101"].home_lat is None  # nothing from HOME
    assert people["000102"].house_no is None
