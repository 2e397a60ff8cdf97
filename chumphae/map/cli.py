"""`chumphae map ...`: load a municipality's tax map, see what is loaded, ask where a point is."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import shapely
import typer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from chumphae.config import get_settings
from chumphae.errors import ConfigError
from chumphae.map.importer import LAYERS, MapImportError, parse_field_map, read_layer

if TYPE_CHECKING:
    from chumphae.map.layers import MapLayers

app = typer.Typer(help="The tax-map layer (parcels, buildings, walking routes, landmarks).",
                  no_args_is_help=True)


def _engine() -> Engine:
    from chumphae.db import init_engine

    return init_engine(get_settings().effective_database_url)


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage or Shapefile exported from LTAX / QGIS.")],
    layer: Annotated[str, typer.Option(help="parcels | buildings | routes | landmarks")],
    epsg: Annotated[int | None, typer.Option(help="CRS of a file that states none (e.g. 32648, 24048).")] = None,
    field: Annotated[list[str] | None, typer.Option(help="OURS=THEIRS column mapping, e.g. parcel_code=PCODE (repeat).")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding of an old Shapefile, e.g. cp874 (TIS-620).")] = None,
    source_layer: Annotated[str | None, typer.Option(help="Layer inside a multi-layer file.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Name of this import (default: the file name).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and summarise only; store nothing.")] = False,
) -> None:
    """Load one layer of a municipality's own map file (re-importing a data set replaces it)."""
    if layer not in LAYERS:
        raise MapImportError(f"unknown layer {layer!r}: use one of {', '.join(LAYERS)}")
    result = read_layer(path, layer, epsg=epsg, fields=parse_field_map(field), encoding=encoding,
                        source_layer=source_layer, dataset=dataset)
    for line in result.summary.lines():
        typer.echo(line)
    from chumphae.db import session_scope
    from chumphae.map.store import map_info, save_records

    if dry_run:
        try:  # a dry run checks the file; the database only if it answers
            with session_scope(_engine()) as session:
                _warn_overlaps(map_info(session), layer, result.summary.dataset, result.summary.bbox)
        except (SQLAlchemyError, ConfigError):
            pass
        typer.echo("dry run: nothing stored")
        return
    with session_scope(_engine()) as session:
        _warn_overlaps(map_info(session), layer, result.summary.dataset, result.summary.bbox)
        n = save_records(session, result.records, result.summary.dataset)
    typer.echo(f"stored {n} features in layer {layer} of data set {result.summary.dataset}")


def _warn_overlaps(loaded: list[dict[str, Any]], layer: str, dataset: str,
                   bbox: tuple[float, float, float, float] | None) -> None:
    """Other data sets whose same layer's bounding box meets this one's: an import does not replace them (the
    shipped map, `chumphae-demo`, is loaded by `serve` on an empty map), so both would be matched against."""
    if bbox is None:
        return
    x0, y0, x1, y1 = bbox
    for other in sorted({r["dataset"] for r in loaded if r["layer"] == layer and r["dataset"] != dataset and r["bbox"]
                         and r["bbox"][0] <= x1 and x0 <= r["bbox"][2] and r["bbox"][1] <= y1 and y0 <= r["bbox"][3]}):
        typer.echo(f"  warning: layer {layer} of data set {other} covers the same ground: both will be used "
                   f"(`chumphae map remove --dataset {other}` if this one replaces it)")


@app.command("load-default")
def load_default_cmd(
    path: Annotated[Path | None, typer.Option(help="GeoPackage (default: mapdata/chumphae.gpkg).")] = None,
) -> None:
    """Load the Chumphae demo map once (the backend also does this on an empty map table)."""
    from chumphae.db import session_scope
    from chumphae.map.store import load_default_map

    with session_scope(_engine()) as session:
        summary = load_default_map(session, path)
    for line in summary.lines():
        typer.echo(line)


@app.command("info")
def info_cmd() -> None:
    """What is loaded: data sets, layers, feature counts, bounding boxes, import times (Bangkok)."""
    from chumphae.db import session_scope
    from chumphae.map.store import map_info
    from chumphae.timeutil import iso_bangkok

    with session_scope(_engine()) as session:
        rows = map_info(session)
    if not rows:
        typer.echo("no map loaded: run `chumphae map load-default` or `chumphae map import`")
        return
    for r in rows:
        x0, y0, x1, y1 = r["bbox"]
        typer.echo(f"{r['dataset']:<20} {r['layer']:<10} {r['count']:>7}  "
                   f"bbox {x0:.5f} {y0:.5f} {x1:.5f} {y1:.5f}  imported {iso_bangkok(r['imported_at'])}")


@app.command("remove")
def remove_cmd(
    dataset: Annotated[str, typer.Option(help="Data set to delete.")],
    layer: Annotated[str | None, typer.Option(help="Only this layer.")] = None,
) -> None:
    """Delete an imported data set (or one layer of it); a name that is not loaded is an error naming those that are."""
    from chumphae.db import session_scope
    from chumphae.map.store import map_info, remove_dataset

    with session_scope(_engine()) as session:
        loaded = {(r["dataset"], r["layer"]) for r in map_info(session)}
        if not any(d == dataset and (layer is None or lay == layer) for d, lay in loaded):
            have = ", ".join(f"{d} ({lay})" for d, lay in sorted(loaded)) or "none"
            raise MapImportError(f"no data set {dataset!r}{f' with layer {layer!r}' if layer else ''} is loaded; "
                                 f"loaded: {have} (`chumphae map info`); nothing removed")
        n = remove_dataset(session, dataset, layer)
    typer.echo(f"removed {n} features")


@app.command("where")
def where_cmd(
    lat: Annotated[float, typer.Argument(help="Latitude, WGS 84.")],
    lon: Annotated[float, typer.Argument(help="Longitude, WGS 84.")],
) -> None:
    """Name a point the way a caregiver would: parcel, building, nearest landmark (Thai and English)."""
    from chumphae.db import session_scope
    from chumphae.map.match import Matcher
    from chumphae.map.store import load_layers

    with session_scope(_engine()) as session:
        try:
            layers = load_layers(session)
        except ValueError:  # no features at all: one line, not a traceback
            raise MapImportError("no map loaded: run `chumphae map load-default` or `chumphae map import`") from None
    place = Matcher(layers).place(lon, lat)
    typer.echo(f"parcel {place.parcel_code or '-'}  building {place.building_code or '-'}  "
               f"landmark {place.landmark or '-'}")
    typer.echo(place.description_th)
    typer.echo(place.description_en)
    outside = _off_map(layers, lat, lon)
    if outside is not None:  # "344.0 km south-west of a school" alone read as if the map reached that far
        typer.echo(f"จุดนี้อยู่นอกแผนที่ที่โหลดไว้ ห่างจากขอบ {outside:.1f} กม.")
        typer.echo(f"this point is outside the loaded map, {outside:.1f} km beyond its edge")


def _off_map(layers: MapLayers, lat: float, lon: float) -> float | None:
    """How far (km) the point lies beyond the loaded features' bounding box, when more than 1 km; else None."""
    every = [g for layer in (layers.parcels, layers.buildings, layers.routes, layers.landmarks) for g in layer.geoms]
    minx, miny, maxx, maxy = shapely.total_bounds(every)
    xs, ys = layers.metric.xy([lon], [lat])
    x, y = float(xs[0]), float(ys[0])
    beyond_m = math.hypot(max(minx - x, 0.0, x - maxx), max(miny - y, 0.0, y - maxy))
    return beyond_m / 1000.0 if beyond_m > 1000.0 else None
