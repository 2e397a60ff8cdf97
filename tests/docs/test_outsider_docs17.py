"""An outsider's pass (issue 13) over what docs15/16 left: `patients import-43` with an F43 export built by hand as
a hospital writes it, `map import` of a municipality's layer in a Thai CRS, delivery (`channels`, the LINE
webhook) and the app's REST routes not yet exercised, each written from README.md, docs/*.md and DOMAIN.md only.
Each test names the mismatch it found; it failed before the fix beside it."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chumphae.cli import app as cli
from chumphae.models import Patient

ROOT = Path(__file__).resolve().parents[2]


def _readme() -> str:
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


# --- patients import-43: an export as HOSxP writes it (DOMAIN.md: PERSON 34 fields, HOME by HID, |, header row)

def _cid(first12: str) -> str:
    total = sum(int(first12[i]) * (13 - i) for i in range(12))
    return first12 + str((11 - total % 11) % 10)


PERSON_HEADER = ("HOSPCODE|CID|PID|HID|PRENAME|NAME|LNAME|HN|SEX|BIRTH|MSTATUS|OCCUPATION_OLD|OCCUPATION_NEW|RACE|"
                 "NATION|RELIGION|EDUCATION|FSTATUS|FATHER|MOTHER|COUPLE|VSTATUS|MOVEIN|DISCHARGE|DDISCHARGE|ABOGROUP|"
                 "RHGROUP|LABOR|PASSPORT|TYPEAREA|D_UPDATE|TELEPHONE|MOBILE|HOSPCODE9")
HOME_HEADER = ("HOSPCODE|HID|HOUSE_ID|HOUSETYPE|ROOMNO|CONDO|HOUSE|SOISUB|SOIMAIN|ROAD|VILLANAME|VILLAGE|TAMBON|AMPUR|"
               "CHANGWAT|TELEPHONE|LATITUDE|LONGITUDE|NFAMILY|LOCATYPE|VHVID|HEADID|TOILET|WATER|WATERTYPE|GARBAGE|"
               "HOUSING|DURABILITY|CLEANLINESS|VENTILATION|LIGHT|WATERTM|MFOOD|BCONTROL|ACONTROL|CHEMICAL|OUTDATE|"
               "D_UPDATE")


def _person(cid: str, pid: str, hid: str, prename: str, name: str, lname: str, sex: str, birth: str, *,
            discharge: str = "9", typearea: str = "1", lname_extra: str = "") -> str:
    return (f"10707|{cid}|{pid}|{hid}|{prename}|{name}|{lname}{lname_extra}|HN{pid}|{sex}|{birth}|2|000|9999|099|099|01|"
            f"01|2||||||{discharge}||1|1|||{typearea}|20250110093000|||")


def _home(hid: str, house: str, moo: str, tambon: str, lat: str, lon: str, ampur: str = "05") -> str:
    return f"10707|{hid}|4005{hid}|1|||{house}|||||{moo}|{tambon}|{ampur}|40||{lat}|{lon}|1|1|V1" + "|" * 17 + \
        "20250110093000"


def hospital_export(into: Path, *, encoding: str = "utf-8-sig") -> Path:
    """`F43_10707_<ts>.zip` with PERSON (34 fields), HOME (38), FUNCTIONAL, DISABILITY; CRLF, BOM or cp874."""
    person = [
        PERSON_HEADER,
        _person(_cid("350010000001"), "000201", "H1", "005", "สมศรี", "ใจดี", "2", "24830501"),  # BE 2483
        _person(_cid("350010000002"), "000202", "H2", "003", "บุญมี", "มีสุข", "1", "19380214"),
        _person(_cid("350010000003"), "000203", "H3", "004", "มาลี", "ศรีสุข", "2", "19450101", discharge="1"),
        _person(_cid("350010000004"), "000204", "H3", "001", "ต้น", "กล้า", "1", "20150101", typearea="4"),
        # a `|` typed inside LNAME: every later field one column to the right; DISCHARGE 1 lands in DDISCHARGE
        _person(_cid("350010000005"), "000205", "H3", "003", "ทอง", "ดี", "1", "19300101", discharge="1",
                lname_extra="|มา"),
        _person("1234567890123", "000206", "H1", "002", "ผิด", "เลข", "2", "19500101"),
    ]
    home = [HOME_HEADER, _home("H1", "12/3", "01", "01", "16.5442", "102.0997"), _home("H2", "45", "07", "10", "", ""),
            _home("H3", "9", "03", "03", "", "", ampur="01")]
    functional = ["HOSPCODE|PID|SEQ|DATE_SERV|FUNCTIONAL_TEST|TESTRESULT|DEPENDENT|PROVIDER|D_UPDATE|CID",
                  "10707|000201|1|20250105|01|9|2|P1|20250105093000|", "10707|000202|1|20250105|01|3|3|P1|20250105093000|"]
    disability = ["HOSPCODE|DISABID|PID|DISABTYPE|DISABCAUSE|DIAGCODE|DATE_DETECT|DATE_DISAB|D_UPDATE|CID",
                  "10707|D1|000201|3|1|I64|20200101|20200101|20250110093000|"]
    folder = into / "F43_10707_20250110093000"
    folder.mkdir(parents=True)
    files = {"PERSON.txt": person, "HOME.txt": home, "FUNCTIONAL.txt": functional, "DISABILITY.txt": disability}
    for name, rows in files.items():
        (folder / name).write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))
    with zipfile.ZipFile(into / "F43_10707_20250110093000.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in files:
            z.write(folder / name, name)
    return folder


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp874"])
def test_import43_a_hand_built_hospital_export(encoding: str, app_engine: Engine, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatches: (1) a PERSON row with one field too many (a `|` inside a name) was taken, its values read one
    column off: a patient who died (DISCHARGE 1) was registered; README: bad rows are refused with reasons.
    (2) HOME.TAMBON was shown as its code (`หมู่ที่ 7 ต.10`), in Thai only, beside map villages named in English:
    now `หมู่ที่ 7 ต.หนองเขียด / Moo 7, Nong Khiat`, Thai and English, the tambon named."""
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    folder = hospital_export(tmp_path, encoding=encoding)
    zipped = tmp_path / "F43_10707_20250110093000.zip"

    def people() -> dict[str, Patient]:
        with Session(app_engine) as s:
            return {p.pid or "": p for p in s.exec(select(Patient)).all()}

    dry = CliRunner().invoke(cli, ["patients", "import-43", str(zipped), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing was changed" in dry.output and people() == {}
    for source in (zipped, folder):  # the zip as sent, then the same files as a folder: nothing new
        r = CliRunner().invoke(cli, ["patients", "import-43", str(source)])
        assert r.exit_code == 0, r.output
    assert "patients taken (new): 0; updated: 0; unchanged: 2; refused: 4" in r.output, r.output
    for reason in ("refused 1 × 35 fields where the header has 34: PERSON.txt:6",
                   "refused 1 × discharged: died (DISCHARGE 1): PERSON.txt:4",
                   "refused 1 × living outside the area (TYPEAREA 4): PERSON.txt:5",
                   "refused 1 × CID not 13 digits with a valid check digit: PERSON.txt:7"):
        assert reason in r.output, r.output
    assert "note: 1 × HOME rows matching no imported person" in r.output  # H3: its people were refused
    for secret in ("สมศรี", "ใจดี", "ทอง", _cid("350010000001"), _cid("350010000005")):
        assert secret not in r.output + dry.output
    got = people()
    assert set(got) == {"000201", "000202"}
    a, b = got["000201"], got["000202"]
    assert (a.prename, a.name_th, a.adl_score, a.birth_date.isoformat() if a.birth_date else None) == (
        "นาง", "สมศรี ใจดี", 9, "1940-05-01")
    assert a.village == "Chumphae town"  # the map was empty: import-43 loads the shipped one first (outside21)
    assert b.village == "หมู่ที่ 7 ต.หนองเขียด / Moo 7, Nong Khiat"
    assert a.notes is not None and "3 การเคลื่อนไหวหรือทางร่างกาย / moving or physical" in a.notes


def test_import43_a_tambon_of_another_district_keeps_its_code() -> None:
    from chumphae.patients.import43 import moo_name

    assert moo_name("03", "03", "01", "40") == "หมู่ที่ 3 ต.03 / Moo 3, tambon 03"  # AMPUR 01: Mueang Khon Kaen
    assert moo_name("11", "11", "", "") == "หมู่ที่ 11 ต.หนองเสาเล้า / Moo 11, Nong Sao Lao"
    assert moo_name("", "01") is None


def test_import43_readme_says_what_a_village_is_called() -> None:
    readme = _readme()
    assert "`หมู่ที่ 7 ต.หนองเขียด / Moo 7, Nong Khiat`" in readme
    assert "a row whose number of fields differs from its header's is refused" in readme


# --- map import: a municipality's own layers in a Thai CRS (README's `chumphae map …` rows)

def municipality_layers(into: Path) -> dict[str, Path]:
    """An LTAX-like export in Indian 1975 / UTM 48N (EPSG:24048), written with geopandas as QGIS would:
    parcels (MultiPolygons, the 10-character Shapefile name `parcel_cod`), buildings, a route, a landmark."""
    import geopandas as gpd
    from pyproj import Transformer
    from shapely.geometry import LineString, MultiPolygon, Point, Polygon

    x0, y0 = Transformer.from_crs(4326, 24048, always_xy=True).transform(102.1040, 16.5480)

    def square(dx: float, dy: float, side: float) -> Polygon:
        return Polygon([(x0 + dx, y0 + dy), (x0 + dx + side, y0 + dy), (x0 + dx + side, y0 + dy + side),
                        (x0 + dx, y0 + dy + side)])

    parcels = gpd.GeoDataFrame({
        "zone": ["03"] * 3, "block": ["I"] * 3, "lot": ["001", "002", "003"], "parcel_cod": ["03I001", "03I002", "03I003"],
        "Mapsheet": ["5838III1414"] * 3, "land_type": ["โฉนดที่ดิน", "ส.ป.ก. 4-01", "โฉนดที่ดิน"]},
        geometry=[MultiPolygon([square(50 * k, 0, 40)]) for k in range(3)], crs=24048)
    out = {"gpkg": into / "parcels.gpkg", "geojson": into / "parcels.geojson", "shp": into / "parcels.shp"}
    parcels.to_file(out["gpkg"], layer="parcel", driver="GPKG")
    parcels.to_file(out["geojson"], driver="GeoJSON")
    parcels.to_file(out["shp"], encoding="cp874")
    (into / "parcels.cpg").unlink()  # an old Shapefile: cp874 text and no word on it
    parcels.set_crs(None, allow_override=True).to_file(into / "nocrs.shp")
    gpd.GeoDataFrame({"building_c": ["03I001-B001"], "use": ["ร้านค้า"]}, geometry=[square(5, 5, 10)],
                     crs=24048).to_file(into / "buildings.gpkg", layer="building", driver="GPKG")
    gpd.GeoDataFrame({"route_id": ["RT01"], "name_th": ["ทางเดินหลังตลาด"], "name_en": ["Path behind the market"],
                      "type": ["footpath"]}, geometry=[LineString([(x0 - 10, y0 - 5), (x0 + 150, y0 - 5)])],
                     crs=24048).to_file(into / "routes.gpkg", layer="routes", driver="GPKG")
    gpd.GeoDataFrame({"code": ["LMX1"], "name": ["ศาลาหมู่บ้าน"], "name_en": ["Village sala"], "kind": ["village_hall"]},
                     geometry=[Point(x0 + 20, y0 - 20)], crs=24048).to_file(into / "landmarks.gpkg", driver="GPKG")
    return out


def test_map_import_a_municipalitys_layers(app_engine: Engine, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Import (GeoPackage, GeoJSON with its `crs` member, an old cp874 Shapefile), refusal without a CRS, `info`,
    `where`, `remove`. Mismatches: `map remove --dataset` with a name not loaded said `removed 0 features` and
    exited 0 (a typo went unnoticed); `map where` on an empty map ended in a traceback."""
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    files = municipality_layers(tmp_path)
    run = CliRunner().invoke

    empty = run(cli, ["map", "where", "16.5481", "102.1041"])
    assert empty.exit_code != 0 and "no map loaded" in str(empty.exception), empty.output
    refused = run(cli, ["map", "import", str(tmp_path / "nocrs.shp"), "--layer", "parcels"])
    assert refused.exit_code != 0 and "states no coordinate system; pass --epsg N" in str(refused.exception)
    assert "24048 (Indian 1975 / UTM 48N)" in str(refused.exception)
    for name in ("gpkg", "geojson"):
        r = run(cli, ["map", "import", str(files[name]), "--layer", "parcels", "--dataset", f"muni-{name}"])
        assert r.exit_code == 0 and "CRS: EPSG:24048" in r.output, r.output
        assert "stored 3 features in layer parcels of data set muni-" + name in r.output
    r = run(cli, ["map", "import", str(files["shp"]), "--layer", "parcels", "--encoding", "cp874", "--dataset", "muni"])
    assert r.exit_code == 0 and "CRS: EPSG:24048" in r.output, r.output
    for layer in ("buildings", "routes", "landmarks"):
        r = run(cli, ["map", "import", str(tmp_path / f"{layer}.gpkg"), "--layer", layer, "--dataset", "muni"])
        assert r.exit_code == 0 and f"stored 1 features in layer {layer} of data set muni" in r.output, r.output
    for name in ("muni-gpkg", "muni-geojson"):
        assert run(cli, ["map", "remove", "--dataset", name]).output == "removed 3 features\n"

    info = run(cli, ["map", "info"]).output.splitlines()
    assert [line.split()[:3] for line in info] == [["muni", "buildings", "1"], ["muni", "landmarks", "1"],
                                                    ["muni", "parcels", "3"], ["muni", "routes", "1"]], info
    assert all("+07:00" in line for line in info)  # imported at, Bangkok time
    with Session(app_engine) as s:
        from chumphae.map.store import load_layers
        layers = load_layers(s)
    assert sorted(layers.parcels.kinds.tolist()) == sorted(["โฉนดที่ดิน", "ส.ป.ก. 4-01", "โฉนดที่ดิน"])  # cp874 read

    where = run(cli, ["map", "where", "16.54812", "102.10410"])
    assert where.exit_code == 0, where.output
    assert where.output.splitlines() == ["parcel 03I001  building 03I001-B001  landmark LMX1",
                                         "ห่างจากศาลาหมู่บ้าน 30 ม. ทางทิศเหนือ", "30 m north of Village sala"]
    typo = run(cli, ["map", "remove", "--dataset", "mun"])
    assert typo.exit_code != 0 and "no data set 'mun' is loaded; loaded: muni (buildings)" in str(typo.exception)
    assert run(cli, ["map", "remove", "--dataset", "muni", "--layer", "routes"]).output == "removed 1 features\n"
    wrong_layer = run(cli, ["map", "remove", "--dataset", "muni", "--layer", "routes"])
    assert wrong_layer.exit_code != 0 and "with layer 'routes'" in str(wrong_layer.exception)
    assert run(cli, ["map", "remove", "--dataset", "muni"]).output == "removed 5 features\n"
    assert run(cli, ["map", "info"]).output.startswith("no map loaded")


# --- delivery: `chumphae channels …` and the LINE webhook, against providers on loopback (docs/delivery.md)

def _env(monkeypatch: pytest.MonkeyPatch, engine: Engine, **values: str) -> None:
    from chumphae.config import reset_settings

    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(engine.url))
    for key, value in values.items():
        monkeypatch.setenv(f"CHUMPHAE_{key.upper()}", value)
    reset_settings()


def test_channels_set_show_link_code_and_test(app_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/delivery.md's command line, run as written: contact points, a severity's channels, quiet hours, a
    link code, a test message on each channel reaching fake LINE / SMS / webhook servers on 127.0.0.1; the
    webhook's `X-Chumphae-Signature` is the HMAC of the raw body. Mismatch: the documents did not say what
    `--line ID` takes (a LINE user id, `U` and 32 hex digits; anything else is refused)."""
    import hashlib
    import hmac
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.deliver.fakes import LINE_TOKEN, SMS_PASSWORD, SMS_USER, Fake, line_server, sms_server

    seen: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        with line_server(Fake("line")) as line, sms_server(Fake("sms")) as sms:
            _env(monkeypatch, app_engine, line_api_url=line.url, line_channel_access_token=LINE_TOKEN,
                 sms_url=sms.url + "/send", sms_username=SMS_USER, sms_password=SMS_PASSWORD,
                 webhook_secret="outsider-secret")
            run = CliRunner().invoke
            made = run(cli, ["users", "create", "--role", "caregiver", "--name", "ป้าแดง"])
            assert made.exit_code == 0, made.output
            bad = run(cli, ["channels", "set", "ป้าแดง", "--line", "somchai"])
            assert bad.exit_code != 0 and "U followed by 32 hex digits" in str(bad.exception)
            url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
            r = run(cli, ["channels", "set", "ป้าแดง", "--line", "U" + "ab" * 16, "--sms", "0812345678",
                          "--webhook", url, "--severity", "high=line,sms", "--quiet", "22:00-06:00"])
            assert r.exit_code == 0, r.output
            shown = run(cli, ["channels", "show", "ป้าแดง"]).output
            assert shown == r.output and "\nhigh: line,sms (+ feed: always)\n" in shown, shown
            assert "0812345678" not in shown and "ab" * 16 not in shown and url not in shown  # masked
            assert "quiet: 22:00-06:00" in shown
            code = run(cli, ["channels", "link-code", "ป้าแดง"]).output.split()[0]
            assert len(code) == 9 and code[4] == "-", code
            test = run(cli, ["channels", "test", "ป้าแดง", "--wait", "10"])
            assert test.exit_code == 0, test.output
            for channel in ("line", "sms", "webhook"):
                assert f"{channel}: sent after 1 attempt(s)" in test.output, test.output
            assert len(line.hits) == 1 and len(sms.hits) == 1
            assert sms.hits[0].body["message"].startswith("ข้อความทดสอบ")
            english = run(cli, ["users", "create", "--role", "volunteer", "--name", "Nok", "--lang", "en"])
            assert english.exit_code == 0, english.output
            assert run(cli, ["channels", "set", "Nok", "--sms", "+66812345678"]).exit_code == 0
            assert run(cli, ["channels", "test", "Nok", "--wait", "10"]).exit_code == 0
            # Mismatch: `show` listed `critical: line,sms,webhook,feed` for a user on SMS only, as if LINE and the
            # webhook would be used; they are skipped (no contact point), and nothing said which lines were defaults
            nok = run(cli, ["channels", "show", "Nok"]).output.splitlines()
            assert nok[1:3] == ["critical: line,sms,webhook,feed (default); not sent, no contact point: line,webhook",
                                "high: line,webhook,feed (default); not sent, no contact point: line,webhook"], nok
            assert nok[4] == "low: feed (default)"
            assert sms.hits[1].body["msisdn"] == "+66812345678"
            assert sms.hits[1].body["message"] == "Smart Chumphae test message for Nok on sms: this channel works."
    finally:
        hook.shutdown()
        hook.server_close()
    (headers, raw), = seen
    assert headers["X-Chumphae-Signature"] == "sha256=" + hmac.new(b"outsider-secret", raw, hashlib.sha256).hexdigest()
    import json
    body = json.loads(raw)
    assert set(body) == {"notice", "event", "channel", "text"} and body["event"] == "test", body
    assert headers["Idempotency-Key"] == body["notice"]
    delivery = " ".join((ROOT / "docs" / "delivery.md").read_text(encoding="utf-8").split())
    assert "`--line ID` (a LINE user id: `U` and 32 hex digits" in delivery
    assert "Thai, or English only when it is `en` (the LINE buttons and a `channels test` message too)" in delivery
    assert "`; not sent, no contact point: line` names the channels chosen that the user has no active" in delivery


def test_the_line_webhook_links_replies_and_acknowledges(app_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """`POST /api/v1/line/webhook` signed as LINE signs it: a bad signature 401; a link code as a text message
    links the LINE id; a `follow` re-activates it; `postback ack=<id>` acknowledges the alert (audited with route
    `LINE postback`); each event with a reply token is answered once at the LINE API on loopback."""
    import json

    from fastapi.testclient import TestClient

    from chumphae.api.app import create_app
    from chumphae.models import Alert, AuditLog
    from tests.conftest import build_world
    from tests.deliver.conftest import raise_sos

    world = build_world(app_engine)
    from tests.deliver.fakes import LINE_SECRET, LINE_TOKEN, Fake, line_server, line_signature

    with Session(world.engine) as s:
        from chumphae.deliver.linehook import new_link_code
        code = new_link_code(s, user_id=world.users["caregiver"])
        s.commit()
    alert_id = raise_sos(world.engine, world.own_patient).alert_id
    uid = "U" + "0123456789abcdef" * 2

    def event(kind: str, token: str, **extra: Any) -> dict[str, Any]:
        return {"type": kind, "replyToken": token, "timestamp": 1735700000000, "mode": "active",
                "webhookEventId": token, "deliveryContext": {"isRedelivery": False},
                "source": {"type": "user", "userId": uid}, **extra}

    with line_server(Fake("line")) as line:
        _env(monkeypatch, world.engine, line_api_url=line.url, line_channel_access_token=LINE_TOKEN,
             line_channel_secret=LINE_SECRET)
        with TestClient(create_app(manage_engine=False)) as client:

            def post(events: list[dict[str, Any]], signature: str | None = None) -> Any:
                raw = json.dumps({"destination": "U" + "f" * 32, "events": events}).encode()
                return client.post("/api/v1/line/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Line-Signature": signature or line_signature(raw)})

            assert post([], signature=line_signature(b"{}")).status_code == 401
            r = post([event("message", "t1", message={"type": "text", "id": "1", "text": code.lower()})])
            assert r.status_code == 200 and r.json() == {"linked": 1, "acknowledged": 0, "ignored": 0}, r.text
            r = post([event("follow", "t2"), event("postback", "t3", postback={"data": f"ack={alert_id}"})])
            assert r.status_code == 200 and r.json()["acknowledged"] == 1, r.text
            import time
            deadline = time.monotonic() + 5
            while len(line.replies) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [x["replyToken"] for x in line.replies] == ["t1", "t2", "t3"], line.replies
            assert f"#{alert_id}" in line.replies[2]["messages"][0]["text"] and code not in json.dumps(line.replies)
    with Session(world.engine) as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None and alert.status == "acknowledged"
        assert alert.acknowledged_by == world.users["caregiver"]
        routes = [a.route for a in s.exec(select(AuditLog).where(AuditLog.user_id == world.users["caregiver"]))]
        assert "LINE postback" in routes, routes


# --- the app's REST routes not yet exercised from the documents (docs/mobile-api.md)

def _audit(engine: Engine, since: int = 0) -> list[tuple[int | None, str, str, str | None, str | None]]:
    from chumphae.models import AuditLog

    with Session(engine) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.id > since).order_by(AuditLog.id)).all()  # type: ignore[operator]
        return [(a.user_id, a.action, a.entity, None if a.entity_id is None else str(a.entity_id), a.route)
                for a in rows]


def _last_audit_id(engine: Engine) -> int:
    from chumphae.models import AuditLog

    with Session(engine) as s:
        return max([a.id or 0 for a in s.exec(select(AuditLog)).all()] or [0])


def test_zone_put_routes_and_places_then_get_with_validators(client: Any, mapped: Any) -> None:
    """`PUT …/zone` with routes and places, `GET …/zone` with `If-None-Match` / `If-Modified-Since`.
    Mismatches: (1) a second version saved within the second of the first had the same `Last-Modified`, so
    `If-Modified-Since` answered 304 to a phone holding the old zone (the document: 304 only when nothing
    changed); (2) a first zone sent without `night` got a 20:00–06:00 night rule the document did not mention."""
    p, v = mapped.own_patient, mapped.auth("volunteer")
    url = f"/api/v1/patients/{p}/zone"
    empty = client.get(url, headers=v)
    assert empty.status_code == 200 and empty.json()["version"] is None and empty.json()["features"] == []
    r = client.put(url, headers=v, json={"route_codes": ["R1"], "place_codes": ["LM1", "01A002"]})
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    assert r.json()["spec"]["schedules"]["night"] == {"start": "20:00", "end": "06:00", "only": "home"}
    first = client.get(url, headers=v)
    assert first.headers["content-type"].startswith("application/geo+json")
    kinds = [f["properties"]["kind"] for f in first.json()["features"]]
    assert kinds == ["zone_day", "zone_night", "route"], kinds
    route = first.json()["features"][2]
    assert (route["id"], route["properties"]["code"], route["properties"]["name_en"]) == ("R1", "R1", "Footpath")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get(url, headers={**v, "If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={**v, "If-Modified-Since": modified}).status_code == 304
    r = client.put(url, headers=v, json={"route_codes": [], "night": None})  # at once: within the same second
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["spec"]["place_codes"] == ["LM1", "01A002"]
    by_tag = client.get(url, headers={**v, "If-None-Match": etag})
    by_time = client.get(url, headers={**v, "If-Modified-Since": modified})
    assert by_tag.status_code == 200 and by_tag.json()["version"] == 2
    assert by_time.status_code == 200 and by_time.json()["version"] == 2, by_time.status_code
    assert [f["properties"]["kind"] for f in by_time.json()["features"]] == ["zone_day"]  # no routes, no night
    assert by_time.headers["last-modified"] != modified and by_time.headers["etag"] != etag
    again = client.get(url, headers={**v, "If-Modified-Since": by_time.headers["last-modified"]})
    assert again.status_code == 304
    bad = client.put(url, headers=v, json={"place_codes": ["LM99"]})
    assert bad.status_code == 422 and bad.json()["code"] == "zone_build" and "LM99" in bad.json()["detail"]
    assert client.get(url, headers=v).json()["version"] == 2  # nothing saved
    mobile = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())
    assert "a patient's first zone sent without it gets 20:00–06:00" in mobile
    assert "so `If-Modified-Since` never hides a newer version" in mobile


def test_visits_bands_search_users_and_erase_as_documented(client: Any, mapped: Any) -> None:
    """A volunteer's day from the document: log a visit with an ADL re-assessment, replace the band, post a
    search sighting; an admin creates a user, assigns, rotates and revokes the token, erases the patient. Every
    read of the patient is in the audit log under the caller (no mismatch found here)."""
    from tests.mobile.conftest import lonlat

    p, v, a = mapped.own_patient, mapped.auth("volunteer"), mapped.auth("admin")
    base = f"/api/v1/patients/{p}"
    mark = _last_audit_id(mapped.engine)
    r = client.post(base + "/visits", headers=v, json={"t": "2025-01-15T10:30:00+07:00", "adl_score": 8,
                                                       "notes": "เดินได้เองในบ้าน"})
    assert r.status_code == 201, r.text
    assert (r.json()["t"], r.json()["t_local"], r.json()["adl_score"]) == (
        "2025-01-15T03:30:00+00:00", "2025-01-15T10:30:00+07:00", 8)
    # a naive t is read as Asia/Bangkok (fix17, tests/mobile/test_api_fix17.py); a time that is no time is refused
    assert client.post(base + "/visits", headers=v, json={"t": "2025-13-15T10:30:00+07:00"}).status_code == 422
    assert client.post(base + "/visits", headers=mapped.auth("caregiver"), json={}).status_code == 403
    assert client.get(base, headers=v).json()["adl_score"] == 8
    r = client.post(base + "/visits", headers=v, json={"t": "2025-01-14T09:00:00+07:00", "adl_score": 15})
    assert r.status_code == 201 and client.get(base, headers=v).json()["adl_score"] == 8  # an older visit
    visits = client.get(base + "/visits?limit=1", headers=v).json()
    assert (visits["total"], visits["next_offset"], visits["items"][0]["adl_score"]) == (2, 1, 8)

    r = client.put(base + "/bands", headers=v, json={"address": "C0:CA:FE:00:01:2A",
                                                     "key_hex": "00112233445566778899aabbccddeeff",
                                                     "site": "gw-chumphae-town"})
    assert r.status_code == 200, r.text
    assert (r.json()["band"]["address"], r.json()["band"]["site"], r.json()["band"]["has_key"]) == (
        "C0:CA:FE:00:01:2A", "gw-chumphae-town", True)
    assert [b["address"] for b in r.json()["replaced"]] == ["C0:CA:FE:00:00:01"]
    assert "key_hex" not in r.text and "00112233" not in r.text
    taken = client.put(f"/api/v1/patients/{mapped.other_patient}/bands", headers=a,
                       json={"address": "C0:CA:FE:00:01:2A"})
    assert taken.status_code == 409 and taken.json()["code"] == "band_in_use"

    lon, lat = lonlat(20, 120)
    sighting = {"t": "2025-01-15T21:40:05+07:00", "lat": lat, "lon": lon, "accuracy_m": 6, "rssi": -78}
    r = client.post(base + "/search/sightings", headers=v, json={"address": "C0:CA:FE:00:01:2A",
                                                                  "sightings": [sighting]})
    assert r.status_code == 201, r.text
    pos, = r.json()["positions"]
    assert (pos["source"], pos["t_local"]) == ("search", "2025-01-15T21:40:05+07:00")
    assert pos["description_en"].endswith("Wat Thotsop")
    wrong = client.post(base + "/search/sightings", headers=v, json={"address": "C0:CA:FE:00:00:01",
                                                                      "sightings": [sighting]})
    assert wrong.status_code == 409 and wrong.json()["code"] == "band_mismatch"

    for path in ("", "/status", "/positions", "/visits", "/bands", "/zone"):
        assert client.get(base + path, headers=v).status_code == 200, path
    reads = {(who, route) for who, action, entity, eid, route in _audit(mapped.engine, mark)
             if action == "read" and entity == "patient" and eid == str(p)}
    for path in ("", "/status", "/positions", "/visits", "/bands", "/zone"):
        assert (mapped.users["volunteer"], f"GET {base}{path}") in reads, (path, reads)

    made = client.post("/api/v1/users", headers=a, json={"name": "อสม. วันดี", "role": "volunteer", "lang": "th"})
    assert made.status_code == 201, made.text
    uid, token = made.json()["id"], made.json()["token"]
    mine = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=mine).json() == {"id": uid, "name": "อสม. วันดี", "role": "volunteer",
                                                            "lang": "th"}
    assert client.get(base, headers=mine).json()["code"] == "patient_forbidden"
    r = client.post(f"/api/v1/users/{uid}/patients", headers=a, json={"patient_id": p, "relation": "volunteer"})
    assert r.status_code == 204 and r.content == b""
    assert client.get(base, headers=mine).status_code == 200
    rotated = client.post(f"/api/v1/users/{uid}/rotate", headers=a)
    assert rotated.status_code == 200 and rotated.json()["token"] != token
    assert client.get("/api/v1/me", headers=mine).status_code == 401
    assert client.post(f"/api/v1/users/{uid}/revoke", headers=a).status_code == 200
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {rotated.json()['token']}"}).status_code == 401
    assert token not in str(_audit(mapped.engine))

    erased = client.post(base + "/erase", headers=a)
    assert erased.status_code == 200, erased.text
    assert set(erased.json()) == {"patient_id", "positions", "alerts", "feed_frames", "visits", "zones", "bands",
                                  "assignments"}
    assert (erased.json()["visits"], erased.json()["zones"], erased.json()["bands"]) == (2, 0, 2)
    after = client.get(base, headers=a).json()
    assert (after["name_th"], after["cid"], after["birth_date"], after["active"], after["adl_score"]) == (
        "-", None, None, False, 8)
    assert client.get(base + "/bands", headers=a).json()["items"] == []
    zone = client.get(base + "/zone", headers=a).json()
    assert (zone["type"], zone["version"], zone["features"]) == ("FeatureCollection", None, [])
    notes = [x["notes"] for x in client.get(base + "/visits", headers=a).json()["items"]]
    assert notes == [None, None]


def test_import43_says_who_is_still_on_the_programme_after_leaving(app_engine: Engine, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch (what a care manager needs): a patient imported last month whom this month's export marks as
    died (DISCHARGE 1) was only 'refused' (the row not read), and stayed active, raising alerts, with nothing
    said. The import now names the patient by id (no personal data) and leaves the decision to a person."""
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    earlier = hospital_export(tmp_path / "january")
    person = earlier / "PERSON.txt"
    text = person.read_bytes().decode("utf-8-sig").split("\r\n")
    text[3] = text[3].replace("|1||1|1|||1|", "|9||1|1|||1|")  # 000203 not yet discharged in January
    person.write_bytes("\r\n".join(text).encode("utf-8-sig"))
    first = CliRunner().invoke(cli, ["patients", "import-43", str(earlier)])
    assert "patients taken (new): 3;" in first.output, first.output
    with Session(app_engine) as s:
        gone = s.exec(select(Patient).where(Patient.pid == "000203")).one()
    hospital_export(tmp_path / "february")
    r = CliRunner().invoke(cli, ["patients", "import-43", str(tmp_path / "february" / "F43_10707_20250110093000.zip")])
    assert "refused 1 × discharged: died (DISCHARGE 1): PERSON.txt:4" in r.output, r.output
    assert (f"still on the programme though the export says they left (died, moved, missing or living elsewhere): "
            f"patient {gone.id}; take them off with PATCH active=false if so") in r.output, r.output
    assert "มาลี" not in r.output and _cid("350010000003") not in r.output
    assert "names by id the patients already registered whom the export says left" in _readme()


def test_map_import_beside_the_shipped_map_warns(app_engine: Engine, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch: mapdata/README.md said a municipality *replaces* the shipped `chumphae-demo` map with
    `chumphae map import`; an import adds a data set beside it, silently, and both were matched against (a
    patient placed on demo parcels next to the real ones). Now the import warns, naming the other data set, and
    the documents give the order: import, then remove the demo."""
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    municipality_layers(tmp_path)
    run = CliRunner().invoke
    assert run(cli, ["map", "load-default"]).exit_code == 0
    r = run(cli, ["map", "import", str(tmp_path / "parcels.gpkg"), "--layer", "parcels", "--dataset", "muni"])
    assert r.exit_code == 0, r.output
    warning = ("warning: layer parcels of data set chumphae-demo covers the same ground: both will be used "
               "(`chumphae map remove --dataset chumphae-demo` if this one replaces it)")
    assert warning in r.output, r.output
    far = run(cli, ["map", "import", str(tmp_path / "landmarks.gpkg"), "--layer", "landmarks", "--dataset", "muni",
                    "--dry-run"])
    assert "warning: layer landmarks of data set chumphae-demo" in far.output  # the town's landmarks around it
    assert run(cli, ["map", "remove", "--dataset", "chumphae-demo"]).exit_code == 0
    again = run(cli, ["map", "import", str(tmp_path / "parcels.gpkg"), "--layer", "parcels", "--dataset", "muni"])
    assert "warning" not in again.output, again.output
    mapdata = " ".join((ROOT / "mapdata" / "README.md").read_text(encoding="utf-8").split())
    assert "then `chumphae map remove --dataset chumphae-demo` (in that order" in mapdata
    assert "An import never replaces another data set" in _readme()


def test_a_list_of_patients_names_them_in_the_audit_log(client: Any, world: Any) -> None:
    """README: every read of a patient's record is written to the audit log. `GET /api/v1/patients` answers
    whole records (CID for the hospital and admin roles) but its audit row said only how many: whose records were
    read could not be told. Now it names them, as `/mobile/patients`, `/alerts` and the overview already did."""
    from chumphae.models import AuditLog

    for who, url in (("hospital", "/api/v1/patients"), ("caregiver", "/api/v1/patients"),
                     ("caregiver", "/api/v1/mobile/patients"), ("caregiver", "/api/v1/alerts")):
        assert client.get(url, headers=world.auth(who)).status_code == 200, (who, url)
    with Session(world.engine) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action == "read").order_by(AuditLog.id)).all()  # type: ignore[arg-type]
    seen = [(r.user_id, r.entity, (r.detail or {}).get("patients")) for r in rows]
    assert seen == [(world.users["hospital"], "patient_list", [world.own_patient, world.other_patient]),
                    (world.users["caregiver"], "patient_list", [world.own_patient]),
                    (world.users["caregiver"], "patient_status_list", [world.own_patient]),
                    (world.users["caregiver"], "alert_list", [])], seen
    mobile = " ".join((ROOT / "docs" / "mobile-api.md").read_text(encoding="utf-8").split())
    assert "one row naming the patients it showed (`detail.patients`, their ids)" in mobile


