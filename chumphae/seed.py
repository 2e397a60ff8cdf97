"""The demo district: patients, bands, gateways and users placed on the Chumphae map.

Deterministic (a fixed random seed), so every demo and every test sees the
same district. Names are invented; CIDs are valid-looking but fictitious
(they start with 0, which no real Thai national ID does).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import typer
from sqlalchemy import distinct, func
from sqlmodel import Session, col, select

from chumphae.auth.service import assign, create_gateway, create_user, rotate_user_token
from chumphae.models import Gateway, Patient, Role, User, Wristband

if TYPE_CHECKING:
    from chumphae.map.demo import DemoHome
    from chumphae.map.layers import MapLayers

DEMO_TAG = "[demo]"
RNG_SEED = 4005  # Chumphae's district geocode

GIVEN_F = [("บุญมี", "Boonmee"), ("สมศรี", "Somsri"), ("คำปุ่น", "Kampun"), ("ทองใบ", "Thongbai"),
           ("หนูเพียร", "Nuphian"), ("บัวผัน", "Buaphan"), ("จันทร์เพ็ญ", "Chanphen"), ("สายทอง", "Saithong"),
           ("ประนอม", "Pranom"), ("คำพอง", "Kamphong")]
GIVEN_M = [("สมบัติ", "Sombat"), ("ทองดี", "Thongdee"), ("บุญเลิศ", "Boonlert"), ("คำมี", "Kammee"),
           ("สุพรรณ", "Suphan"), ("ประสิทธิ์", "Prasit"), ("หนูแดง", "Nudaeng"), ("เสาร์", "Sao"),
           ("บุญช่วย", "Boonchuay"), ("จำปา", "Champa")]
FAMILY = [("ศรีชมภู", "Srichomphu"), ("แก้วมณี", "Kaewmanee"), ("พลภักดี", "Phonphakdee"),
          ("บุญมา", "Boonma"), ("ใจดี", "Jaidee"), ("สุขสวัสดิ์", "Suksawat"), ("ชุมแพ", "Chumphae"),
          ("ทองคำ", "Thongkham"), ("นามวงศ์", "Namwong"), ("ภูเขียว", "Phukhiao")]


@dataclass
class SeedResult:
    created: bool
    patients: int
    tokens: dict[str, str] = field(default_factory=dict)  # demo login name → token
    gateway_tokens: dict[str, str] = field(default_factory=dict)  # gateway slug → token
    user_ids: dict[str, int] = field(default_factory=dict)  # demo login name → user id (the CLI's USER)


def fake_cid(rng: random.Random) -> str:
    """A 13-digit id with a valid mod-11 check digit, starting with 0 so it is never a real one."""
    digits = [0] + [rng.randrange(10) for _ in range(11)]
    check = (11 - sum(d * (13 - i) for i, d in enumerate(digits)) % 11) % 10
    return "".join(map(str, digits)) + str(check)


def demo_people(n: int, rng: random.Random) -> list[Patient]:
    """Elderly patients with a realistic spread of dependency (most homebound, some wanderers).

    Names: a given name drawn for an earlier patient of the same sex is replaced by the first of that sex's
    names not yet given, while there is one, and after that by the first that makes no full name twice (the
    demo console names patients by code and given name: four men of the district were Kammee, two women
    Somsri Chumphae). The draws themselves are unchanged, so every other seeded value stays what it was."""
    patients = []
    given_out: set[str] = set()
    full_out: set[tuple[str, str]] = set()
    for i in range(n):
        female = rng.random() < 0.62
        names = GIVEN_F if female else GIVEN_M
        given = rng.choice(names)
        family = rng.choice(FAMILY)
        if given[1] in given_out:
            unused = [g for g in names if g[1] not in given_out]
            if unused:
                given = unused[0]
            elif (given[1], family[1]) in full_out:
                given = next((g for g in names if (g[1], family[1]) not in full_out), given)
        given_out.add(given[1])
        full_out.add((given[1], family[1]))
        adl = rng.choice([2, 3, 4, 6, 7, 8, 9, 10, 11, 11, 12, 13])
        nhso = 2 if adl >= 5 and rng.random() < 0.55 else (3 if adl < 5 else 1)
        patients.append(Patient(
            prename="นาง" if female else "นาย",
            name_th=f"{given[0]} {family[0]}",
            name_en=f"{given[1]} {family[1]}",
            cid=fake_cid(rng),
            sex="2" if female else "1",
            birth_date=date(rng.randint(1930, 1956), rng.randint(1, 12), rng.randint(1, 28)),
            adl_score=adl,
            nhso_group=nhso,
            hospcode="10707",
            pid=f"{100000 + i}",
            hn=f"HN{660000 + i * 7}",
            notes=f"{DEMO_TAG} ผู้ป่วยสาธิต / demo patient",
        ))
    return patients


def demo_users() -> list[tuple[str, Role, str]]:
    """(login, role, display name) of the demo accounts."""
    return [
        ("admin", Role.ADMIN, "ผู้ดูแลระบบ (demo admin)"),
        ("care_manager", Role.CARE_MANAGER, "ผู้จัดการการดูแล (demo CM)"),
        ("hospital", Role.HOSPITAL, "โรงพยาบาลชุมแพ (demo hospital)"),
        ("volunteer1", Role.VOLUNTEER, "อสม. มาลี (demo volunteer 1)"),
        ("volunteer2", Role.VOLUNTEER, "อสม. สมชาย (demo volunteer 2)"),
        ("caregiver1", Role.CAREGIVER, "ผู้ดูแล ลูกสาว (demo caregiver 1)"),
        ("caregiver2", Role.CAREGIVER, "ผู้ดูแล หลานชาย (demo caregiver 2)"),
    ]


def band_key(rng: random.Random) -> str:
    return "".join(f"{rng.randrange(256):02x}" for _ in range(16))


def print_tokens(result: SeedResult) -> None:
    verb = "seeded" if result.created else "already seeded"
    typer.echo(f"demo district {verb}: {result.patients} patients")
    for login, token in result.tokens.items():
        typer.echo(f"  {login:<13} {token}")
    if result.user_ids:  # the logins above are labels, not names: `chumphae channels|users … USER` takes these
        ids = ", ".join(f"{login} {uid}" for login, uid in result.user_ids.items())
        typer.echo(f"  user ids (USER of `chumphae channels`, ID of `chumphae users`): {ids}")
    for slug, token in result.gateway_tokens.items():
        typer.echo(f"  gateway {slug:<20} {token}")


def rotate_demo_tokens(session: Session) -> dict[str, str]:
    """New tokens for the demo accounts (tokens are stored hashed, so a re-run must issue new ones)."""
    tokens = {}
    for login, _role, name in demo_users():
        user = session.exec(select(User).where(User.name == name)).first()
        if user is not None:
            tokens[login] = rotate_user_token(session, user=user)
    return tokens


def demo_user_ids(session: Session) -> dict[str, int]:
    """The demo accounts' user ids by login name."""
    names = {name: login for login, _role, name in demo_users()}
    users = session.exec(select(User).where(col(User.name).in_(list(names)))).all()
    return {names[u.name]: u.id for u in sorted(users, key=lambda u: u.id or 0) if u.id is not None}


