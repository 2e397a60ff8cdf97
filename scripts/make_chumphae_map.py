"""Generate the synthetic Chumphae tax-map layer set (mapdata/chumphae.gpkg).

Why synthetic: the municipality's real LTAX export is not public. This script
builds a plausible stand-in at the real place (town centre 16.5442 N,
102.0997 E) so the matcher, the safe zones and the demo run against something
town-sized: a grid town core cut by Highway 12 (east-west) and Highway 201
(north-south), ten villages a few km out linked by rural roads, paddy fields
around each, buildings inside parcels, footpaths along the paddy bunds, and
the landmarks people navigate by.

Deterministic: one seeded numpy generator, no network, no clock. Written in
EPSG:32648 (UTM 48N: Chumphae is ~10 km east of 102 °E) like an LTAX export.

    .venv/bin/python scripts/make_chumphae_map.py [--out mapdata/chumphae.gpkg]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely.affinity import rotate, translate
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.ops import substring

SEED = 4005  # the district geocode of Chumphae
CENTRE_LON, CENTRE_LAT = 102.0997, 16.5442
EPSG = 32648
TOWN_HALF = 1300.0  # the town grid spans ±1.3 km around the centre
SEGMENT_M = 500.0  # routes are cut into pieces a volunteer can assign

# (Thai, English, bearing from the town centre in degrees, distance km, has รพ.สต.)
VILLAGES = [
    ("โนนหัน", "Non Han", 40, 5.0, True),
    ("หนองเขียด", "Nong Khiat", 130, 6.0, True),
    ("ไชยสอ", "Chai So", 185, 7.0, True),
    ("ขัวเรียง", "Khua Riang", 275, 4.5, True),
    ("นาหนองทุ่ม", "Na Nong Thum", 315, 8.0, True),
    ("วังหินลาด", "Wang Hin Lat", 355, 6.0, False),
    ("หนองไผ่", "Nong Phai", 95, 6.5, False),
    ("โนนสะอาด", "Non Sa-at", 225, 6.0, True),
    ("โสก", "Sok", 70, 9.0, False),
    ("นาเพียง", "Na Phiang", 200, 10.5, False),
]

# Town landmarks: (th, en, kind, dx, dy) in metres from the centre; institutions take a block.
TOWN_LANDMARKS = [
    ("วัดศรีชมภู", "Wat Si Chomphu", "temple", 260, 380),
    ("โรงพยาบาลชุมแพ", "Chumphae Hospital", "hospital", 880, -170),
    ("ตลาดสดเทศบาลชุมแพ", "Chumphae Municipal Fresh Market", "market", -150, 120),
    ("โรงเรียนชุมแพศึกษา", "Chumphae Suksa School", "school", -720, 610),
    ("ที่ว่าการอำเภอชุมแพ", "Chumphae District Office", "government", 120, -420),
    ("สำนักงานเทศบาลเมืองชุมแพ", "Chumphae Town Municipality Office", "government", -330, -260),
    ("สถานีตำรวจภูธรชุมแพ", "Chumphae Police Station", "police", 420, -80),
    ("สถานีขนส่งผู้โดยสารชุมแพ", "Chumphae Bus Terminal", "bus_station", 70, -900),
    ("วัดโพธิ์ศรี", "Wat Pho Si", "temple", -900, -700),
    ("ศูนย์บริการสาธารณสุขเทศบาลชุมแพ", "Chumphae Municipal Health Centre", "health_station", -480, 330),
    ("สวนสาธารณะหนองน้ำ", "Nong Nam Public Park", "park", 760, 820),
]
TOWN_SHOPS = [
    ("ร้านขายยาชุมแพเภสัช", "Chumphae Pharmacy", 30, 60),
    ("ร้านโชห่วยแม่ทองใบ", "Mae Thongbai Grocery", -420, -40),
    ("ร้านก๋วยเตี๋ยวเจ๊หมวย", "Jae Muay Noodle Shop", 520, 40),
    ("ร้านสะดวกซื้อหน้าโรงพยาบาล", "Hospital Corner Store", 800, -60),
    ("ร้านกาแฟริมทาง", "Roadside Coffee", -640, 40),
    ("ร้านวัสดุก่อสร้างชุมแพ", "Chumphae Building Supplies", 40, -620),
]

LAND_TYPES_TOWN = (["โฉนดที่ดิน", "น.ส.3ก."], [0.93, 0.07])
LAND_TYPES_VILLAGE = (["โฉนดที่ดิน", "น.ส.3ก.", "น.ส.3"], [0.75, 0.2, 0.05])
LAND_TYPES_PADDY = (["โฉนดที่ดิน", "น.ส.3ก.", "ส.ป.ก. 4-01"], [0.55, 0.2, 0.25])
USES = {  # use (Thai) → English
    "บ้านพักอาศัย": "residential", "อาคารพาณิชย์": "shophouse", "ร้านค้า": "shop",
    "ยุ้งข้าว": "granary", "โรงเก็บของ": "storage shed", "เถียงนา": "field hut",
    "อาคารสาธารณะ": "public building", "ศาสนสถาน": "religious building",
}


@dataclass
class Layers:
    parcels: list[tuple[Polygon, dict]] = field(default_factory=list)  # geom, {area, land_type, scale}
    buildings: list[tuple[Polygon, int, str]] = field(default_factory=list)  # geom, parcel index, use
    routes: list[tuple[LineString, str, str, str, float]] = field(default_factory=list)
    landmarks: list[tuple[Point, str, str, str, str]] = field(default_factory=list)
    institution_anchor: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)


def choose(rng: np.random.Generator, table: tuple[list[str], list[float]]) -> str:
    return str(rng.choice(table[0], p=table[1]))


def jittered_lines(rng: np.random.Generator, lo: float, hi: float, step: tuple[float, float]) -> list[float]:
    """Street positions from 0 outwards to both sides, with irregular spacing."""
    out = [0.0]
    for sign in (1, -1):
        v = 0.0
        while True:
            v += sign * rng.uniform(*step)
            if not lo <= v <= hi:
                break
            out.append(v)
    return sorted(out)


def add_route(layers: Layers, line: LineString, th: str, en: str, kind: str, width: float) -> None:
    """Cut a line into ~500 m pieces: the unit a volunteer assigns to a patient."""
    n = max(1, round(line.length / SEGMENT_M))
    for i in range(n):
        piece = substring(line, line.length * i / n, line.length * (i + 1) / n)
        if piece.length > 1:
            layers.routes.append((piece, th, en, kind, width))


def lots_in_block(rng: np.random.Generator, cell: Polygon, frontage: tuple[float, float],
                  soi: bool) -> tuple[list[Polygon], LineString | None]:
    """Two rows of lots along the long side of a rectangular block (back to back or facing a soi)."""
    x0, y0, x1, y1 = cell.bounds
    along_x = (x1 - x0) >= (y1 - y0)
    gap = 4.0 if soi else 0.0
    lots: list[Polygon] = []
    lane = None
    if along_x:
        mid = (y0 + y1) / 2
        rows = [(y0, mid - gap / 2), (mid + gap / 2, y1)]
        if soi:
            lane = LineString([(x0, mid), (x1, mid)])
    else:
        mid = (x0 + x1) / 2
        rows = [(x0, mid - gap / 2), (mid + gap / 2, x1)]
        if soi:
            lane = LineString([(mid, y0), (mid, y1)])
    a0, a1 = (x0, x1) if along_x else (y0, y1)
    for r0, r1 in rows:
        a = a0
        while a < a1 - 1:
            w = rng.uniform(*frontage)
            b = a1 if a1 - (a + w) < frontage[0] * 0.6 else a + w
            lots.append(box(a, r0, b, r1) if along_x else box(r0, a, r1, b))
            a = b
    return lots, lane


def building_in(rng: np.random.Generator, parcel: Polygon, size: tuple[float, float],
                setback: float = 2.5) -> Polygon | None:
    """A rectangle inside the parcel, away from its edges; None if the parcel is too small."""
    inner = parcel.buffer(-setback)
    if inner.is_empty or inner.area < 20:
        return None
    w, h = rng.uniform(*size), rng.uniform(*size)
    for _ in range(8):
        x0, y0, x1, y1 = inner.bounds
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        b = box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2).intersection(inner)
        if b.area > 0.6 * w * h:
            return shapely.normalize(b.envelope.intersection(inner))
        w, h = w * 0.8, h * 0.8
    return None


def make_town(rng: np.random.Generator, layers: Layers) -> None:
    xs = jittered_lines(rng, -TOWN_HALF, TOWN_HALF, (105, 150))
    ys = jittered_lines(rng, -TOWN_HALF, TOWN_HALF, (105, 150))
    pending = {i: lm for i, lm in enumerate(TOWN_LANDMARKS)}
    for i, x in enumerate(xs):
        if x != 0:
            add_route(layers, LineString([(x, ys[0]), (x, ys[-1])]), f"ถนนเทศบาล {2 * i + 1}",
                      f"Thetsaban Road {2 * i + 1}", "road", 8.0)
    for j, y in enumerate(ys):
        if y != 0:
            add_route(layers, LineString([(xs[0], y), (xs[-1], y)]), f"ถนนเทศบาล {2 * j + 2}",
                      f"Thetsaban Road {2 * j + 2}", "road", 8.0)
    soi_no = 0
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            hx0 = 10 if xs[i] == 0 else 4
            hx1 = 10 if xs[i + 1] == 0 else 4
            hy0 = 10 if ys[j] == 0 else 4
            hy1 = 10 if ys[j + 1] == 0 else 4
            cell = box(xs[i] + hx0, ys[j] + hy0, xs[i + 1] - hx1, ys[j + 1] - hy1)
            hit = next((k for k, lm in pending.items() if cell.buffer(4).contains(Point(lm[3], lm[4]))), None)
            if hit is not None:
                th, en, kind, _, _ = pending.pop(hit)
                layers.institution_anchor[len(layers.parcels)] = (th, en, kind, "")
                layers.parcels.append((cell, {"lt": "โฉนดที่ดิน", "scale": "1:1000", "use": "inst"}))
                continue
            r = max(abs(cell.centroid.x), abs(cell.centroid.y))
            if r > 900 and rng.random() < 0.2:  # vacant or paddy land inside the town edge
                layers.parcels.append((cell, {"lt": choose(rng, LAND_TYPES_TOWN), "scale": "1:1000", "use": "paddy"}))
                continue
            core = r < 600
            frontage = (10, 18) if core else (18, 36)
            depth = min(cell.bounds[2] - cell.bounds[0], cell.bounds[3] - cell.bounds[1])
            lots, lane = lots_in_block(rng, cell, frontage, soi=depth > 90 and rng.random() < 0.35)
            if lane is not None:
                soi_no += 1
                add_route(layers, lane, f"ซอยเทศบาล {soi_no}", f"Soi Thetsaban {soi_no}", "soi", 4.0)
            on_highway = 0 in (xs[i], xs[i + 1], ys[j], ys[j + 1])
            for lot in lots:
                use = "shop" if core and on_highway and rng.random() < 0.8 else "home"
                layers.parcels.append((lot, {"lt": choose(rng, LAND_TYPES_TOWN), "scale": "1:1000", "use": use}))


def village_centre(bearing: float, km: float) -> tuple[float, float]:
    a = math.radians(bearing)
    return km * 1000 * math.sin(a), km * 1000 * math.cos(a)


def paddy_ring(rng: np.random.Generator, layers: Layers, cx: float, cy: float, theta: float,
               r_in_geom: Polygon, radius: float, place_th: str, place_en: str) -> None:
    """Large paddy parcels on a rotated, jittered grid around a settlement, with bund footpaths."""
    us = jittered_lines(rng, -radius, radius, (90, 170))
    vs = jittered_lines(rng, -radius, radius, (70, 140))
    outline = Point(cx, cy).buffer(radius * rng.uniform(0.9, 1.05), 24).difference(r_in_geom)

    def place(g):  # local grid → map
        return translate(rotate(g, theta, origin=(0, 0)), cx, cy)

    for i in range(len(us) - 1):
        for j in range(len(vs) - 1):
            cell = place(box(us[i], vs[j], us[i + 1], vs[j + 1]))
            if outline.contains(cell.centroid):
                part = cell.intersection(outline)
                if part.area > 800:
                    for p in getattr(part, "geoms", [part]):
                        if p.geom_type == "Polygon" and p.area > 800:
                            layers.parcels.append((p, {"lt": choose(rng, LAND_TYPES_PADDY), "scale": "1:4000",
                                                       "use": "paddy"}))
    for k, u in enumerate(us[1:-1]):
        if k % 3 == 0:
            paths = place(LineString([(u, -radius), (u, radius)])).intersection(outline)
            for p in getattr(paths, "geoms", [paths]):
                if p.geom_type == "LineString" and p.length > 50:
                    add_route(layers, p, f"ทางเดินคันนา{place_th}", f"{place_en} paddy bund path", "footpath", 1.5)
    for k, v in enumerate(vs[1:-1]):
        if k % 4 == 1:
            paths = place(LineString([(-radius, v), (radius, v)])).intersection(outline)
            for p in getattr(paths, "geoms", [paths]):
                if p.geom_type == "LineString" and p.length > 50:
                    add_route(layers, p, f"ทางเดินคันนา{place_th}", f"{place_en} paddy bund path", "footpath", 1.5)


def make_village(rng: np.random.Generator, layers: Layers, th: str, en: str, bearing: float, km: float,
                 health: bool) -> None:
    cx, cy = village_centre(bearing, km)
    theta = rng.uniform(-25, 25)
    half = rng.uniform(260, 380)
    us = jittered_lines(rng, -half, half, (70, 105))
    vs = jittered_lines(rng, -half, half, (70, 105))

    def place(g):
        return translate(rotate(g, theta, origin=(0, 0)), cx, cy)

    for k, u in enumerate(us):
        add_route(layers, place(LineString([(u, vs[0]), (u, vs[-1])])), f"ถนนในหมู่บ้าน{th} ซอย {k + 1}",
                  f"Ban {en} Lane {k + 1}", "lane", 5.0)
    for k, v in enumerate(vs):
        add_route(layers, place(LineString([(us[0], v), (us[-1], v)])), f"ถนนในหมู่บ้าน{th} สาย {k + 1}",
                  f"Ban {en} Street {k + 1}", "lane", 5.0)
    inst = [(f"วัดบ้าน{th}", f"Wat Ban {en}", "temple"), (f"โรงเรียนบ้าน{th}", f"Ban {en} School", "school"),
            (f"ศาลากลางบ้าน{th}", f"Ban {en} Village Hall", "village_hall")]
    if health:
        inst.append((f"โรงพยาบาลส่งเสริมสุขภาพตำบลบ้าน{th}", f"Ban {en} Health-Promoting Hospital", "health_station"))
    cells = [(i, j) for i in range(len(us) - 1) for j in range(len(vs) - 1)]
    picks = set(int(k) for k in rng.choice(len(cells), size=min(len(inst), len(cells)), replace=False))
    for n, (i, j) in enumerate(cells):
        cell = place(box(us[i] + 2.5, vs[j] + 2.5, us[i + 1] - 2.5, vs[j + 1] - 2.5))
        if n in picks:
            lth, len_, kind = inst.pop()
            layers.institution_anchor[len(layers.parcels)] = (lth, len_, kind, en)
            layers.parcels.append((cell, {"lt": "โฉนดที่ดิน", "scale": "1:4000", "use": "inst"}))
            continue
        local = box(us[i] + 2.5, vs[j] + 2.5, us[i + 1] - 2.5, vs[j + 1] - 2.5)
        lots, _ = lots_in_block(rng, local, (20, 42), soi=False)
        for lot in lots:
            layers.parcels.append((place(lot), {"lt": choose(rng, LAND_TYPES_VILLAGE), "scale": "1:4000",
                                                "use": "village"}))
    core = place(box(us[0] - 2.5, vs[0] - 2.5, us[-1] + 2.5, vs[-1] + 2.5))
    paddy_ring(rng, layers, cx, cy, theta, core, rng.uniform(1000, 1300), th, en)
    shop_at = place(Point(us[len(us) // 2] + 12, vs[len(vs) // 2] + 12))
    layers.landmarks.append((shop_at, f"ร้านค้าชุมชนบ้าน{th}", f"Ban {en} Community Shop", "shop", en))


def highway(points: list[tuple[float, float]]) -> LineString:
    return LineString(points)


def make_roads(rng: np.random.Generator, layers: Layers) -> list[LineString]:
    """Highways 12 and 201 and one rural road per village; returns lines for cutting parcels."""
    h = TOWN_HALF
    hw12 = highway([(-14000, 900), (-9000, 400), (-5000, -200), (-h, 0), (h, 0), (4000, 150),
                    (8000, -350), (14000, -700)])
    hw201 = highway([(-600, -14000), (-300, -8000), (150, -4000), (0, -h), (0, h), (-250, 4000),
                     (300, 9000), (900, 14000)])
    add_route(layers, hw12, "ถนนมะลิวัลย์ (ทางหลวงหมายเลข 12)", "Maliwan Road (Highway 12)", "highway", 20.0)
    add_route(layers, hw201, "ทางหลวงหมายเลข 201", "Highway 201", "highway", 20.0)
    cut = [(hw12, 10.0), (hw201, 10.0)]
    centres = [village_centre(b, km) for _, _, b, km, _ in VILLAGES]
    for (th, en, *_), (cx, cy) in zip(VILLAGES, centres, strict=True):
        p = Point(cx, cy)
        target = min((hw12, hw201), key=lambda ln: ln.distance(p))
        end = target.interpolate(target.project(p))
        mid = ((cx + end.x) / 2 + rng.uniform(-300, 300), (cy + end.y) / 2 + rng.uniform(-300, 300))
        road = LineString([(cx, cy), mid, (end.x, end.y)])
        add_route(layers, road, f"ถนนเชื่อมบ้าน{th}", f"Ban {en} link road", "rural_road", 6.0)
        cut.append((road, 3.0))
        # and to the nearest other village
        others = sorted((math.dist((cx, cy), c), k) for k, c in enumerate(centres) if c != (cx, cy))
        ox, oy = centres[others[0][1]]
        if others[0][0] < 7000 and (cx, cy) < (ox, oy):
            link = LineString([(cx, cy), ((cx + ox) / 2 + rng.uniform(-200, 200), (cy + oy) / 2), (ox, oy)])
            add_route(layers, link, f"ถนนบ้าน{th}-บ้าน{VILLAGES[others[0][1]][0]}",
                      f"Ban {en} - Ban {VILLAGES[others[0][1]][1]} road", "rural_road", 6.0)
            cut.append((link, 3.0))
    return [ln.buffer(w, cap_style="flat") for ln, w in cut]


def cut_by_roads(layers: Layers, road_buffers: list[Polygon]) -> None:
    """Roads are gaps between parcels: cut every parcel a road crosses (keeping real pieces)."""
    tree = shapely.STRtree(road_buffers)
    geoms = [g for g, _ in layers.parcels]
    hits = tree.query(geoms, predicate="intersects")
    by_parcel: dict[int, list[int]] = {}
    for a, b in hits.T:
        by_parcel.setdefault(int(a), []).append(int(b))
    out: list[tuple[Polygon, dict]] = []
    anchors: dict[int, tuple[str, str, str, str]] = {}
    for idx, (g, attrs) in enumerate(layers.parcels):
        if idx in by_parcel:
            g = g.difference(shapely.union_all([road_buffers[k] for k in by_parcel[idx]]))
        parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon" and p.area >= 60]
        parts.sort(key=lambda p: -p.area)
        for n, p in enumerate(parts):
            if n == 0 and idx in layers.institution_anchor:
                anchors[len(out)] = layers.institution_anchor[idx]
            out.append((shapely.normalize(p), attrs))
    layers.parcels, layers.institution_anchor = out, anchors


def make_buildings(rng: np.random.Generator, layers: Layers) -> None:
    """Houses, shophouses, granaries and field huts inside their parcels; institutions get a few halls."""
    for idx, (g, attrs) in enumerate(layers.parcels):
        use = attrs["use"]
        if idx in layers.institution_anchor:
            th, en, kind, village = layers.institution_anchor[idx]
            main_use = "ศาสนสถาน" if kind == "temple" else "อาคารสาธารณะ"
            x0, y0, x1, y1 = g.bounds
            placed = 0
            for qx, qy in ((0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7)):
                if placed and rng.random() < 0.3:
                    continue
                cx, cy = x0 + (x1 - x0) * qx, y0 + (y1 - y0) * qy
                b = box(cx - 11, cy - 8, cx + 11, cy + 8).intersection(g.buffer(-3))
                if b.area > 100:
                    layers.buildings.append((shapely.normalize(b.envelope.intersection(g.buffer(-1))), idx, main_use))
                    placed += 1
            layers.landmarks.append((g.point_on_surface(), th, en, kind, village))
            continue
        if use == "paddy":
            if rng.random() < 0.08:
                b = building_in(rng, g, (3, 5), setback=4)
                if b is not None:
                    layers.buildings.append((b, idx, "เถียงนา"))
            continue
        if use == "shop":
            b = building_in(rng, g, (7, 14), setback=1.0)
            kinds = "อาคารพาณิชย์" if rng.random() < 0.7 else "ร้านค้า"
        else:
            b = building_in(rng, g, (9, 15))
            kinds = "ร้านค้า" if rng.random() < 0.04 else "บ้านพักอาศัย"
        if b is None:
            continue
        layers.buildings.append((b, idx, kinds))
        if use == "village" and rng.random() < 0.45:
            extra = building_in(rng, g.difference(b.buffer(2)), (3.5, 6), setback=1.5)
            if extra is not None:
                layers.buildings.append((extra, idx, "ยุ้งข้าว" if rng.random() < 0.6 else "โรงเก็บของ"))


def add_town_shops(layers: Layers) -> None:
    """Shops people name as landmarks sit in the building nearest their anchor."""
    pts = shapely.points([(b.centroid.x, b.centroid.y) for b, _, _ in layers.buildings])
    tree = shapely.STRtree(pts)
    for th, en, dx, dy in TOWN_SHOPS:
        k = int(tree.nearest(Point(dx, dy)))
        b, pidx, _ = layers.buildings[k]
        layers.buildings[k] = (b, pidx, "ร้านค้า")
        layers.landmarks.append((b.centroid, th, en, "shop", ""))


def ltax_codes(rng: np.random.Generator, layers: Layers, cx: float, cy: float) -> list[dict]:
    """zone (2 digits, 1.5 km tiles) + block letter (5×5 sub-tiles of 300 m) + lot (3 digits)."""
    cents = np.array([(g.centroid.x, g.centroid.y) for g, _ in layers.parcels])
    tile = np.floor(cents / 1500.0).astype(int)
    sub = np.floor((cents - tile * 1500.0) / 300.0).astype(int).clip(0, 4)
    tiles = sorted({(int(tx), int(ty)) for tx, ty in tile}, key=lambda t: (-t[1], t[0]))
    zone_of = {t: n + 1 for n, t in enumerate(tiles)}
    assert len(zone_of) <= 99, "LTAX zones are two digits"
    keys = []
    for k in range(len(cents)):
        z = zone_of[(int(tile[k, 0]), int(tile[k, 1]))]
        blk = "ABCDEFGHIJKLMNOPQRSTUVWXY"[(4 - sub[k, 1]) * 5 + sub[k, 0]]
        keys.append((z, blk, -cents[k, 1], cents[k, 0], k))
    keys.sort()
    rows: list[dict] = [{}] * len(cents)
    lot_no: dict[tuple[int, str], int] = {}
    land_nos = rng.permutation(np.arange(1000, 1000 + 4 * len(cents)))[: len(cents)]
    for z, blk, _, _, k in keys:
        lot = lot_no[(z, blk)] = lot_no.get((z, blk), 0) + 1
        tx, ty = tile[k]
        attrs = layers.parcels[k][1]
        rows[k] = {
            "zone": f"{z:02d}", "block": blk, "lot": f"{lot:03d}", "parcel_code": f"{z:02d}{blk}{lot:03d}",
            "survey": str(int(rng.integers(1, 3000))), "land_no": str(int(land_nos[k])),
            "land_type": attrs["lt"],
            "Mapsheet": f"5541II{(tx + 20) % 100:02d}{(ty + 20) % 100:02d}",  # synthetic sheet numbers
            "Scale": attrs["scale"],
        }
    assert len({r["parcel_code"] for r in rows}) == len(rows)
    return rows


def build(seed: int = SEED) -> dict[str, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    layers = Layers()
    road_buffers = make_roads(rng, layers)
    make_town(rng, layers)
    town = box(-TOWN_HALF - 6, -TOWN_HALF - 6, TOWN_HALF + 6, TOWN_HALF + 6)
    paddy_ring(rng, layers, 0.0, 0.0, 3.0, town, 2600.0, "ชุมแพ", "Chumphae")
    for th, en, bearing, km, health in VILLAGES:
        make_village(rng, layers, th, en, bearing, km, health)
    cut_by_roads(layers, road_buffers)
    make_buildings(rng, layers)
    add_town_shops(layers)

    to_utm = Transformer.from_crs(4326, EPSG, always_xy=True)
    cx, cy = to_utm.transform(CENTRE_LON, CENTRE_LAT)
    rows = ltax_codes(rng, layers, cx, cy)

    def utm(g):
        return translate(g, cx, cy)

    parcels = gpd.GeoDataFrame(rows, geometry=[utm(MultiPolygon([g])) for g, _ in layers.parcels], crs=EPSG)
    per_parcel: dict[int, int] = {}
    brows, bgeoms = [], []
    for g, pidx, use in layers.buildings:
        n = per_parcel[pidx] = per_parcel.get(pidx, 0) + 1
        pc = rows[pidx]["parcel_code"]
        brows.append({"building_code": f"{pc}-B{n:03d}", "parcel_code": pc, "use": use, "use_en": USES[use],
                      "floors": 1 if use in ("ยุ้งข้าว", "เถียงนา", "โรงเก็บของ") else int(rng.choice([1, 2], p=[0.7, 0.3]))})
        bgeoms.append(utm(g))
    buildings = gpd.GeoDataFrame(brows, geometry=bgeoms, crs=EPSG)
    routes = gpd.GeoDataFrame(
        [{"route_id": f"R{n + 1:05d}", "name": th, "name_en": en, "kind": kind, "width": w}
         for n, (_, th, en, kind, w) in enumerate(layers.routes)],
        geometry=[utm(g) for g, *_ in layers.routes], crs=EPSG)
    landmarks = gpd.GeoDataFrame(
        [{"landmark_id": f"LM{n + 1:03d}", "name_th": th, "name_en": en, "kind": kind,
          "village": f"Ban {v}" if v else "Chumphae town"}
         for n, (_, th, en, kind, v) in enumerate(layers.landmarks)],
        geometry=[utm(g) for g, *_ in layers.landmarks], crs=EPSG)
    for gdf in (parcels, buildings, routes, landmarks):
        gdf.geometry = shapely.set_precision(gdf.geometry.values, 0.01)  # centimetres, like a survey file
    return {"parcels": parcels, "buildings": buildings, "routes": routes, "landmarks": landmarks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mapdata" / "chumphae.gpkg")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    layers = build(args.seed)
    for name, gdf in layers.items():
        gdf.to_file(out, layer=name, driver="GPKG", engine="pyogrio", layer_options={"SPATIAL_INDEX": "NO"})
    p, b, r = layers["parcels"], layers["buildings"], layers["routes"]
    bbox = p.to_crs(4326).total_bounds
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), EPSG:{EPSG}")
    print(f"parcels {len(p)} (median {p.area.median():.0f} m²), buildings {len(b)} "
          f"(median {b.area.median():.0f} m²), routes {len(r)} ({r.length.sum() / 1000:.0f} km), "
          f"landmarks {len(layers['landmarks'])}")
    print("route km by kind: " + ", ".join(f"{k} {v / 1000:.0f}" for k, v in r.groupby("kind").geometry
                                            .apply(lambda s: s.length.sum()).items()))
    print(f"bbox WGS 84: {bbox[0]:.4f} {bbox[1]:.4f} {bbox[2]:.4f} {bbox[3]:.4f}")


if __name__ == "__main__":
    main()
