"""Statements of README.md and docs/ that docs12's outsider run (a fresh clone's `scripts/demo`, a field engineer's
hand-written recording replayed against `chumphae serve`, an F43 import, a webhook receiver written from
docs/delivery.md, a map in a Thai CRS) found different from the code."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import World
from tests.feed.conftest import raise_alert

ROOT = Path(__file__).resolve().parents[2]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
PROTOCOL = " ".join((ROOT / "docs" / "gateway-protocol.md").read_text(encoding="utf-8").split())

# docs/band-frame.md's golden vector: SOS pressed, worn; gateway-protocol.md §6's advert line carries it.
GOLDEN_ADDRESS, GOLDEN_KEY = "C0:FF:EE:00:00:01", "00112233445566778899aabbccddeeff"
GOLDEN_PAYLOAD = "c1e8030000bd007c22007e4713d63a05fffec96b2ebd"


def _site_config() -> dict[str, object]:
    """A §2 document as saved from GET /api/v1/gateway/config: one receiver, the golden band, its patient."""
    return {"site_id": "s", "gateway_id": "g", "version": 1, "extent": None,
            "receivers": [{"id": "rx-rph", "lat": 16.5442, "lon": 102.0997}],
            "bands": [{"address": GOLDEN_ADDRESS, "key_hex": GOLDEN_KEY, "patient_id": 1, "model": "chumphae-v1"}],
            "patients": [{"id": 1, "code": "P-001", "ltc_group": 2, "adl_score": 11, "thresholds": {},
                          "home": {"lat": 16.5442, "lon": 102.0997}}],
            "zones": [], "routes": []}


def _sos_recording(path: Path) -> None:
    lines = [{"format": "chumphae-adverts", "version": 1, "started": "2026-12-01T05:54:31+00:00"}]
    lines += [{"t": f"2026-12-01T05:54:{31 + i}.412Z", "receiver": "rx-rph", "address": GOLDEN_ADDRESS, "rssi": -60,
               "manufacturer_data": {"0xFFFF": GOLDEN_PAYLOAD}} for i in range(3)]
    lines.append({"end": "2026-12-01T05:54:40+00:00"})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def test_a_replay_without_a_token_leaves_nothing_for_the_next_run_to_send(tmp_path: Path) -> None:
    """§6: "Without GATEWAY_TOKEN it runs the pipeline only and prints what it found." It also queued what it
    found (here an SOS) in GATEWAY_QUEUE_PATH, the gateway's durable outbox: the outsider's next replay with a
    token sent that old SOS to the backend (its alert re-triggered, count 1 -> 2). A stand-alone `--simulate`
    on a cached site queued a simulated fall for a real patient the same way."""
    assert "nothing it finds is queued for a later run" in PROTOCOL
    rec = tmp_path / "field.jsonl"
    _sos_recording(rec)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gateway-config.json").write_text(json.dumps(_site_config()), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}  # the defaults, in cwd
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed", "0"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "alerts {'sos': 1}" in r.stdout, r.stdout  # the pipeline ran and found the SOS
    outbox = tmp_path / "data" / "gateway-outbox.sqlite3"  # GATEWAY_QUEUE_PATH's default
    if outbox.exists():
        with sqlite3.connect(outbox) as db:
            pending = db.execute("SELECT type FROM outbox WHERE state = 0").fetchall()
        assert pending == [], f"left in the gateway's outbox for its next run: {pending}"

    kept = tmp_path / "kept.sqlite3"  # --queue PATH keeps them, as said
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed", "0", "--queue", str(kept)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    with sqlite3.connect(kept) as db:
        assert ("alert",) in db.execute("SELECT type FROM outbox WHERE state = 0").fetchall()


def test_the_demo_users_ids_are_printed_for_the_commands_that_take_a_user(tmp_path: Path) -> None:
    """`chumphae seed-demo` (and `demo`) print `caregiver1  chu_…`; the outsider ran `chumphae channels set
    caregiver1 --webhook …` as docs/delivery.md shows and got "no user 'caregiver1'": USER is a user id or an
    exact name, and `caregiver1` is a label. The ids are now printed, and the documents say so."""
    delivery = " ".join((ROOT / "docs" / "delivery.md").read_text(encoding="utf-8").split())
    assert "`seed-demo` and `demo` print their ids" in delivery and "user ids" in README
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")} | {"CHUMPHAE_DATA_DIR": str(tmp_path)}
    chumphae = [str(Path(sys.executable).parent / "chumphae")]
    seeded = subprocess.run([*chumphae, "seed-demo"], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    line = next((x for x in seeded.stdout.splitlines() if x.strip().startswith("user ids")), None)
    assert line is not None, seeded.stdout
    ids = dict(part.split() for part in line.split(":", 1)[1].split(","))
    assert set(ids) >= {"admin", "care_manager", "hospital", "caregiver1", "caregiver2", "volunteer1", "volunteer2"}
    shown = subprocess.run([*chumphae, "channels", "set", ids["caregiver1"], "--webhook", "http://127.0.0.1:9/hook"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0 and "webhook" in shown.stdout, shown.stdout + shown.stderr


def test_erase_closes_the_patients_open_alerts_as_the_readme_says(client: TestClient, world: World) -> None:
    """The outsider erased a patient with an open SOS: it came back `resolved`, outcome `other`, at the erasure's
    time, no escalation left. README listed what goes and what stays, not that open alerts are closed."""
    assert ("open alerts are closed (status `resolved`, outcome `other`, `resolved_at` the erasure's time, no "
            "escalation left)") in README
    own, admin = world.own_patient, world.auth("admin")
    alert = raise_alert(world.engine, own, "sos")
    before = client.get(f"/api/v1/alerts/{alert.alert_id}", headers=admin).json()
    assert (before["status"], before["outcome"], before["next_escalation_at"] is not None) == ("open", None, True)
    r = client.post(f"/api/v1/patients/{own}/erase", headers=admin)
    assert r.status_code == 200, r.text
    after = client.get(f"/api/v1/alerts/{alert.alert_id}", headers=admin).json()
    assert (after["status"], after["outcome"], after["next_escalation_at"]) == ("resolved", "other", None)
    assert after["resolved_at"] is not None and after["type"] == "sos" and after["opened_at"] == before["opened_at"]


def test_map_import_columns_and_crs_as_the_readme_says(tmp_path: Path) -> None:
    """The integrator had only `--field OURS=THEIRS` to go on: README named none of our columns, nor how a GeoJSON
    states its CRS. Every accepted name is now listed; a GeoJSON in Indian 1975 / UTM 47N (EPSG:24047) with a `crs`
    member and a `PCODE` column imports with its codes, a parcel with only ZONE/BLOCK/LOT gets them joined, and
    the same file without `crs` is refused, naming --epsg."""
    import pytest
    from pyproj import Transformer

    from chumphae.map.importer import ALIASES, MapImportError, read_layer

    row = README[README.index("`chumphae map import PATH"):]
    row = row[:row.index(" |\n") if " |\n" in row else row.index("| `chumphae map info`")]
    for names in ALIASES.values():
        for accepted in names.values():
            assert all(f"`{n}`" in row for n in accepted), accepted
    assert "`crs` member" in row and "RFC 7946" in row and "`--epsg N`" in row

    to_utm = Transformer.from_crs(4326, 24047, always_xy=True)

    def square(lon: float, lat: float, d: float = 0.0004) -> list[list[list[float]]]:
        pts = [(lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d), (lon - d, lat - d)]
        return [[list(to_utm.transform(x, y)) for x, y in pts]]

    feats = [{"type": "Feature", "properties": {"PCODE": "91A001", "LAND_TYPE": "โฉนดที่ดิน"},
              "geometry": {"type": "Polygon", "coordinates": square(101.95, 16.70)}},
             {"type": "Feature", "properties": {"ZONE": "91", "BLOCK": "A", "LOT": "002"},
              "geometry": {"type": "Polygon", "coordinates": square(101.951, 16.70)}}]
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::24047"}}
    stated = tmp_path / "parcels.geojson"
    stated.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": feats}), encoding="utf-8")
    result = read_layer(stated, "parcels")
    assert result.summary.source_crs == "EPSG:24047"
    assert sorted(r.code or "" for r in result.records) == ["91A001", "91A002"]
    assert {r.kind for r in result.records} == {"โฉนดที่ดิน", None}
    lon, lat = result.records[0].geom.centroid.coords[0]
    assert abs(lon - 101.95) < 1e-4 and abs(lat - 16.70) < 1e-4  # back in WGS 84 where it was drawn

    bare = tmp_path / "bare.geojson"
    bare.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")
    with pytest.raises(MapImportError, match="--epsg"):
        read_layer(bare, "parcels")
    assert {r.code for r in read_layer(bare, "parcels", epsg=24047).records} == {"91A001", "91A002"}


def _documented_defaults(text: str, prefix: str) -> dict[str, str]:
    """`| `PREFIX_A` / `PREFIX_B` | `x` / `y` | … |` rows → {name: default cell part}; `_B` after `PREFIX_A_B…`
    (docs/delivery.md's shorthand) is expanded from the name before it."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        if len(cells) < 3 or not cells[0].startswith(f"`{prefix}"):
            continue
        names = [n.strip().strip("`") for n in cells[0].split(" / ")]
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) == 1:
            defaults *= len(names)
        full: list[str] = []
        for n in names:
            if n.startswith("_"):
                prev = full[-1]
                n = prev[:prev.index("_" + n[1:].split("_")[0], len(prefix) - 1)] + n
            full.append(n)
        assert len(full) == len(defaults), line
        out |= dict(zip(full, defaults, strict=True))
    return out


