"""Read a municipality's tax-map export and make it fit to store (pure of the database).

GeoJSON, GeoPackage and Shapefile are read with geopandas (pyogrio). A file
that states no CRS is refused unless the operator names one: guessing between
WGS 84 and Indian 1975 moves every house by ~80 m. Broken geometries are
repaired or dropped, empty ones dropped, and everything is counted so the
operator sees what happened to their data. Output geometry is WGS 84.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from chumphae.errors import ConfigError
from chumphae.map.crs import WGS84, Metric, candidates_text, inside_thailand, transform_geoms

LAYERS = ("parcels", "buildings", "routes", "landmarks")
_POLYGONAL = {"Polygon", "MultiPolygon"}
_LINEAR = {"LineString", "MultiLineString"}

# Where each stored column comes from: canonical attribute → accepted source names (case-insensitive).
# Shapefiles cut names to 10 characters, hence parcel_cod / building_c.
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "parcels": {"code": ("parcel_code", "parcel_cod", "pcode", "parcelcode"),
                "kind": ("land_type", "landtype", "land_type_")},
    "buildings": {"code": ("building_code", "building_c", "bldg_code", "b_code", "code"),
                  "kind": ("use", "building_use", "bldg_use")},
    "routes": {"code": ("route_id", "route_code", "code", "id"), "name_th": ("name", "name_th"),
               "name_en": ("name_en",), "kind": ("kind", "type", "route_kind")},
    "landmarks": {"code": ("landmark_id", "code", "id"), "name_th": ("name_th", "name"),
                  "name_en": ("name_en",), "kind": ("kind", "type")},
}


class MapImportError(ConfigError):
    """A map file that cannot be imported as asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class FeatureRecord:
    """One map feature ready to store: WGS 84 geometry plus the columns of `MapFeature`."""

    layer: str
    code: str | None
    name_th: str | None
    name_en: str | None
    kind: str | None
    props: dict[str, Any]
    geom: BaseGeometry


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What happened to one file (or, combined, to a whole layer set)."""

    source: str
    layer: str
    dataset: str
    source_crs: str | None
    metric_epsg: int | None
    read: int
    kept: int
    repaired: int
    dropped: int
    empty: int
    converted: int = 0  # e.g. a landmark drawn as a polygon, kept as a point on it
    without_code: int = 0
    duplicate_count: int = 0
    duplicate_examples: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None  # WGS 84
    warnings: tuple[str, ...] = ()
    skipped: bool = False  # already loaded, nothing done

    def lines(self) -> list[str]:
        """The summary a person reads after an import (English; codes and numbers speak for themselves)."""
        out = [f"{self.source} → layer {self.layer} (dataset {self.dataset})"]
        if self.skipped:
            return [*out, "  already loaded: nothing done"]
        out.append(f"  CRS: {self.source_crs}; measured in EPSG:{self.metric_epsg}")
        out.append(f"  features read {self.read}, kept {self.kept}, repaired {self.repaired}, "
                   f"dropped {self.dropped}, empty {self.empty}"
                   + (f", converted {self.converted}" if self.converted else ""))
        if self.without_code:
            out.append(f"  without a code: {self.without_code}")
        if self.duplicate_count:
            out.append(f"  duplicate codes: {self.duplicate_count} (e.g. {', '.join(self.duplicate_examples)})")
        if self.bbox:
            out.append("  bounding box (WGS 84): " + " ".join(f"{v:.6f}" for v in self.bbox))
        out.extend(f"  warning: {w}" for w in self.warnings)
        return out

    @staticmethod
    def combine(parts: list[ImportSummary], source: str, dataset: str) -> ImportSummary:
        boxes = [p.bbox for p in parts if p.bbox]
        bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes)) if boxes else None
        return ImportSummary(
            source=source, layer=",".join(p.layer for p in parts), dataset=dataset,
            source_crs=", ".join(sorted({p.source_crs or "?" for p in parts})),
            metric_epsg=parts[0].metric_epsg if parts else None,
            read=sum(p.read for p in parts), kept=sum(p.kept for p in parts),
            repaired=sum(p.repaired for p in parts), dropped=sum(p.dropped for p in parts),
            empty=sum(p.empty for p in parts), converted=sum(p.converted for p in parts),
            without_code=sum(p.without_code for p in parts),
            duplicate_count=sum(p.duplicate_count for p in parts),
            duplicate_examples=tuple(c for p in parts for c in p.duplicate_examples)[:10],
            bbox=bbox, warnings=tuple(w for p in parts for w in p.warnings),
            skipped=bool(parts) and all(p.skipped for p in parts))


@dataclass(frozen=True, slots=True)
class ImportResult:
    records: list[FeatureRecord]
    summary: ImportSummary
    extra: dict[str, Any] = field(default_factory=dict)


def parse_field_map(items: list[str] | None) -> dict[str, str]:
    """`["parcel_code=PCODE", ...]` → {"parcel_code": "PCODE"} (what we call it = what the file calls it)."""
    out: dict[str, str] = {}
    for item in items or []:
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise MapImportError(f"--field wants OURS=THEIRS, e.g. parcel_code=PCODE; got {item!r}")
        out[target.strip()] = source.strip()
    return out


def _pick_source_layer(path: Path, layer: str, source_layer: str | None) -> str | None:
    import pyogrio

    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise MapImportError(f"cannot read {path.name}: {exc}") from None
    if source_layer:
        if source_layer not in names:
            raise MapImportError(f"{path.name} has no layer {source_layer!r}; it has: {', '.join(names)}")
        return source_layer
    if len(names) <= 1:
        return None
    if layer in names:
        return layer
    raise MapImportError(f"{path.name} has several layers ({', '.join(names)}): name one with --source-layer")


def _json_value(v: Any) -> Any:
    """A value that survives a JSON column (Thai text as is; NaN and NaT become absent)."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, str | int | float | bool):
        return v
    try:
        if v != v:  # pandas NaT / NA
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def _text(v: Any) -> str | None:
    v = _json_value(v)
    if v is None:
        return None
    s = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return s.strip() or None