def test_channels_worker_alone_sends_what_a_backend_queued(app_engine: Engine, tmp_path: Path) -> None:
    """`chumphae channels worker` as its own process (docs/delivery.md: any number may run beside the backends):
    an SOS's notices (the caregiver's, level 0) queued in the database reach fake LINE and SMS servers on loopback, the LINE push with the
    confirm template's `ack=<id>` postback and the page link; then it is stopped (by its own pid)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from chumphae.models.delivery import OutboxNotice as Notice
    from tests.conftest import build_world
    from tests.deliver.conftest import contacts, raise_sos
    from tests.deliver.fakes import LINE_TOKEN, SMS_PASSWORD, SMS_USER, Fake, line_server, sms_server

    world = build_world(app_engine)
    contacts(world)
    alert_id = raise_sos(app_engine, world.own_patient).alert_id

    def statuses() -> list[tuple[str, str]]:
        with Session(app_engine) as s:
            return sorted((n.channel, n.status) for n in s.exec(select(Notice).where(Notice.alert_id == alert_id)))
    with line_server(Fake("line")) as line, sms_server(Fake("sms")) as sms:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
        env.update(CHUMPHAE_DATABASE_URL=str(app_engine.url), CHUMPHAE_DATA_DIR=str(tmp_path / "data"),
                   CHUMPHAE_LINE_API_URL=line.url, CHUMPHAE_LINE_CHANNEL_ACCESS_TOKEN=LINE_TOKEN,
                   CHUMPHAE_SMS_URL=sms.url + "/send", CHUMPHAE_SMS_USERNAME=SMS_USER,
                   CHUMPHAE_SMS_PASSWORD=SMS_PASSWORD, CHUMPHAE_PUBLIC_URL="https://chumphae.example")
        worker = subprocess.Popen([sys.executable, "-m", "chumphae.cli", "channels", "worker"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while statuses() != [("feed", "sent"), ("line", "sent"), ("sms", "sent")] and time.monotonic() < deadline:
                time.sleep(0.2)  # until the worker has recorded them (a hit comes before its `sent`)
        finally:
            os.kill(worker.pid, signal.SIGTERM)
            out = worker.communicate(timeout=20)[0].decode()
    assert len(line.hits) == 1 and len(sms.hits) == 1, (len(line.hits), len(sms.hits), out[-2000:])  # level 0
    push = next(h.body for h in line.hits if h.body["to"] == "U" + "c" * 32)
    text, template = push["messages"]
    assert f"https://chumphae.example/#alert={alert_id}" in text["text"]
    assert template["template"]["actions"][0]["data"] == f"ack={alert_id}"
    assert statuses() == [("feed", "sent"), ("line", "sent"), ("sms", "sent")], (statuses(), out[-2000:])
    assert "1409900000011" not in out and "ผู้ป่วยหนึ่ง" not in out and "0812345678" not in out, out
    assert json.dumps(push, ensure_ascii=False).count("1409900000011") == 0


def test_import43_says_who_has_no_home(app_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mismatch (nothing lost, as README asks): a PERSON whose HID is not in HOME was imported without a home and
    nothing said so; such a patient cannot get a safe zone (mobile-api.md: `a zone needs a home`)."""
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    folder = hospital_export(tmp_path)
    home = folder / "HOME.txt"
    home.write_bytes(b"\r\n".join(x for x in home.read_bytes().split(b"\r\n") if b"|H2|" not in x))
    r = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert r.exit_code == 0, r.output
    assert "note: 1 × PERSON HID not in HOME (patient kept without a home; set one before a safe zone)" in r.output