def _same(documented: str, value: object) -> bool:
    if value is None or value == "":
        return documented.startswith("unset")
    text = documented.split(" (")[0].strip("`")
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == str(value)


def test_every_settings_default_in_the_documents_is_the_codes() -> None:
    """Part 5 of the outsider's run: each CHUMPHAE_* / GATEWAY_* row of README (and docs/delivery.md's table)
    against the settings classes: every field documented, with its real default (the computed ones by rule)."""
    from chumphae.config import Settings
    from gateway.config import GatewaySettings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    delivery = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    computed = {"CHUMPHAE_DATABASE_URL": "`sqlite:///<data_dir>/chumphae.db`", "CHUMPHAE_EXPORT_DIR": "`<data_dir>/exports`"}
    for prefix, cls, texts in (("CHUMPHAE_", Settings, (readme, delivery)), ("GATEWAY_", GatewaySettings, (readme,))):
        for text in texts:
            documented = _documented_defaults(text, prefix)
            assert documented, prefix
            wrong = []
            for name, doc in documented.items():
                field = cls.model_fields.get(name[len(prefix):].lower())
                assert field is not None, f"{name} is documented but not a setting"
                if name in computed:
                    ok = doc == computed[name]
                else:
                    ok = _same(doc, field.default)
                if not ok:
                    wrong.append((name, doc, field.default))
            assert wrong == []
        missing = [n for n in cls.model_fields if f"{prefix}{n.upper()}" not in _documented_defaults(readme, prefix)]
        assert missing == [], missing