def _slug(area: str) -> str:
    return "gw-" + "".join(c if c.isalnum() else "-" for c in area.lower()).strip("-")


POLE_EVERY_M = 50.0  # a receiver on a street pole at least this often along each patient's walking routes
POLE_BEYOND_M = (60.0, 130.0)  # and on past each end of a route, where the road goes on
POLE_MIN_GAP_M = 50.0  # no safe place's receiver this close to another receiver
POLE_MERGE_M = POLE_EVERY_M / 3  # poles of routes sharing a road this close are one (as scripts/bench_detect.py)
PATH_LOSS_N = 2.2  # outdoors, village lanes, receivers on poles: about 70 m of reach at −100 dBm


def _route_poles(homes: list[DemoHome], layers: MapLayers) -> list[tuple[float, float]]:
    """(x, y) in metres of the pole receivers covering every zone route and a little past its ends: along each
    route evenly spaced, ends included, at most POLE_EVERY_M apart (the deployment rule, docs/gateway-protocol.md
    §2); one within POLE_MERGE_M of a pole already kept (routes sharing a road or a corner) is not added."""
    points: list[tuple[float, float]] = []
    for code in sorted({c for h in homes for c in h.zone_spec().route_codes}):
        line = layers.routes.geom(code)
        if line is None or line.is_empty or line.length == 0:
            continue
        n = max(1, math.ceil(line.length / POLE_EVERY_M))
        points += [(p.x, p.y) for p in (line.interpolate(k * line.length / n) for k in range(n + 1))]
        if line.geom_type == "LineString":
            coords = list(line.coords)
            for (ax, ay), (bx, by) in ((coords[1], coords[0]), (coords[-2], coords[-1])):
                d = max(1e-6, ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5)
                points += [(bx + (bx - ax) / d * m, by + (by - ay) / d * m) for m in POLE_BEYOND_M]
    kept: list[tuple[float, float]] = []
    for x, y in points:
        if all(math.dist((x, y), k) >= POLE_MERGE_M for k in kept):
            kept.append((x, y))
    return kept


