"""The in-memory tax-map layer set that every position is matched against.

Built once (from the database or straight from a file) and then only read:
geometries in a metric CRS, prepared for repeated point tests, with an
STRtree per layer so a lookup touches a handful of candidates instead of ten
thousand parcels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from chumphae.map.crs import Metric
from chumphae.map.importer import LAYERS, FeatureRecord, read_layer


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: parallel arrays (row i is one feature) plus an index on the metric geometry."""

    name: str
    codes: NDArray[np.object_]
    names_th: NDArray[np.object_]
    names_en: NDArray[np.object_]
    kinds: NDArray[np.object_]
    props: tuple[dict[str, Any], ...]
    wgs84: NDArray[np.object_]
    geoms: NDArray[np.object_]  # metric, prepared
    tree: shapely.STRtree
    by_code: dict[str, int]

    @classmethod
    def build(cls, name: str, records: list[FeatureRecord], metric: Metric) -> Layer:
        wgs = np.array([r.geom for r in records], dtype=object)
        geoms = metric.many_to_metric(wgs) if len(wgs) else np.array([], dtype=object)
        shapely.prepare(geoms)
        by_code: dict[str, int] = {}
        for i, r in enumerate(records):
            if r.code and r.code not in by_code:  # a duplicated code keeps its first feature
                by_code[r.code] = i
        return cls(
            name=name,
            codes=np.array([r.code for r in records], dtype=object),
            names_th=np.array([r.name_th for r in records], dtype=object),
            names_en=np.array([r.name_en for r in records], dtype=object),
            kinds=np.array([r.kind for r in records], dtype=object),
            props=tuple(r.props for r in records),
            wgs84=wgs, geoms=geoms, tree=shapely.STRtree(geoms), by_code=by_code)

    def __len__(self) -> int:
        return len(self.codes)

    def index(self, code: str) -> int | None:
        return self.by_code.get(code)

    def geom(self, code: str) -> BaseGeometry | None:
        i = self.by_code.get(code)
        return None if i is None else self.geoms[i]

    def under(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
        """For each point the index of a feature covering it (smallest by area), or -1."""
        out = np.full(len(x), -1, dtype=np.int64)
        if not len(self) or not len(x):
            return out
        pts = shapely.points(x, y)
        pairs = self.tree.query(pts, predicate="intersects")
        if pairs.shape[1]:
            area = shapely.area(self.geoms[pairs[1]])
            order = np.lexsort((-area, pairs[0]))  # per point, largest first → the last write wins: smallest
            out[pairs[0][order]] = pairs[1][order]
        return out

    def nearest(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """For each point the nearest feature and its distance in metres (-1 / inf when the layer is empty)."""
        idx = np.full(len(x), -1, dtype=np.int64)
        dist = np.full(len(x), np.inf)
        if not len(self) or not len(x):
            return idx, dist
        pairs, d = self.tree.query_nearest(shapely.points(x, y), return_distance=True, all_matches=False)
        idx[pairs[0]] = pairs[1]
        dist[pairs[0]] = d
        return idx, dist

    def within(self, geom: BaseGeometry, distance: float) -> NDArray[np.int64]:
        """Indices of features within `distance` metres of a geometry, nearest first."""
        if not len(self):
            return np.array([], dtype=np.int64)
        hits = self.tree.query(geom, predicate="dwithin", distance=distance)
        order: NDArray[np.int64] = hits[np.argsort(shapely.distance(self.geoms[hits], geom), kind="stable")]
        return order


@dataclass(frozen=True, eq=False)
class MapLayers:
    """Parcels, buildings, walking routes and landmarks, indexed in one metric CRS."""

    metric: Metric
    parcels: Layer
    buildings: Layer
    routes: Layer
    landmarks: Layer

    @classmethod
    def from_records(cls, records: Iterable[FeatureRecord], metric: Metric | None = None) -> MapLayers:
        by_layer: dict[str, list[FeatureRecord]] = {name: [] for name in LAYERS}
        for r in records:
            by_layer[r.layer].append(r)
        if metric is None:
            every = [r.geom for rs in by_layer.values() for r in rs]
            if not every:
                raise ValueError("no map features: load a map first (chumphae map import / load-default)")
            metric = Metric.for_bounds(*shapely.total_bounds(every))
        return cls(metric, *(Layer.build(name, by_layer[name], metric) for name in LAYERS))

    @classmethod
    def from_file(cls, path: str | Path) -> MapLayers:
        """Straight from a GeoPackage holding the four layers (no database: gateways, benchmarks)."""
        records: list[FeatureRecord] = []
        for name in LAYERS:
            records.extend(read_layer(path, name).records)
        return cls.from_records(records)

    def layer(self, name: str) -> Layer:
        if name not in LAYERS:
            raise KeyError(name)
        return getattr(self, name)  # type: ignore[no-any-return]

    def parcel_of_building(self, building_code: str) -> str | None:
        """The parcel a building stands on: its parcel_code attribute, else the code before -B."""
        i = self.buildings.index(building_code)
        if i is not None and self.buildings.props[i].get("parcel_code"):
            return str(self.buildings.props[i]["parcel_code"])
        return building_code.rsplit("-B", 1)[0] if "-B" in building_code else None

    def counts(self) -> dict[str, int]:
        return {name: len(self.layer(name)) for name in LAYERS}