def test_the_daily_files_keep_the_join_keys_leading_zeros(world: World) -> None:
    """Hospital IT imported an F43 export (PID `000101`) and opened the nightly files: the CSV carries `000101`
    as text, which Excel turns into 101 (the join on HOSPCODE + PID then fails); docs/daily-summary.md said only
    "Excel shows Thai". The document now says so; the XLSX holds the keys as text cells, as it says."""
    import csv
    import io
    from datetime import date

    import openpyxl
    from sqlmodel import Session

    from chumphae.models import Patient
    from chumphae.report.daily import daily_summary
    from chumphae.report.writers import to_csv, to_xlsx

    doc = " ".join((ROOT / "docs" / "daily-summary.md").read_text(encoding="utf-8").split())
    assert "Join on the XLSX (those four are text cells there)" in doc
    with Session(world.engine) as s:
        p = s.get(Patient, world.own_patient)
        assert p is not None
        p.pid, p.hn, p.cid, p.hospcode = "000101", "0042", "0100500010002", "01234"
        s.add(p)
        s.commit()
        summary = daily_summary(s, day=date(2026, 12, 1), hospcode="10707", with_cid=True)
    rows = list(csv.DictReader(io.StringIO(to_csv(summary).decode("utf-8-sig"))))
    mine = next(r for r in rows if r["patient_id"] == str(world.own_patient))
    assert (mine["pid"], mine["hn"], mine["cid"], mine["hospcode"]) == ("000101", "0042", "0100500010002", "01234")
    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(summary)))["daily"]
    head = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(min_row=2) if r[head.index("patient_id")].value == world.own_patient)
    for key, want in (("pid", "000101"), ("hn", "0042"), ("cid", "0100500010002"), ("hospcode", "01234")):
        cell = row[head.index(key)]
        assert (cell.value, cell.data_type) == (want, "s"), key