_NATIVE = {"parcels": _POLYGONAL, "buildings": _POLYGONAL, "routes": _LINEAR, "landmarks": {"Point"}}


def _fix_geometries(geoms: Any, layer: str) -> tuple[np.ndarray, dict[str, int]]:
    """Repair what can be repaired, set the rest to None; returns (geoms, counts)."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), None, dtype=object)
    present = np.flatnonzero([g is not None for g in geoms])
    live = present[~shapely.is_empty(geoms[present])] if len(present) else present
    counts = {"empty": len(geoms) - len(live), "repaired": 0, "dropped": 0, "converted": 0}
    if not len(live):
        return out, counts
    flat = shapely.force_2d(geoms[live])
    valid = shapely.is_valid(flat)
    native = np.isin(shapely.get_type_id(flat), [_TYPE_IDS[t] for t in _NATIVE[layer]])
    good = valid & native
    out[live[good]] = flat[good]
    for i, g, ok in zip(live[~good], flat[~good], valid[~good], strict=True):
        fixed = _keep_layer_type(g if ok else shapely.make_valid(g), layer)
        if fixed is None or fixed.is_empty:
            counts["dropped"] += 1
            continue
        counts["repaired" if not ok else "converted"] += 1
        out[i] = fixed
    return out, counts


_TYPE_IDS = {"Point": 0, "LineString": 1, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}


def _keep_layer_type(g: BaseGeometry, layer: str) -> BaseGeometry | None:
    """The part of a geometry this layer can use (polygons / lines / a point)."""
    parts = shapely.get_parts(g)
    if layer in ("parcels", "buildings"):
        polys = [p for p in parts if p.geom_type in _POLYGONAL and p.area > 0]
        return shapely.MultiPolygon(list(shapely.get_parts(polys))) if polys else None
    if layer == "routes":
        lines = [p for p in parts if p.geom_type in _LINEAR and p.length > 0]
        return shapely.line_merge(shapely.MultiLineString(list(shapely.get_parts(lines)))) if lines else None
    if g.geom_type == "Point":
        return g
    if g.geom_type == "MultiPoint":
        return g.geoms[0]
    return g.point_on_surface() if not g.is_empty else None


def read_layer(path: str | Path, layer: str, *, epsg: int | None = None,
               fields: Mapping[str, str] | None = None, encoding: str | None = None,
               source_layer: str | None = None, dataset: str | None = None) -> ImportResult:
    """Read one layer of a municipality's file into WGS 84 feature records plus a summary."""
    import geopandas as gpd  # here, not at import time: `chumphae --help` stays fast

    path = Path(path)
    if layer not in LAYERS:
        raise MapImportError(f"unknown layer {layer!r}: use one of {', '.join(LAYERS)}")
    if not path.exists():
        raise MapImportError(f"no such file: {path}")
    src_layer = _pick_source_layer(path, layer, source_layer)
    kwargs: dict[str, Any] = {"engine": "pyogrio"}
    if encoding:
        kwargs["encoding"] = encoding
    gdf = gpd.read_file(path, layer=src_layer, **kwargs) if src_layer else gpd.read_file(path, **kwargs)
    warnings: list[str] = []
    if gdf.crs is None and epsg is None:
        raise MapImportError(f"{path.name} states no coordinate system; pass --epsg N. "
                             f"Likely for a Thai tax map: {candidates_text()}. Do not guess: "
                             "WGS 84 and Indian 1975 differ by about 80 m.")
    if epsg is not None:
        if gdf.crs is not None and gdf.crs.to_epsg() != epsg:
            warnings.append(f"the file says {gdf.crs.to_string()}, used EPSG:{epsg} as told by --epsg")
        gdf = gdf.set_crs(epsg, allow_override=True)
    src_crs = gdf.crs
    src_name = f"EPSG:{src_crs.to_epsg()}" if src_crs.to_epsg() else src_crs.to_string()
    gdf, columns = _resolve_columns(gdf, layer, fields or {}, path)

    geoms, counts = _fix_geometries(gdf.geometry.values, layer)
    keep = np.array([g is not None for g in geoms], dtype=bool)
    if src_crs.is_geographic:
        b = shapely.total_bounds(geoms[keep]) if keep.any() else None
        if b is not None and (abs(b[0]) > 180 or abs(b[2]) > 180 or abs(b[1]) > 90 or abs(b[3]) > 90):
            raise MapImportError(f"{path.name} says {src_name} (degrees) but its coordinates are metres; "
                                 f"pass --epsg with one of: {candidates_text()}")
    wgs = np.full(len(geoms), None, dtype=object)
    if keep.any():
        wgs[keep] = transform_geoms(geoms[keep], src_crs.to_wkt(), WGS84)
    attrs = gdf.drop(columns=gdf.geometry.name).to_dict("records")
    records: list[FeatureRecord] = []
    for i in np.flatnonzero(keep):
        records.append(_record(layer, attrs[i], columns, wgs[i]))
    bbox = tuple(float(v) for v in shapely.total_bounds([r.geom for r in records])) if records else None
    if bbox and not inside_thailand(*bbox):
        raise MapImportError(f"{path.name} lands outside Thailand in {src_name} "
                             f"(bbox {', '.join(f'{v:.3f}' for v in bbox)}): is the CRS right? "
                             f"Candidates: {candidates_text()}")
    codes = Counter(r.code for r in records if r.code)
    dups = sorted(c for c, n in codes.items() if n > 1)
    summary = ImportSummary(
        source=path.name, layer=layer, dataset=dataset or path.stem, source_crs=src_name,
        metric_epsg=Metric.for_bounds(*bbox).epsg if bbox else None,
        read=len(gdf), kept=len(records), repaired=counts["repaired"], dropped=counts["dropped"],
        empty=counts["empty"], converted=counts["converted"],
        without_code=sum(1 for r in records if not r.code),
        duplicate_count=len(dups), duplicate_examples=tuple(dups[:10]),
        bbox=bbox, warnings=tuple(warnings))  # type: ignore[arg-type]
    return ImportResult(records, summary)


