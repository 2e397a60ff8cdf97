"""Map features in the database (table `map_feature`, WKB in WGS 84) and back.

An import replaces what the same data set held for that layer, so re-running
an import is safe; the demo map is loaded once, on an empty table.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import delete, func, insert, select
from sqlmodel import Session

import chumphae
from chumphae.map.importer import LAYERS, FeatureRecord, ImportSummary, read_layer
from chumphae.map.layers import MapLayers
from chumphae.models import MapFeature
from chumphae.timeutil import utcnow

DEFAULT_DATASET = "chumphae-demo"
DEFAULT_MAP = Path(chumphae.__file__).resolve().parents[1] / "mapdata" / "chumphae.gpkg"


def save_records(session: Session, records: list[FeatureRecord], dataset: str) -> int:
    """Store records, replacing this data set's features in the layers they belong to."""
    table = MapFeature.__table__  # type: ignore[attr-defined]
    conn = session.connection()
    for layer in sorted({r.layer for r in records}):
        conn.execute(delete(table).where(table.c.dataset == dataset, table.c.layer == layer))
    if not records:
        return 0
    geoms = np.array([r.geom for r in records], dtype=object)
    wkb = shapely.to_wkb(geoms)
    bounds = shapely.bounds(geoms)
    now = utcnow()
    rows = [{"layer": r.layer, "code": r.code, "name_th": r.name_th, "name_en": r.name_en, "kind": r.kind,
             "props": r.props, "geom_wkb": wkb[i], "minx": float(bounds[i, 0]), "miny": float(bounds[i, 1]),
             "maxx": float(bounds[i, 2]), "maxy": float(bounds[i, 3]), "dataset": dataset, "imported_at": now}
            for i, r in enumerate(records)]
    for start in range(0, len(rows), 5000):
        conn.execute(insert(table), rows[start:start + 5000])
    return len(rows)


def import_file(session: Session, path: str | Path, layer: str, *, dataset: str | None = None,
                **options: Any) -> ImportSummary:
    """Read, validate and store one layer of a municipality's file (see importer.read_layer)."""
    result = read_layer(path, layer, dataset=dataset, **options)
    save_records(session, result.records, result.summary.dataset)
    return result.summary


def has_dataset(session: Session, dataset: str) -> bool:
    t = MapFeature.__table__  # type: ignore[attr-defined]
    return session.connection().execute(select(t.c.id).where(t.c.dataset == dataset).limit(1)).first() is not None


def load_default_map(session: Session, path: str | Path | None = None) -> ImportSummary:
    """Load the Chumphae demo layer set once (idempotent: a second call changes nothing)."""
    if path is None:
        from chumphae.config import get_settings

        path = get_settings().map_path or DEFAULT_MAP
    path = Path(path)
    if has_dataset(session, DEFAULT_DATASET):
        return ImportSummary(source=path.name, layer=",".join(LAYERS), dataset=DEFAULT_DATASET,
                             source_crs=None, metric_epsg=None, read=0, kept=0, repaired=0, dropped=0,
                             empty=0, skipped=True)
    parts = []
    for layer in LAYERS:
        result = read_layer(path, layer, dataset=DEFAULT_DATASET)
        save_records(session, result.records, DEFAULT_DATASET)
        parts.append(result.summary)
    session.flush()
    return ImportSummary.combine(parts, path.name, DEFAULT_DATASET)


def remove_dataset(session: Session, dataset: str, layer: str | None = None) -> int:
    table = MapFeature.__table__  # type: ignore[attr-defined]
    stmt = delete(table).where(table.c.dataset == dataset)
    if layer:
        stmt = stmt.where(table.c.layer == layer)
    return int(session.connection().execute(stmt).rowcount or 0)


def stored_records(session: Session, datasets: Iterable[str] | None = None) -> list[FeatureRecord]:
    """Every stored feature (of the given data sets) as records with WGS 84 geometry."""
    t = MapFeature.__table__  # type: ignore[attr-defined]
    stmt = select(t.c.layer, t.c.code, t.c.name_th, t.c.name_en, t.c.kind, t.c.props, t.c.geom_wkb).order_by(t.c.id)
    if datasets is not None:
        stmt = stmt.where(t.c.dataset.in_(list(datasets)))
    rows = session.connection().execute(stmt).all()
    geoms = shapely.from_wkb([r.geom_wkb for r in rows]) if rows else []
    return [FeatureRecord(layer=r.layer, code=r.code, name_th=r.name_th, name_en=r.name_en, kind=r.kind,
                          props=dict(r.props or {}), geom=g) for r, g in zip(rows, geoms, strict=True)]


def load_layers(session: Session, datasets: Iterable[str] | None = None) -> MapLayers:
    """The in-memory indexed layer set built from what the database holds."""
    return MapLayers.from_records(stored_records(session, datasets))


def map_info(session: Session) -> list[dict[str, Any]]:
    """Per data set and layer: feature count, WGS 84 bbox and when it was imported."""
    t = MapFeature.__table__  # type: ignore[attr-defined]
    stmt = (select(t.c.dataset, t.c.layer, func.count(), func.min(t.c.minx), func.min(t.c.miny),
                   func.max(t.c.maxx), func.max(t.c.maxy), func.max(t.c.imported_at))
            .group_by(t.c.dataset, t.c.layer).order_by(t.c.dataset, t.c.layer))
    return [{"dataset": d, "layer": layer, "count": int(n), "bbox": (x0, y0, x1, y1), "imported_at": at}
            for d, layer, n, x0, y0, x1, y1, at in session.connection().execute(stmt).all()]