def test_the_gateway_help_speaks_the_settings_language_not_pythons() -> None:
    """`chumphae-gateway --help` said GATEWAY_ADAPTER "None = default": in the environment there is no None (the
    README: "unset (default adapter)"); every default and meaning is read as a setting is written."""
    from gateway.cli import build_parser

    text = build_parser().format_help()
    assert [line for line in text.splitlines() if "None" in line.replace("If-None-Match", "")] == []
    assert "unset: the default adapter" in text


def test_a_stand_alone_simulation_plays_on_the_cached_site(tmp_path: Path) -> None:
    """README said `--list-scenarios`' scenarios run "stand-alone on the scenario's own site"; the outsider's
    stand-alone `--simulate fall` (no token) played on the site cached by an earlier replay, its fall raised for
    that site's real patient. README now says so (and the first test: that alert is not kept for a later run)."""
    assert "stand-alone (no token) on the cached site config when `GATEWAY_CONFIG_CACHE` holds one" in README
    site = _site_config()
    site["bands"] = [{"address": f"C0:FF:EE:00:00:0{i}", "key_hex": f"{i:02x}" * 16, "patient_id": 77 + i,
                      "model": "chumphae-v1"} for i in (1, 2)]
    site["patients"] = [{"id": 77 + i, "code": f"P-{77 + i:03d}", "ltc_group": 2, "adl_score": 11, "thresholds": {},
                         "home": {"lat": 16.5442, "lon": 102.0997}} for i in (1, 2)]
    cache = tmp_path / "cache.json"
    cache.write_text(json.dumps(site), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | {"GATEWAY_CONFIG_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--simulate", "fall", "--speed", "20", "--exit-when-done"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "alert fall (patient 79)" in r.stderr, r.stderr[-2000:]  # the faller, band 1, of the cached site
    assert not (tmp_path / "data").exists()  # nothing left in GATEWAY_QUEUE_PATH's default


def test_a_future_days_summary_is_what_the_document_says(world: World) -> None:
    """Hospital IT asked for a date not begun (HTTP and CLI do not refuse one): every row said `data_gaps` 0,
    where the document's rule gives a day without positions 1. The document now says what a future day holds."""
    from datetime import timedelta

    from sqlmodel import Session

    from chumphae.report.daily import daily_summary
    from chumphae.report.writers import totals
    from chumphae.timeutil import utcnow

    doc = " ".join((ROOT / "docs" / "daily-summary.md").read_text(encoding="utf-8").split())
    assert "a day not begun (a future date, which is not refused) has no length" in doc
    with Session(world.engine) as s:
        summary = daily_summary(s, day=(utcnow() + timedelta(days=3)).date(), hospcode="10707")
    assert summary.rows and all((r["gap_h"], r["data_gaps"], r["positions"]) == (0, 0, 0) for r in summary.rows)
    assert totals(summary)["no_data"] == len(summary.rows)
