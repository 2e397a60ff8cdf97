"""A UTF-8 43-file with one bad byte is refused at that byte's line, not at its first Thai letter (review20c).

The refusal named the first byte cp874 does not define: in a UTF-8 file of Thai names that is the first Thai
letter (ก is E0 B8 81, 0x81 undefined in cp874), so a file whose only bad byte was on line 9 was refused
"line 2: byte 0x99" and the operator looked for nothing wrong on line 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from chumphae.patients.import43 import ImportRefused, import_folder
from tests.patients.test_import43 import write_export


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_utf8_file_with_one_bad_byte_is_refused_at_that_bytes_line(session: Session, tmp_path: Path,
                                                                      bom: bytes) -> None:
    folder = write_export(tmp_path / "43")  # UTF-8, Thai names from line 2
    person = folder / "PERSON.txt"
    lines = person.read_bytes().split(b"\n")
    lines[8] = lines[8].replace("อยู่".encode(), "อยู่".encode() + b"\xff")  # line 9, the last row
    person.write_bytes(bom + b"\n".join(lines))
    with pytest.raises(ImportRefused) as refused:
        import_folder(session, folder)
    assert str(refused.value) == ("PERSON.txt: line 9: byte 0xFF is not UTF-8 (and the file is not cp874); "
                                  "nothing was imported")
