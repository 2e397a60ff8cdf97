"""Frozen values that travel along the data path.

scan → decode → locate → match → detect → alert. Each step takes values and
returns new ones; nothing here is edited in place. Times are timezone-aware
UTC datetimes (`chumphae.timeutil.utcnow()`); they are shown in Asia/Bangkok.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Advert:
    """One BLE advertisement as a receiver heard it (the scan step's output)."""

    address: str  # upper-case "AA:BB:CC:DD:EE:FF"
    rssi: int  # dBm
    receiver: str  # id of the receiver that heard it
    t: datetime  # wall time, UTC
    monotonic: float  # receiver's monotonic clock, seconds
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)  # full 128-bit uuid string → bytes
    local_name: str | None = None
    tx_power: int | None = None


@dataclass(frozen=True, slots=True)
class Motion:
    """A per-second summary of wrist acceleration, in g."""

    max_g: float
    min_g: float
    mean_g: float
    pitch_deg: float | None = None  # orientation of the band at the end of the second
    roll_deg: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """What one advert said, decoded (the decode step's output)."""

    address: str
    kind: str  # decoder name: "chumphae", "ibeacon", "eddystone_tlm", "moko", "kkm", "bthome"
    rssi: int
    receiver: str
    t: datetime
    seq: int | None = None
    battery_pct: float | None = None
    battery_mv: int | None = None
    sos: bool = False
    fall_flag: bool = False
    worn: bool | None = None
    charging: bool | None = None
    motion: Motion | None = None
    accel_g: tuple[float, float, float] | None = None
    steps: int | None = None
    tx_power: int | None = None
    authenticated: bool = False


class PositionSource(StrEnum):
    BLE = "ble"
    GPS = "gps"
    SEARCH = "search"  # a volunteer's phone in search mode


@dataclass(frozen=True, slots=True)
class Position:
    """Where a band is believed to be (the locate step's output). WGS 84."""

    address: str
    t: datetime
    lat: float
    lon: float
    uncertainty_m: float
    source: PositionSource = PositionSource.BLE
    receivers: int = 0
    in_coverage: bool = True
    # Where the band may be, as the locate step's likelihood says (optional, BLE): grid cells
    # (lat, lon centres, `region_cell_m` wide) holding ~95 % of the probability. Tighter than the
    # disc (a ring around one receiver, a band heard only far from the zone); the disc covers it.
    region: tuple[tuple[float, float], ...] = ()
    region_cell_m: float = 0.0
    # the share of the probability in each `region` cell (same order; they sum to about 0.95), when the
    # locate step knows it: what the matcher weighs the region's cells by. Gateway-side, never sent.
    region_weights: tuple[float, ...] = ()
    # the locate step's smoothed past (its track's genealogy, gateway.track.passages), when it keeps one:
    # pairs (a, b), "the centre reported a seconds before `t` was passed by the smoothed path b seconds
    # before `t`" (b > a: the reported centre lagged a walk). What the wander detector dates a slow exit
    # by. Gateway-side, never sent.
    passages: tuple[tuple[float, float], ...] = ()


class ZoneStatus(StrEnum):
    INSIDE = "inside"
    OUTSIDE = "outside"
    UNCERTAIN = "uncertain"
    NO_ZONE = "no_zone"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a point lies on the tax map, in words."""

    parcel_code: str | None
    building_code: str | None
    landmark: str | None  # landmark id / code
    description_th: str
    description_en: str


@dataclass(frozen=True, slots=True)
class Match:
    """A position judged against a patient's safe zone (the match step's output)."""

    position: Position
    status: ZoneStatus
    zone_version: int | None
    distance_to_boundary_m: float | None  # positive outside, negative inside
    distance_to_route_m: float | None
    place: Place
    schedule: str | None = None  # "day" | "night": which zone applied, when the matcher knows
    clearance_m: float | None = None  # OUTSIDE only: how far the whole region / disc clears the zone
    # the share of the locate step's region (its cells) outside the zone: 1.0 outside, 0.0 inside, between
    # for an uncertain fix with a region (a proxy for the probability mass outside); None when unknown
    outside_share: float | None = None
    # the probability that the patient is outside the zone: the region's weight outside the zone over its
    # whole weight (`Position.region_weights`); 1.0 / 0.0 when the disc decides; None when unknown
    outside_p: float | None = None


class AlertType(StrEnum):
    WANDER = "wander"
    LEFT_COVERAGE = "left_coverage"
    FALL = "fall"
    SOS = "sos"
    BAND_REMOVED = "band_removed"
    BATTERY_LOW = "battery_low"
    GATEWAY_OFFLINE = "gateway_offline"
    BAND_SILENT = "band_silent"
    GATEWAY_RADIO = "gateway_radio"  # the backend's own: a gateway connected whose radio cannot scan


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector's finding about one patient (the detect step's output)."""

    type: AlertType
    t: datetime  # when the thing happened (not when it was decided)
    address: str | None  # band
    patient_id: int | None
    confidence: float = 1.0
    match: Match | None = None
    details: dict[str, object] = field(default_factory=dict)
