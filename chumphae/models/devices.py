"""Wristbands and the gateways that hear them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger
from sqlmodel import Field, SQLModel

from chumphae.models.types import UTCDateTime
from chumphae.timeutil import utcnow


class Wristband(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=17, unique=True)  # "AA:BB:CC:DD:EE:FF"
    model: str = Field(default="chumphae-v1", max_length=32)  # decoder / frame format
    key_hex: str | None = Field(default=None, max_length=64, repr=False)  # per-band secret
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    site: str = Field(default="chumphae", max_length=64, index=True)
    active: bool = True
    battery_pct: float | None = None
    battery_mv: int | None = None
    worn: bool | None = None
    charging: bool | None = None
    last_seq: int | None = None
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # newest position or reading
    # newest reading: battery, worn, charging and seq follow it, even when a position is newer
    last_reading_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_rssi: int | None = None
    last_gateway_id: int | None = Field(default=None, foreign_key="gateway.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Gateway(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)  # e.g. "gw-nongkhai-rpst"
    name: str = Field(max_length=200)
    site: str = Field(default="chumphae", max_length=64, index=True)
    lat: float | None = None
    lon: float | None = None
    token_hash: str = Field(max_length=64, unique=True, repr=False)
    token_prefix: str = Field(max_length=12)
    receivers: list[dict[str, object]] = Field(default_factory=list, sa_type=JSON)
    last_heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    health: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
    config_version: int = 1
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConfigVersion(SQLModel, table=True):
    """One row whose `version` moves with every change of what a gateway's site configuration is built from.

    Database triggers (migration 0006) bump it on any insert or delete of a band, patient, safe zone,
    gateway or map feature, and on updates of the columns the configuration reads (never of a band's or
    gateway's last-seen state, which the ingest writes every batch). The gateway sockets read it instead of
    building the whole configuration to see whether their ETag moved (`ingest/siteconfig.py`)."""

    __tablename__ = "config_version"
    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=1, sa_type=BigInteger)
