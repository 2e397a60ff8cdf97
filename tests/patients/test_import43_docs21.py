"""An outsider's 43-file import, written from README.md and DOMAIN.md only (outside21).

Two `F43_<HOSPCODE>_<timestamp>.zip` exports built as DOMAIN.md describes the 43 files (structure 2.4 field
names, `|`-separated, a header row, CRLF; PERSON, HOME by HID, FUNCTIONAL, DISABILITY), one in UTF-8 with BOM and
one in cp874, imported with `chumphae patients import-43` on a database whose map is empty (a fresh install, before
any `serve`), and read back over the documented API (docs/mobile-api.md: `GET /api/v1/patients`, `/{id}`)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chumphae.cli import app as cli
from chumphae.config import reset_settings
from tests.conftest import World

PERSON = (
    "HOSPCODE CID PID HID PRENAME NAME LNAME HN SEX BIRTH MSTATUS OCCUPATION_OLD OCCUPATION_NEW RACE NATION "
    "RELIGION EDUCATION FSTATUS FATHER MOTHER COUPLE VSTATUS MOVEIN DISCHARGE DDISCHARGE ABOGROUP RHGROUP LABOR "
    "PASSPORT TYPEAREA D_UPDATE TELEPHONE MOBILE"
).split()
HOME = (
    "HOSPCODE HID HOUSE_ID HOUSETYPE ROOMNO CONDO HOUSE SOISUB SOIMAIN ROAD VILLANAME VILLAGE TAMBON AMPUR CHANGWAT "
    "TELEPHONE LATITUDE LONGITUDE NFAMILY LOCATYPE VHVID HEADID D_UPDATE"
).split()
FUNCTIONAL = "HOSPCODE PID SEQ DATE_SERV FUNCTIONAL_TEST TESTRESULT DEPENDENT PROVIDER D_UPDATE CID".split()
DISABILITY = "HOSPCODE DISABID PID DISABTYPE DISABCAUSE DIAGCODE DATE_DETECT DATE_DISAB D_UPDATE CID".split()


def _cid(first12: str) -> str:
    s = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return first12 + str((11 - s % 11) % 10)


def _person(
    pid: int, prename: str, name: str, lname: str, sex: str, birth: str, discharge: str = "9"
) -> dict[str, Any]:
    return {
        "HOSPCODE": "10707",
        "CID": _cid(f"34001000{pid:04d}"),
        "PID": pid,
        "HID": pid - 90,
        "PRENAME": prename,
        "NAME": name,
        "LNAME": lname,
        "HN": f"HN{pid:05d}",
        "SEX": sex,
        "BIRTH": birth,
        "VSTATUS": "5",
        "DISCHARGE": discharge,
        "TYPEAREA": "1",
        "D_UPDATE": "20261201093000",
    }


def _home(hid: int, village: str, tambon: str, lat: str, lon: str) -> dict[str, Any]:
    return {
        "HOSPCODE": "10707",
        "HID": hid,
        "HOUSE_ID": f"4005{hid:07d}",
        "HOUSE": f"{hid}/1",
        "VILLAGE": village,
        "TAMBON": tambon,
        "AMPUR": "05",
        "CHANGWAT": "40",
        "LATITUDE": lat,
        "LONGITUDE": lon,
        "D_UPDATE": "20261201093000",
    }


def _adl(p: dict[str, Any], day: str, score: int, dependent: int) -> dict[str, Any]:
    return {
        "HOSPCODE": "10707",
        "PID": p["PID"],
        "SEQ": f"{day}1",
        "DATE_SERV": day,
        "FUNCTIONAL_TEST": "01",
        "TESTRESULT": score,
        "DEPENDENT": dependent,
        "PROVIDER": "001",
        "D_UPDATE": f"{day}120000",
        "CID": p["CID"],
    }


def _zip(path: Path, encoding: str, tables: dict[str, tuple[list[str], list[dict[str, Any]]]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (names, rows) in tables.items():
            lines = ["|".join(names)] + ["|".join(str(r.get(n, "")) for n in names) for r in rows]
            text = ("\ufeff" if encoding == "utf-8" else "") + "\r\n".join(lines) + "\r\n"
            z.writestr(f"{name}.txt", text.encode(encoding))
    return path


def test_two_exports_utf8_bom_and_cp874_read_back_over_the_api(
    world: World, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", f"sqlite:///{tmp_path / 'test.db'}")  # the client's database
    reset_settings()
    p1 = _person(101, "003", "สมชาย", "ใจดี", "1", "19410309")
    p2 = _person(102, "005", "บุญมา", "ศรีสุข", "2", "19380721")
    p3 = _person(103, "004", "มะลิ", "ทองคำ", "2", "19450102")
    p4 = _person(104, "003", "ทองดี", "มีสุข", "1", "19300101", discharge="1")
    a = _zip(
        tmp_path / "F43_10707_20261201093000.zip",
        "utf-8",
        {
            "PERSON": (PERSON, [p1, p2]),
            "HOME": (HOME, [_home(11, "01", "01", "16.545012", "102.100134"), _home(12, "07", "05", "", "")]),
            "FUNCTIONAL": (
                FUNCTIONAL,
                [_adl(p1, "20260101", 14, 1), _adl(p1, "20261115", 9, 2), _adl(p2, "20261020", 3, 3)],
            ),
            "DISABILITY": (
                DISABILITY,
                [
                    {
                        "HOSPCODE": "10707",
                        "DISABID": "D1",
                        "PID": 102,
                        "DISABTYPE": "2",
                        "DISABCAUSE": "2",
                        "DIAGCODE": "I639",
                        "DATE_DETECT": "20250101",
                        "DATE_DISAB": "20241201",
                        "D_UPDATE": "20250101120000",
                        "CID": p2["CID"],
                    }
                ],
            ),
        },
    )
    b = _zip(
        tmp_path / "F43_10707_20261202093000.zip",
        "cp874",
        {
            "PERSON": (PERSON, [p3, p4]),
            "HOME": (HOME, [_home(13, "03", "01", "16.546100", "102.101200"), _home(14, "02", "01", "16.5", "102.1")]),
            "FUNCTIONAL": (FUNCTIONAL, [_adl(p3, "20261101", 11, 2)]),
            "DISABILITY": (DISABILITY, []),
        },
    )
    done = CliRunner().invoke(cli, ["patients", "import-43", str(a)])
    assert done.exit_code == 0, done.output
    assert "patients taken (new): 2; updated: 0; unchanged: 0; refused: 0" in done.output
    done = CliRunner().invoke(cli, ["patients", "import-43", str(b)])
    assert done.exit_code == 0, done.output
    assert "taken (new): 1; updated: 0; unchanged: 0; refused: 1" in done.output
    assert "discharged: died (DISCHARGE 1): PERSON.txt:3" in done.output
    for secret in ("สมชาย", "มะลิ", p1["CID"], p3["CID"]):
        assert secret not in done.output

    r = client.get("/api/v1/patients", headers=world.auth("admin"))
    assert r.status_code == 200, r.text
    got = {p["pid"]: p for p in r.json() if p["pid"] in ("101", "102", "103", "104")}
    assert sorted(got) == ["101", "102", "103"]
    one, two, three = got["101"], got["102"], got["103"]
    assert (one["prename"], one["name_th"], one["sex"], one["birth_date"], one["cid"], one["hn"]) == (
        "นาย",
        "สมชาย ใจดี",
        "1",
        "1941-03-09",
        p1["CID"],
        "HN00101",
    )
    assert (one["adl_score"], one["adl_group"]) == (9, "homebound")  # the newest Barthel, not the first
    assert (one["home_lat"], one["home_lon"]) == (16.545012, 102.100134)
    assert one["village"] == "Chumphae town"  # the nearest landmark of the map, loaded by the import itself
    assert (two["prename"], two["adl_score"], two["home_lat"]) == ("นาง", 3, None)
    assert two["village"] == "หมู่ที่ 7 ต.ขัวเรียง / Moo 7, Khua Riang"  # no position: หมู่ที่ and tambon 05
    assert two["notes"].startswith("[43 DISABILITY]") and "2 การได้ยินหรือสื่อความหมาย" in two["notes"]
    assert (three["prename"], three["name_th"], three["adl_score"]) == ("น.ส.", "มะลิ ทองคำ", 11)  # cp874 read
    assert three["village"] == "Chumphae town"
    r = client.get(f"/api/v1/patients/{one['id']}", headers=world.auth("hospital"))
    assert r.status_code == 200 and r.json()["cid"] == p1["CID"]
