"""All tables, imported in one place so that SQLModel.metadata knows them."""

from chumphae.models.alerts import Alert, AlertEvent, AlertStatus, FeedEvent, Outcome
from chumphae.models.delivery import (
    ChannelName,
    ContactPoint,
    DeliveryPreference,
    LineLinkCode,
    NoticeStatus,
    OutboxNotice,
)
from chumphae.models.devices import Gateway, Wristband
from chumphae.models.geo import MapFeature, SafeZone
from chumphae.models.people import (
    CID_ROLES,
    DISTRICT_ROLES,
    CareAssignment,
    Patient,
    Role,
    User,
    adl_group,
)
from chumphae.models.records import AuditLog, Visit
from chumphae.models.tracking import DeadLetter, IngestedMessage, PositionRecord

__all__ = [
    "CID_ROLES",
    "DISTRICT_ROLES",
    "Alert",
    "AlertEvent",
    "AlertStatus",
    "AuditLog",
    "CareAssignment",
    "ChannelName",
    "ContactPoint",
    "DeliveryPreference",
    "DeadLetter",
    "FeedEvent",
    "Gateway",
    "IngestedMessage",
    "LineLinkCode",
    "MapFeature",
    "NoticeStatus",
    "Outcome",
    "OutboxNotice",
    "Patient",
    "PositionRecord",
    "Role",
    "SafeZone",
    "User",
    "Visit",
    "Wristband",
    "adl_group",
]
