"""Delivery as durable state: notices (one per alert change × user × channel), contact points,
per-severity preferences with quiet hours, and one-time codes that link a LINE user to ours.

A notice row is written in the transaction that raised or escalated its alert
and carries no personal data then. Its message is rendered at its first try
and kept in `body` (what goes to the provider: the patient's name and where
they were last seen, never the CID) so every retry sends the same bytes; it
is blanked when the notice is done (sent, failed, gave up, cancelled) and by
a PDPA erase.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from chumphae.models.types import BigIntPK, UTCDateTime
from chumphae.timeutil import utcnow


class NoticeStatus(StrEnum):
    QUEUED = "queued"  # waiting for its first try or a retry (next_try_at)
    SENDING = "sending"  # claimed by a worker until lease_until (a crash leaves it to be re-claimed)
    SENT = "sent"  # the provider accepted it (provider_message_id)
    FAILED = "failed"  # the provider refused it for good (bad address, bad credentials): not retried
    GAVE_UP = "gave_up"  # retried until the give-up time passed
    CANCELLED = "cancelled"  # its alert was resolved before it went out: nobody needs it any more


DONE = frozenset({NoticeStatus.SENT, NoticeStatus.FAILED, NoticeStatus.GAVE_UP, NoticeStatus.CANCELLED})


class ChannelName(StrEnum):
    LINE = "line"
    SMS = "sms"
    WEBHOOK = "webhook"
    FEED = "feed"


class OutboxNotice(SQLModel, table=True):
    """One message to one person on one channel; `key` is the idempotency key every try repeats."""

    __tablename__ = "notice"
    __table_args__ = (Index("ix_notice_due", "status", "next_try_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    key: str = Field(max_length=36, unique=True)  # UUID: X-Line-Retry-Key / Idempotency-Key
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)  # None: a test message
    event: str = Field(max_length=16)  # opened | retriggered | escalated | test
    level: int = 0  # the escalation rung this notice belongs to
    user_id: int = Field(foreign_key="app_user.id", index=True)
    channel: str = Field(max_length=12)
    status: str = Field(default=NoticeStatus.QUEUED, max_length=12)
    attempts: int = 0
    provider_message_id: str | None = Field(default=None, max_length=128)
    last_error: str | None = Field(default=None, max_length=200)  # status code and a short reason, no secrets
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    next_try_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_try_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The message as rendered at the first try (JSON: text, link, lang, payload), sent as is by every retry;
    # None before the first try and again once the notice is done or its patient erased.
    body: str | None = Field(default=None, sa_type=Text, repr=False)


class ContactPoint(SQLModel, table=True):
    """Where a user is reached on a channel: a LINE user id, a phone number, a webhook URL."""

    __tablename__ = "contact_point"
    __table_args__ = (UniqueConstraint("user_id", "channel", name="uq_contact_point_user_channel"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    channel: str = Field(max_length=12)
    address: str = Field(max_length=512, repr=False)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeliveryPreference(SQLModel, table=True):
    """Per user: channels per severity (missing severities take the defaults) and quiet hours."""

    __tablename__ = "delivery_preference"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    channels: dict[str, list[str]] = Field(default_factory=dict, sa_type=JSON)
    quiet_start: str | None = Field(default=None, max_length=5)  # "22:00" Asia/Bangkok
    quiet_end: str | None = Field(default=None, max_length=5)  # "06:00"
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LineLinkCode(SQLModel, table=True):
    """A one-time code a user sends to our LINE account to link their LINE user id (stored hashed)."""

    __tablename__ = "line_link_code"

    code_hash: str = Field(max_length=64, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
