"""Coordinate systems: store WGS 84, measure in metres in a UTM zone chosen for the data.

Thai tax maps come in UTM 47N / 48N on WGS 84 (EPSG 32647 / 32648) or on
Indian 1975 (EPSG 24047 / 24048); the two datums differ by about 80 m on the
ground. Chumphae lies ~10 km east of 102 °E, the line between zones 47 and 48,
so the zone is chosen from the data's longitude, never assumed. Distances and
buffers are never taken in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

WGS84 = 4326
# What Thai LTAX exports are usually in, most likely first for Khon Kaen.
CANDIDATE_EPSG: tuple[int, ...] = (32648, 32647, 24048, 24047)
CANDIDATE_NAMES = {
    32647: "WGS 84 / UTM 47N",
    32648: "WGS 84 / UTM 48N",
    24047: "Indian 1975 / UTM 47N",
    24048: "Indian 1975 / UTM 48N",
}
# Thailand with a margin: data outside this box after transforming is suspect.
THAILAND_BOUNDS = (97.0, 5.0, 106.0, 21.0)


def utm_epsg_for(lon: float, lat: float) -> int:
    """The WGS 84 UTM zone (EPSG 326zz north / 327zz south) containing a point."""
    if not -180.0 <= lon <= 180.0 or not -90.0 <= lat <= 90.0:
        raise ValueError(f"not a WGS 84 longitude/latitude: {lon}, {lat}")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def candidates_text() -> str:
    """The candidate CRSs, for a message to a person importing a file."""
    return ", ".join(f"{code} ({CANDIDATE_NAMES[code]})" for code in CANDIDATE_EPSG)


@lru_cache(maxsize=32)
def _transformer(src: int | str, dst: int | str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def transform_geoms(geoms: ArrayLike, src: int | str, dst: int | str) -> NDArray[np.object_]:
    """Transform an array of shapely geometries between CRSs (vectorised, x = lon/easting)."""
    arr = np.asarray(geoms, dtype=object)
    if src == dst:
        return arr
    t = _transformer(src, dst)

    def fn(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = t.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(arr, fn)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric CRS for one data set, with transforms to and from WGS 84."""

    epsg: int

    @classmethod
    def for_bounds(cls, minx: float, miny: float, maxx: float, maxy: float) -> Metric:
        """The UTM zone of the centre of a WGS 84 bounding box."""
        return cls(utm_epsg_for((minx + maxx) / 2.0, (miny + maxy) / 2.0))

    def xy(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """WGS 84 lon/lat (scalars or arrays) → easting/northing in metres."""
        x, y = _transformer(WGS84, self.epsg).transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    def lonlat(self, x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lon, lat = _transformer(self.epsg, WGS84).transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def to_metric(self, geom: BaseGeometry) -> BaseGeometry:
        return transform_geoms([geom], WGS84, self.epsg)[0]

    def to_wgs84(self, geom: BaseGeometry) -> BaseGeometry:
        return transform_geoms([geom], self.epsg, WGS84)[0]

    def many_to_metric(self, geoms: ArrayLike) -> NDArray[np.object_]:
        return transform_geoms(geoms, WGS84, self.epsg)

    def many_to_wgs84(self, geoms: ArrayLike) -> NDArray[np.object_]:
        return transform_geoms(geoms, self.epsg, WGS84)


def inside_thailand(minx: float, miny: float, maxx: float, maxy: float) -> bool:
    """Whether a WGS 84 bbox lies within Thailand (a wrong CRS usually lands far away)."""
    x0, y0, x1, y1 = THAILAND_BOUNDS
    return x0 <= minx and maxx <= x1 and y0 <= miny and maxy <= y1