def _place_points(homes: list[DemoHome], layers: MapLayers, placed: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(x, y) in metres of a receiver at each safe place of the homes' zones (`place_point`), none within
    POLE_MIN_GAP_M of a receiver in `placed` or one placed before: a safe place no receiver hears cannot be told
    from outside it (docs/wander-detection.md, wander-27)."""
    from chumphae.map.zones import place_point

    kept, out, seen = list(placed), [], set()
    for spec in (h.zone_spec() for h in homes):
        for code in (c for c in spec.place_codes if c not in seen):
            seen.add(code)
            p = place_point(layers, code, spec.place_radius_m, spec.margin_m)
            if all(((p.x - x) ** 2 + (p.y - y) ** 2) ** 0.5 >= POLE_MIN_GAP_M for x, y in kept):
                kept.append((p.x, p.y))
                out.append((p.x, p.y))
    return out


def _receivers(homes: list[DemoHome], rng: random.Random, layers: MapLayers | None = None) -> list[dict[str, object]]:
    """A receiver in each patient's house, one at the village centre, pole receivers along the patients'
    walking routes (so the demo's walks stay heard) and one at each safe place of their zones (every part of a
    zone heard), each with its own calibration."""
    rx: list[dict[str, object]] = []
    lat_c = sum(h.lat for h in homes) / len(homes)
    lon_c = sum(h.lon for h in homes) / len(homes)
    rx.append({"id": "rx-centre", "lat": round(lat_c, 6), "lon": round(lon_c, 6),
               "p1m_dbm": -59, "path_loss_n": PATH_LOSS_N})
    for k, h in enumerate(homes):
        rx.append({"id": f"rx-home-{k + 1}", "lat": round(h.lat, 6), "lon": round(h.lon, 6),
                   "p1m_dbm": -59 + rng.choice([-2, -1, 0, 1, 2]), "path_loss_n": PATH_LOSS_N})
    if layers is not None:
        poles = _route_poles(homes, layers)
        placed = [layers.metric.xy(float(r["lon"]), float(r["lat"])) for r in rx]  # type: ignore[arg-type]
        places = _place_points(homes, layers, [(float(x), float(y)) for x, y in placed] + poles)
        for name, points in (("pole", poles), ("place", places)):
            for k, (x, y) in enumerate(points):
                lon, lat = layers.metric.lonlat(x, y)
                rx.append({"id": f"rx-{name}-{k + 1}", "lat": round(float(lat), 6), "lon": round(float(lon), 6),
                           "p1m_dbm": -59, "path_loss_n": PATH_LOSS_N})
    return rx


def seed_demo(session: Session, *, n_patients: int = 30) -> SeedResult:
    """Create the demo district once; a second call only issues fresh demo tokens."""
    from chumphae.map.demo import demo_homes
    from chumphae.map.store import load_default_map, load_layers
    from chumphae.map.zonestore import save_zone

    load_default_map(session)
    # Seeded already: the demo accounts exist (not the patients' "[demo]" note, which a PATCH of `notes`,
    # as docs/mobile-api.md shows, removes: with every note edited, a second district was seeded).
    names = [name for _login, _role, name in demo_users()]
    if session.exec(select(User.id).where(col(User.name).in_(names))).first() is not None:
        sites = select(Gateway.site).where(col(Gateway.slug) == col(Gateway.site))
        count = session.exec(select(func.count(distinct(col(Wristband.patient_id))))
                             .where(col(Wristband.site).in_(sites))).one()
        return SeedResult(created=False, patients=int(count), tokens=rotate_demo_tokens(session),
                          user_ids=demo_user_ids(session))

    rng = random.Random(RNG_SEED)
    layers = load_layers(session)
    homes = demo_homes(layers, n_patients, seed=RNG_SEED)
    patients = demo_people(len(homes), rng)
    users: dict[str, User] = {}
    tokens: dict[str, str] = {}
    for login, role, name in demo_users():
        users[login], tokens[login] = create_user(session, name=name, role=role)

    by_area: dict[str, list[tuple[Patient, DemoHome]]] = {}
    for patient, home in zip(patients, homes, strict=True):
        patient.home_parcel_code, patient.home_building_code = home.parcel_code, home.building_code
        patient.home_lat, patient.home_lon = home.lat, home.lon
        patient.village = home.area
        session.add(patient)
        by_area.setdefault(home.area, []).append((patient, home))
    session.flush()

    gateway_tokens: dict[str, str] = {}
    band_no = 0
    for area, members in sorted(by_area.items()):
        slug = _slug(area)
        site_homes = [h for _, h in members]
        gw, gw_token = create_gateway(session, slug=slug, name=f"{area} gateway", site=slug,
                                      lat=site_homes[0].lat, lon=site_homes[0].lon,
                                      receivers=_receivers(site_homes, rng, layers))
        gateway_tokens[slug] = gw_token
        for k, (patient, home) in enumerate(members):
            if k == 0:
                # The first band of each site belongs to a known wanderer whose care manager asked
                # for a short dwell (30 s), so `chumphae demo`'s first excursion, a walk out of the zone,
                # rings soon (README: its measured time to the first alert).
                patient.nhso_group, patient.thresholds = 2, {"wander_dwell_s": 30}
                session.add(patient)
            band_no += 1
            session.add(Wristband(address=f"C0:CA:FE:00:{band_no // 256:02X}:{band_no % 256:02X}",
                                  model="chumphae-v1", key_hex=band_key(rng), patient_id=patient.id,
                                  site=gw.site))
            save_zone(session, patient_id=patient.id, spec=home.zone_spec(), layers=layers)  # type: ignore[arg-type]
            town = home.area == "Chumphae town"
            assign(session, user_id=users["volunteer1" if town else "volunteer2"].id,  # type: ignore[arg-type]
                   patient_id=patient.id, relation="volunteer")  # type: ignore[arg-type]
    for login, area_is_town in (("caregiver1", True), ("caregiver2", False)):
        mine = [p for p, h in zip(patients, homes, strict=True) if (h.area == "Chumphae town") == area_is_town][:3]
        for p in mine:
            assign(session, user_id=users[login].id, patient_id=p.id)  # type: ignore[arg-type]
    session.flush()
    return SeedResult(created=True, patients=len(patients), tokens=tokens, gateway_tokens=gateway_tokens,
                      user_ids=demo_user_ids(session))


def rotate_gateway_tokens(session: Session, *, seeded_only: bool = False) -> dict[str, str]:
    """Fresh tokens for every gateway (the demo runs their simulated twins in-process).

    `seeded_only`: only the demo's own gateways, each of which is its own site (slug = site); a gateway
    someone added beside them (`chumphae gateways create --site gw-chumphae-town`, an outside client)
    keeps its token and is not simulated."""
    from chumphae.auth.tokens import hash_token, new_token, token_prefix

    tokens = {}
    for gw in session.exec(select(Gateway).order_by(col(Gateway.id))).all():
        if seeded_only and gw.slug != gw.site:
            continue
        token = new_token("gateway")
        gw.token_hash, gw.token_prefix = hash_token(token), token_prefix(token)
        session.add(gw)
        tokens[gw.slug] = token
    session.flush()
    return tokens
