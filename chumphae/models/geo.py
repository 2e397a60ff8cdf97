"""The tax-map layers and the safe zones built from them (geometry as WKB, WGS 84)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, LargeBinary
from sqlmodel import Field, SQLModel

from chumphae.models.types import UTCDateTime
from chumphae.timeutil import utcnow


class MapFeature(SQLModel, table=True):
    __tablename__ = "map_feature"
    __table_args__ = (Index("ix_map_feature_bbox", "layer", "minx", "miny"),)

    id: int | None = Field(default=None, primary_key=True)
    layer: str = Field(max_length=16, index=True)  # parcels | buildings | routes | landmarks
    code: str | None = Field(default=None, max_length=64, index=True)
    name_th: str | None = Field(default=None, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, max_length=64)
    props: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
    geom_wkb: bytes = Field(sa_type=LargeBinary)
    minx: float
    miny: float
    maxx: float
    maxy: float
    dataset: str = Field(max_length=100, index=True)
    imported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SafeZone(SQLModel, table=True):
    """One version of a patient's safe zone; the newest active one is in force."""

    __tablename__ = "safe_zone"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    version: int = 1
    spec: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
    day_wkb: bytes = Field(sa_type=LargeBinary, repr=False)
    night_wkb: bytes | None = Field(default=None, sa_type=LargeBinary, repr=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int | None = Field(default=None, foreign_key="app_user.id")
    active: bool = True
