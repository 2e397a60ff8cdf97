"""Patients, the users who look after them, and who cares for whom."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from chumphae.models.types import UTCDateTime
from chumphae.timeutil import utcnow


class Role(StrEnum):
    CAREGIVER = "caregiver"
    VOLUNTEER = "volunteer"  # อสม., village health volunteer
    CARE_MANAGER = "care_manager"
    HOSPITAL = "hospital"
    ADMIN = "admin"


# Roles that see every patient of the district; the others see their own.
DISTRICT_ROLES = frozenset({Role.CARE_MANAGER, Role.HOSPITAL, Role.ADMIN})
# Roles that may read a patient's national ID (CID).
CID_ROLES = frozenset({Role.HOSPITAL, Role.ADMIN})


def adl_group(score: int | None) -> str | None:
    """Barthel ADL 0–20 → ติดสังคม (≥12) / ติดบ้าน (5–11) / ติดเตียง (0–4)."""
    if score is None:
        return None
    if score >= 12:
        return "social"
    if score >= 5:
        return "homebound"
    return "bedbound"


class Patient(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    prename: str | None = Field(default=None, max_length=32, repr=False)
    name_th: str = Field(max_length=200, repr=False)
    name_en: str | None = Field(default=None, max_length=200, repr=False)
    cid: str | None = Field(default=None, max_length=13, index=True, repr=False)
    sex: str | None = Field(default=None, max_length=1)  # 1 male, 2 female (43-file coding)
    birth_date: date | None = Field(default=None, repr=False)
    adl_score: int | None = Field(default=None, ge=0, le=20)
    nhso_group: int | None = Field(default=None, ge=0, le=4)
    hospcode: str | None = Field(default=None, max_length=5)
    pid: str | None = Field(default=None, max_length=15, index=True)
    hn: str | None = Field(default=None, max_length=15)
    house_no: str | None = Field(default=None, max_length=32, repr=False)
    village: str | None = Field(default=None, max_length=64)
    home_parcel_code: str | None = Field(default=None, max_length=32)
    home_building_code: str | None = Field(default=None, max_length=40)
    home_lat: float | None = Field(default=None, repr=False)
    home_lon: float | None = Field(default=None, repr=False)
    notes: str | None = Field(default=None, repr=False)
    thresholds: dict[str, object] = Field(default_factory=dict, sa_type=JSON)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20, index=True)
    token_hash: str = Field(max_length=64, unique=True, repr=False)
    token_prefix: str = Field(max_length=12)  # shown to admins to tell tokens apart
    phone: str | None = Field(default=None, max_length=32, repr=False)
    lang: str = Field(default="th", max_length=2)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CareAssignment(SQLModel, table=True):
    """Which user looks after which patient (volunteers and caregivers see only these)."""

    __tablename__ = "care_assignment"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", primary_key=True, index=True)
    relation: str = Field(default="caregiver", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