def _resolve_columns(gdf: Any, layer: str, fields: Mapping[str, str],
                     path: Path) -> tuple[Any, dict[str, str | None]]:
    """Which file column feeds code / name_th / name_en / kind (after --field renames)."""
    lower = {str(c).lower(): str(c) for c in gdf.columns if c != gdf.geometry.name}
    renames: dict[str, str] = {}
    for ours, theirs in fields.items():
        col = lower.get(theirs.lower())
        if col is None:
            raise MapImportError(f"--field {ours}={theirs}: {path.name} has no column {theirs!r}; "
                                 f"it has: {', '.join(lower.values())}")
        renames[col] = ours
    if renames:
        gdf = gdf.rename(columns=renames)
        lower = {str(c).lower(): str(c) for c in gdf.columns if c != gdf.geometry.name}
    out: dict[str, str | None] = {}
    for target, names in ALIASES[layer].items():
        out[target] = next((lower[n] for n in names if n in lower), None)
    return gdf, out


def _record(layer: str, row: dict[str, Any], columns: dict[str, str | None], geom: BaseGeometry) -> FeatureRecord:
    used = {c for c in columns.values() if c}
    props = {str(k): v for k, v in ((k, _json_value(v)) for k, v in row.items() if k not in used) if v is not None}
    got = {t: (_text(row[c]) if c else None) for t, c in columns.items()}
    code = got.get("code")
    if layer == "parcels" and not code:  # zone + block + lot, found by name in any case as the other columns
        by_name = {str(k).lower(): k for k in row}
        parts = [_text(row[by_name[k]]) if k in by_name else None for k in ("zone", "block", "lot")]
        if all(parts):
            code = "".join(p for p in parts if p)
    if layer == "buildings" and code and "parcel_code" not in props and "-B" in code:
        props["parcel_code"] = code.rsplit("-B", 1)[0]
    return FeatureRecord(layer=layer, code=code, name_th=got.get("name_th"), name_en=got.get("name_en"),
                         kind=got.get("kind"), props=props, geom=geom)
