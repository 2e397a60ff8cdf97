"""Alerts as state (open → acknowledged → resolved), their history, and the feed log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Index, text
from sqlmodel import Field, SQLModel

from chumphae.models.types import BigIntPK, UTCDateTime
from chumphae.timeutil import utcnow


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Outcome(StrEnum):
    FALSE_ALARM = "false_alarm"
    PATIENT_SAFE = "patient_safe"
    FOUND = "found"
    TAKEN_TO_HOSPITAL = "taken_to_hospital"
    DEVICE_FIXED = "device_fixed"
    OTHER = "other"


class Alert(SQLModel, table=True):
    __table_args__ = (
        # One alert per patient and type that is not yet resolved: a re-trigger updates it.
        Index(
            "uq_alert_unresolved",
            "patient_id",
            "type",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    gateway_id: int | None = Field(default=None, foreign_key="gateway.id")
    band_id: int | None = Field(default=None, foreign_key="wristband.id")
    type: str = Field(max_length=24)
    severity: str = Field(max_length=12)
    status: str = Field(default=AlertStatus.OPEN, max_length=16, index=True)
    opened_at: datetime = Field(sa_type=UTCDateTime)  # when it happened (true time)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_triggered_at: datetime = Field(sa_type=UTCDateTime)
    count: int = 1
    late: bool = False  # arrived after a gateway outage: stored, not rung as new
    acknowledged_by: int | None = Field(default=None, foreign_key="app_user.id")
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: int | None = Field(default=None, foreign_key="app_user.id")
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str | None = Field(default=None, max_length=24)
    resolution_note: str | None = None
    escalation_level: int = 0  # 0 caregivers, 1 volunteer, 2 care manager, 3 hospital
    next_escalation_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    lat: float | None = None
    lon: float | None = None
    uncertainty_m: float | None = None
    parcel_code: str | None = Field(default=None, max_length=32)
    building_code: str | None = Field(default=None, max_length=40)
    description_th: str | None = None
    description_en: str | None = None
    zone_version: int | None = None
    details: dict[str, object] = Field(default_factory=dict, sa_type=JSON)


class AlertEvent(SQLModel, table=True):
    """What happened to an alert, in order: opened, retriggered, acknowledged, escalated, resolved."""

    __tablename__ = "alert_event"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    t: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str = Field(max_length=16)
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    details: dict[str, object] = Field(default_factory=dict, sa_type=JSON)


class FeedEvent(SQLModel, table=True):
    """The live feed's log: its id is the cursor, so every backend process agrees on order."""

    __tablename__ = "feed_event"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    t: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    kind: str = Field(max_length=24)
    payload: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
