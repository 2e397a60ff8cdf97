"""Home visits by volunteers, and the audit log of who read or changed what."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from chumphae.models.types import BigIntPK, UTCDateTime
from chumphae.timeutil import utcnow


class Visit(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    user_id: int = Field(foreign_key="app_user.id")
    t: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    adl_score: int | None = Field(default=None, ge=0, le=20)
    notes: str | None = Field(default=None, repr=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditLog(SQLModel, table=True):
    """Every read of a patient's record is attributable to a user (PDPA). No PII in `detail`."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    t: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    action: str = Field(max_length=16)  # read | create | update | delete | denied | export | login
    entity: str = Field(max_length=32)
    entity_id: str | None = Field(default=None, max_length=64)
    patient_id: int | None = Field(default=None, index=True)
    route: str | None = Field(default=None, max_length=200)
    detail: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
