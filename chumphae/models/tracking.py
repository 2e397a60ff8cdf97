"""Where patients were: positions, the gateway messages already taken in, and those refused."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from chumphae.models.types import BigIntPK, UTCDateTime
from chumphae.timeutil import utcnow


class PositionRecord(SQLModel, table=True):
    __tablename__ = "position"
    __table_args__ = (Index("ix_position_patient_t", "patient_id", "t"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    band_id: int | None = Field(default=None, foreign_key="wristband.id", index=True)
    gateway_id: int | None = Field(default=None, foreign_key="gateway.id")
    t: datetime = Field(sa_type=UTCDateTime, index=True)
    lat: float
    lon: float
    uncertainty_m: float
    source: str = Field(default="ble", max_length=16)
    in_coverage: bool = True
    zone_status: str | None = Field(default=None, max_length=16)
    zone_version: int | None = None
    distance_to_boundary_m: float | None = None
    parcel_code: str | None = Field(default=None, max_length=32)
    building_code: str | None = Field(default=None, max_length=40)
    worn: bool | None = None
    battery_pct: float | None = None
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IngestedMessage(SQLModel, table=True):
    """Message ids a gateway has sent and we stored: the backend drops repeats by id."""

    __tablename__ = "ingested_message"

    msg_id: str = Field(primary_key=True, max_length=64)
    gateway_id: int = Field(foreign_key="gateway.id", index=True)
    kind: str = Field(max_length=16)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeadLetter(SQLModel, table=True):
    """A gateway message we refused or could not store: kept for a person to look at, never retried.

    `code` is the protocol's error code (docs/gateway-protocol.md §3.2), `raw` the frame as received,
    cut to `RAW_MAX` characters (NUL characters removed). No log line carries it.
    """

    __tablename__ = "dead_letter"
    RAW_MAX: ClassVar[int] = 2000

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    gateway_id: int | None = Field(default=None, foreign_key="gateway.id", index=True)
    msg_id: str | None = Field(default=None, max_length=64)
    code: str = Field(max_length=32)
    reason: str = Field(max_length=200)
    raw: str = ""
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