def test_import43_rows_ending_with_a_trailing_bar_are_read_not_refused(app_engine: Engine, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """fix19: some exporters end every data row with `|` (its header without): each row had one field more than
    its header and the whole file was refused (`35 fields where the header has 34` on every row). Now a trailing
    bar on every row (two or more) is read as the delimiter's; a `|` inside a name on such a file is still one
    field too many, and refused."""
    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(app_engine.url))
    folder = hospital_export(tmp_path / "x")
    for name in ("PERSON.txt", "HOME.txt", "FUNCTIONAL.txt", "DISABILITY.txt"):
        lines = (folder / name).read_bytes().decode("utf-8-sig").split("\r\n")
        head, rows = lines[0], [ln for ln in lines[1:] if ln]
        (folder / name).write_bytes(("\r\n".join([head, *(r + "|" for r in rows)]) + "\r\n").encode("utf-8-sig"))
    r = CliRunner().invoke(cli, ["patients", "import-43", str(folder)])
    assert r.exit_code == 0, r.output
    assert "patients taken (new): 2; updated: 0; unchanged: 0; refused: 4" in r.output, r.output
    assert "DISABILITY.txt" not in r.output.split("patients taken")[1]  # its lone row read: the export's habit
    assert "refused 1 × 35 fields where the header has 34: PERSON.txt:6" in r.output, r.output
    with Session(app_engine) as s:
        got = {p.pid: p for p in s.exec(select(Patient)).all()}
    assert set(got) == {"000201", "000202"} and got["000201"].adl_score == 9  # FUNCTIONAL read too
    assert got["000201"].notes is not None and "moving or physical" in got["000201"].notes  # DISABILITY too
    from chumphae.patients.import43 import FIELD_COUNT, read_table

    lone = read_table(b"A|B|C\r\n1|2|3|\r\n")[1]  # one row with an empty field too many: maybe a shifted one
    assert lone[0][1][FIELD_COUNT] == "4"
    assert read_table(b"A|B|C\r\n1|2|3|\r\n", trailing=True)[1][0][1] == {"A": "1", "B": "2", "C": "3"}
    for raw in (b"A|B|C\r\n1|2|3|\r\n4|5|6|\r\n", b"A|B|C|\r\n1|2|3|\r\n4|5|6|\r\n", b"A|B|C|\r\n1|2|3\r\n4|5|6\r\n"):
        two = read_table(raw)[1]
        assert [row for _, row in two] == [{"A": "1", "B": "2", "C": "3"}, {"A": "4", "B": "5", "C": "6"}], raw
